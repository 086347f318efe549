//! The reconcile function keeps its walk positions in the mappings table (moto): a saved
//! position is read back by a new store (the next invocation), lives beside the id mappings
//! without touching them, and a corrupt one is reported as such, not as "no position".

use aws_sdk_dynamodb::types::AttributeValue;
use integration_tests::moto;
use relay_crm::{CrmId, CrmObject};
use relay_mappings::{DynamoDbMappings, IdMappings};
use relay_reconcile::{DynamoDbPositions, PositionStore, SyncPosition};

#[tokio::test]
async fn positions_in_the_mappings_table_survive_invocations_beside_the_mappings() {
    let config = moto::sdk_config().await;
    let table = moto::fresh_table_keyed(&config, "mappings", relay_mappings::KEY_ATTRIBUTE).await;
    let client = aws_sdk_dynamodb::Client::new(&config);
    let mappings = DynamoDbMappings::new(client.clone(), &table);
    mappings
        .put(CrmObject::Contacts, "people", &CrmId("hs-1".into()))
        .await
        .expect("put mapping");

    let first = DynamoDbPositions::new(client.clone(), &table);
    assert_eq!(first.load("people").await.expect("load"), None);
    let mut position = SyncPosition::start("people", 1_770_000_000, Some(1_769_000_000));
    position.offset = 1500;
    position.records_synced = 1498;
    position.records_failed = 2;
    first.save(&position).await.expect("save");

    let next_invocation = DynamoDbPositions::new(client.clone(), &table);
    assert_eq!(
        next_invocation.load("people").await.expect("load"),
        Some(position)
    );
    assert_eq!(next_invocation.load("deals").await.expect("load"), None);
    assert_eq!(
        mappings
            .get(CrmObject::Contacts, "people")
            .await
            .expect("get"),
        Some(CrmId("hs-1".into())),
        "the id mapping is untouched"
    );

    client
        .put_item()
        .table_name(&table)
        .item(
            relay_mappings::KEY_ATTRIBUTE,
            AttributeValue::S(DynamoDbPositions::key("deals")),
        )
        .item(
            relay_reconcile::position::POSITION_ATTRIBUTE,
            AttributeValue::S("{not json".into()),
        )
        .send()
        .await
        .expect("put corrupt item");
    let err = next_invocation.load("deals").await.expect_err("corrupt");
    assert!(err.is_permanent(), "{err}");
}
