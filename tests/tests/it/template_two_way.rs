//! The SAM template's two-way sync pieces against the code: the conflicts table as
//! `DynamoDbConflicts` keys it, the HubSpot → Attio function as the consumer code reads its
//! settings and with only the access it needs, the records function's access to the ledgers
//! and conflicts, and the HubSpot ingest URL guarded like the Attio one.

use super::template_consistency::{environment, for_each, resource, template, value};

#[test]
fn the_conflicts_table_is_keyed_as_the_adapter_writes_and_survives_the_stack() {
    let text = template();
    let table = resource(&text, "ConflictsTable");
    let key = relay_mappings::CONFLICT_KEY_ATTRIBUTE;
    assert!(
        table.contains(&format!(
            "AttributeDefinitions: [{{AttributeName: {key}, AttributeType: S}}]"
        )),
        "{table}"
    );
    assert!(table.contains(&format!(
        "KeySchema: [{{AttributeName: {key}, KeyType: HASH}}]"
    )));
    assert!(table.contains("BillingMode: PAY_PER_REQUEST"), "{table}");
    // An operator's settled conflicts cannot be rebuilt: kept, recoverable, never named (a
    // retained fixed name would block the next create).
    assert!(
        table.contains("DeletionPolicy: Retain") && table.contains("UpdateReplacePolicy: Retain")
    );
    assert!(table.contains("PointInTimeRecoverySpecification: {PointInTimeRecoveryEnabled: true}"));
    assert!(!table.contains("TableName:"), "{table}");
    assert!(resource(&text, "ConflictsTableName").contains("Value: !Ref ConflictsTable"));
}

#[test]
fn the_hubspot_sync_function_consumes_the_hubspot_queue_with_least_privilege() {
    let text = template();
    let function = resource(&text, "HubspotSyncFunction");
    assert!(function.contains("Binary: hubspot-sync"), "{function}");
    // The binary SAM builds exists in the workspace.
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../functions/hubspot-sync/Cargo.toml");
    let manifest = std::fs::read_to_string(&manifest).expect("functions/hubspot-sync/Cargo.toml");
    assert!(manifest.contains("name = \"hubspot-sync\""), "{manifest}");
    assert!(
        function.contains("Queue: !GetAtt HubspotQueue.Arn"),
        "{function}"
    );
    assert!(function.contains("FunctionResponseTypes: [ReportBatchItemFailures]"));
    assert!(function.contains("LogGroup: !Ref HubspotSyncLogGroup"));

    // The variables load as the consumer settings every consumer function reads.
    let env = environment(&function);
    // HUBSPOT_DELETIONS is parsed at start-up: its `ref:` stands for the parameter's
    // default (checked below with its AllowedValues, which the consumer all parses).
    let lookup = |name: &str| match env.get(name).map(String::as_str) {
        Some("ref:HubSpotDeletions") => Some("ignore".to_owned()),
        other => other.map(str::to_owned),
    };
    let settings = relay_consumer::ConsumerSettings::from_lookup(lookup)
        .unwrap_or_else(|e| panic!("the template's variables do not load: {e}"));
    assert_eq!(
        settings.mappings_table.as_deref(),
        Some("ref:MappingsTable")
    );
    assert_eq!(
        settings.dead_letter_queue_url.as_deref(),
        Some("ref:HubspotDeadLetterQueue")
    );
    assert_eq!(
        settings.source_queue_url.as_deref(),
        Some("ref:HubspotQueue")
    );
    assert!(settings.hubspot_token.is_some(), "it reads HubSpot");
    for (name, target) in [
        ("CONFLICTS_TABLE", "ref:ConflictsTable"),
        ("HUBSPOT_APP_ID", "ref:HubSpotAppId"),
        ("HUBSPOT_DELETIONS", "ref:HubSpotDeletions"),
        ("ATTIO_API_TOKEN_SECRET_ARN", "ref:AttioApiTokenSecret"),
    ] {
        assert_eq!(env.get(name).map(String::as_str), Some(target), "{name}");
    }
    let app_id = resource(&text, "HubSpotAppId");
    assert!(app_id.contains("Default: \"\""), "{app_id}");
    // Deletions are opt-in: the default is today's behaviour, and only the two values parse.
    let deletions = resource(&text, "HubSpotDeletions");
    assert!(
        deletions.contains("Default: ignore")
            && deletions.contains("AllowedValues: [ignore, delete]"),
        "{deletions}"
    );
    for value in ["ignore", "delete"] {
        relay_sync::two_way::HubspotDeletions::parse(value).expect("the consumer reads it");
    }

    // Access: ledgers read in batches and written per field, mappings and the rate budget;
    // conflicts only recorded (listing and resolving are the operator's CLI); its own queues.
    let statements: Vec<&str> = function
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("- {Effect: Allow"))
        .collect();
    // DeleteItem on the mappings table only: HUBSPOT_DELETIONS=delete removes the mapping of
    // the record it deleted.
    assert!(statements.contains(&"- {Effect: Allow, Action: [dynamodb:GetItem, dynamodb:BatchGetItem, dynamodb:PutItem, dynamodb:UpdateItem, dynamodb:DeleteItem], Resource: !GetAtt MappingsTable.Arn}"), "{statements:#?}");
    assert!(statements.contains(
        &"- {Effect: Allow, Action: dynamodb:PutItem, Resource: !GetAtt ConflictsTable.Arn}"
    ));
    assert_eq!(
        function.matches("dynamodb:DeleteItem").count(),
        1,
        "{function}"
    );
    for broad in ["dynamodb:Scan", "dynamodb:*", "Resource: \"*\""] {
        assert!(!function.contains(broad), "{broad}: {function}");
    }
    assert!(function.contains("sqs:SendMessage, Resource: !GetAtt HubspotDeadLetterQueue.Arn}"));
    assert!(function.contains("sqs:ChangeMessageVisibility, Resource: !GetAtt HubspotQueue.Arn}"));

    // A HubSpot token refused: the same alarm as the other consumers.
    let (filtered, _) = for_each(&text, "CrmAuthFailureFilters");
    assert!(filtered.iter().any(|f| f == "HubspotSync"), "{filtered:?}");
}

#[test]
fn the_records_function_may_read_ledgers_in_batches_and_record_conflicts() {
    let text = template();
    let records = resource(&text, "RecordsFunction");
    assert_eq!(value(&records, "CONFLICTS_TABLE"), "!Ref ConflictsTable");
    assert!(records.contains(
        "Action: [dynamodb:GetItem, dynamodb:BatchGetItem, dynamodb:PutItem, dynamodb:DeleteItem, dynamodb:UpdateItem], Resource: !GetAtt MappingsTable.Arn}"
    ));
    assert!(records.contains(
        "{Effect: Allow, Action: dynamodb:PutItem, Resource: !GetAtt ConflictsTable.Arn}"
    ));
}

#[test]
fn the_hubspot_ingest_url_is_capped_on_demand_and_alarms_on_5xx_like_the_attio_one() {
    let text = template();
    let attio = resource(&text, "IngestReservedConcurrency");
    let hubspot = resource(&text, "HubspotIngestReservedConcurrency");
    for key in ["Type", "Default", "AllowedPattern"] {
        assert_eq!(value(&attio, key), value(&hubspot, key), "{key}");
    }
    assert!(text.contains(
        "CapHubspotIngestConcurrency: !Not [!Equals [!Ref HubspotIngestReservedConcurrency, \"\"]]"
    ));
    assert!(resource(&text, "HubspotIngestFunction").contains(
        "ReservedConcurrentExecutions: !If [CapHubspotIngestConcurrency, !Ref HubspotIngestReservedConcurrency, !Ref AWS::NoValue]"
    ));
    let (functions, alarm) = for_each(&text, "IngestFailingAlarms");
    assert_eq!(functions, ["Ingest", "HubspotIngest"]);
    assert!(alarm.contains("MetricName: Url5xxCount"), "{alarm}");
    assert!(
        alarm.contains("Value: {Ref: !Sub \"${Function}Function\"}"),
        "{alarm}"
    );
    assert!(
        alarm.contains("AlarmActions: !If [HasAlarmEmail, [!Ref AlarmTopic], !Ref AWS::NoValue]")
    );
    assert!(alarm.contains("Threshold: 0"), "{alarm}");
}

#[test]
fn records_and_list_entries_know_the_relays_attio_token_and_the_two_way_stores() {
    let text = template();
    let token = resource(&text, "AttioTokenId");
    assert!(token.contains("Default: \"\""), "{token}");
    let globals = &text
        [text.find("\nGlobals:").expect("Globals")..text.find("\nResources:").expect("Resources")];
    assert!(
        globals.contains("ATTIO_TOKEN_ID: !Ref AttioTokenId"),
        "{globals}"
    );
    for name in ["RecordsFunction", "ListEntriesFunction"] {
        let function = resource(&text, name);
        // From Globals (every function reads it), never overridden with something else.
        assert!(!function.contains("ATTIO_TOKEN_ID"), "{name}");
        assert_eq!(
            value(&function, "CONFLICTS_TABLE"),
            "!Ref ConflictsTable",
            "{name}"
        );
        assert!(function.contains("dynamodb:BatchGetItem"), "{name}");
        assert!(
            function.contains(
                "{Effect: Allow, Action: dynamodb:PutItem, Resource: !GetAtt ConflictsTable.Arn}"
            ),
            "{name}"
        );
    }
}
