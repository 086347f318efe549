//! The cache over a store whose value changes: TTL re-reads, one re-read per refusal, failed
//! reads keeping the old token. tokio's clock is paused, so the TTL passes without waiting.

use super::*;

const TTL: Duration = Duration::from_secs(300);

async fn credential(store: &MemoryTokenStore) -> Credential {
    Credential::stored(store.clone(), TTL).await.expect("read")
}

#[tokio::test(start_paused = true)]
async fn a_rotated_token_is_used_once_the_ttl_has_passed() {
    let store = MemoryTokenStore::new("old");
    let credential = credential(&store).await;
    store.set("new");

    tokio::time::sleep(TTL - Duration::from_secs(1)).await;
    assert_eq!(
        credential.current().await.expose(),
        "old",
        "cached within the TTL"
    );
    assert_eq!(store.reads(), 1);

    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(credential.current().await.expose(), "new");
    assert_eq!(credential.current().await.expose(), "new");
    assert_eq!(store.reads(), 2, "one re-read per TTL, not per call");
}

#[tokio::test(start_paused = true)]
async fn a_refused_token_is_re_read_at_once_and_the_new_one_returned() {
    let store = MemoryTokenStore::new("old");
    let credential = credential(&store).await;
    let refused = credential.current().await;
    store.set("new");

    let retry = credential.after_rejection(&refused).await;

    assert_eq!(retry.map(|t| t.expose().to_owned()).as_deref(), Some("new"));
    assert_eq!(credential.current().await.expose(), "new");
    assert_eq!(store.reads(), 2);
    // A call refused with the old token after the re-read gets the new one without a read.
    let again = credential.after_rejection(&refused).await;
    assert_eq!(again.map(|t| t.expose().to_owned()).as_deref(), Some("new"));
    assert_eq!(store.reads(), 2);
}

#[tokio::test(start_paused = true)]
async fn an_unchanged_store_means_the_refusal_stands_and_a_burst_costs_one_read() {
    let store = MemoryTokenStore::new("revoked");
    let credential = credential(&store).await;
    let refused = credential.current().await;

    for _ in 0..10 {
        assert_eq!(credential.after_rejection(&refused).await, None);
    }
    assert_eq!(store.reads(), 2, "the read at start and one re-read");

    // Later refusals look again: the operator may have stored a new token meanwhile.
    tokio::time::sleep(RECHECK_REFUSED).await;
    store.set("fixed");
    let retry = credential.after_rejection(&refused).await;
    assert_eq!(
        retry.map(|t| t.expose().to_owned()).as_deref(),
        Some("fixed")
    );
}

#[tokio::test(start_paused = true)]
async fn a_store_that_cannot_be_read_keeps_the_old_token_and_is_asked_again_later() {
    let store = MemoryTokenStore::new("old");
    let credential = credential(&store).await;
    store.fail_with(StoreError::Unavailable {
        message: "throttled".into(),
        transient: true,
    });

    tokio::time::sleep(TTL).await;
    assert_eq!(credential.current().await.expose(), "old");
    assert_eq!(credential.current().await.expose(), "old");
    assert_eq!(store.reads(), 2, "not asked on every call while it fails");
    assert_eq!(credential.after_rejection(&credential.peek()).await, None);

    store.set("new");
    tokio::time::sleep(RETRY_FAILED_READ).await;
    assert_eq!(credential.current().await.expose(), "new");
}

#[tokio::test]
async fn a_cold_start_without_a_usable_token_fails() {
    let store = MemoryTokenStore::new("  ");
    let err = Credential::stored(store.clone(), TTL).await.unwrap_err();
    assert_eq!(err, StoreError::Empty);
    store.set("line\nbreak");
    let err = Credential::stored(store, TTL).await.unwrap_err();
    assert_eq!(err, StoreError::Invalid);
}

#[tokio::test]
async fn a_fixed_token_is_never_re_read_and_refusals_are_final() {
    let credential = Credential::from("inline");
    let token = credential.current().await;
    assert_eq!(token.expose(), "inline");
    assert_eq!(credential.after_rejection(&token).await, None);
}

#[tokio::test]
async fn debug_output_never_shows_the_token() {
    let store = MemoryTokenStore::new("pat-na1-very-secret");
    let credential = credential(&store).await;
    let shown = format!("{credential:?} {:?}", credential.peek());
    assert!(!shown.contains("very-secret"), "{shown}");
    assert!(
        shown.contains("<redacted>") && shown.contains("memory"),
        "{shown}"
    );
}
