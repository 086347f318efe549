//! The local pollers over the SQLite queue: batches overlap, every message settles once, two
//! batches in flight never share a subject, a slow batch keeps its lease, and the records
//! poller hands the real records handler (over the in-memory adapters) full batches.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use relay_attio::MemoryAttio;
use relay_crm::{CrmObject, MemoryCrm, OutboxEntry};
use relay_embedded::LocalDb;
use relay_events::QueuedEvent;
use relay_mappings::MemoryMappings;
use relay_queue::{EventQueue, OutgoingMessage};
use relay_sync::{
    BatchHandler, Disposition, FieldMapping, InboundEvent, MessageOutcome, RecordsHandler,
    SyncContext,
};
use serde_json::json;

use super::*;

const WS: &str = "a9f6fd20-80d5-4bd1-b8fe-60a7c5a9178a";
const PEOPLE: &str = "f436cad2-7090-4b86-8ae2-27260febbefe";

fn record_id(n: usize) -> String {
    format!("00000000-0000-4000-8000-{n:012}")
}

/// `record.updated` for person `n`, as ingest queues it.
fn record_updated(n: usize, seq: usize) -> OutgoingMessage {
    let delivery = json!({
        "webhook_id": "5d4b2e7e-0d55-4a4f-9a6b-3f0c8f6a1c11",
        "events": [{
            "event_type": "record.updated",
            "id": {"workspace_id": WS, "object_id": PEOPLE, "record_id": record_id(n),
                   "attribute_id": "d9b3c6b1-1a2b-4c3d-8e9f-0a1b2c3d4e5f"},
            "actor": {"type": "workspace-member", "id": "061b809a-2423-4955-94c9-07c16d05be79"}
        }]
    });
    let raw = serde_json::to_vec(&delivery).expect("json");
    let key = format!("delivery-{seq}");
    let queued = QueuedEvent::first_of(&raw, &key, 1_763_000_000).expect("event");
    OutgoingMessage::new(&queued, WS)
}

/// Sends `count` updates cycling over `people` people; returns the queue's message ids.
async fn queue_with(count: usize, people: usize) -> (SqliteQueue, BTreeSet<String>) {
    let queue = SqliteQueue::new(LocalDb::in_memory().expect("db"), 5);
    let messages: Vec<_> = (0..count).map(|i| record_updated(i % people, i)).collect();
    queue.send(&messages).await.expect("send");
    let ids = queue.peek("records").await.expect("peek");
    let ids = ids.into_iter().map(|m| m.message_id).collect();
    (queue, ids)
}

/// Runs the records poller until the queue (DLQ included) is empty; false on timeout.
async fn drain(
    queue: &SqliteQueue,
    handler: impl BatchHandler + 'static,
    polling: Polling,
) -> bool {
    let poller = tokio::spawn(poll_forever(
        queue.clone(),
        EventFamily::Records,
        handler,
        polling,
    ));
    let until = Instant::now() + Duration::from_secs(20);
    let mut empty = false;
    while Instant::now() < until {
        if queue.depths().await.expect("depths").is_empty() {
            empty = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    poller.abort();
    empty
}

/// What a probe saw: every message it was handed, how many batches ran at once, and any
/// subject two running batches held together.
#[derive(Default)]
struct Seen {
    handled: Mutex<Vec<String>>,
    running: AtomicUsize,
    most: AtomicUsize,
    subjects: Mutex<HashSet<String>>,
    shared: Mutex<Vec<String>>,
}

/// A handler that settles everything `Done` after `hold`; with `wait_for_company`, a batch
/// first waits (up to 3 s) until another batch is running too.
struct Probe {
    seen: Arc<Seen>,
    hold: Duration,
    wait_for_company: bool,
}

impl BatchHandler for Probe {
    async fn handle(&self, events: &[InboundEvent]) -> Vec<MessageOutcome> {
        let seen = &self.seen;
        let now = seen.running.fetch_add(1, Ordering::SeqCst) + 1;
        seen.most.fetch_max(now, Ordering::SeqCst);
        let mine: HashSet<String> = events
            .iter()
            .flat_map(|e| subjects(&e.queued.to_body()))
            .collect();
        {
            let mut held = seen.subjects.lock().expect("lock");
            let mut shared = seen.shared.lock().expect("lock");
            shared.extend(mine.iter().filter(|s| held.contains(*s)).cloned());
            held.extend(mine.iter().cloned());
        }
        if self.wait_for_company {
            let until = Instant::now() + Duration::from_secs(3);
            while seen.most.load(Ordering::SeqCst) < 2 && Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        tokio::time::sleep(self.hold).await;
        seen.subjects
            .lock()
            .expect("lock")
            .retain(|s| !mine.contains(s));
        let mut handled = seen.handled.lock().expect("lock");
        handled.extend(events.iter().map(|e| e.message_id.clone()));
        seen.running.fetch_sub(1, Ordering::SeqCst);
        events
            .iter()
            .map(|e| MessageOutcome {
                message_id: e.message_id.clone(),
                disposition: Disposition::Done,
            })
            .collect()
    }
}

/// Each id in `handled`, with how many times it was handled.
fn counts(handled: &[String]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for id in handled {
        *counts.entry(id.clone()).or_default() += 1;
    }
    counts
}

#[tokio::test]
async fn two_batches_are_in_flight_at_once_and_every_message_settles_once() {
    // 30 updates of 30 different people: three batches of 10, nothing shared.
    let (queue, ids) = queue_with(30, 30).await;
    let seen = Arc::new(Seen::default());
    let probe = Probe {
        seen: Arc::clone(&seen),
        hold: Duration::from_millis(20),
        wait_for_company: true,
    };
    let polling = Polling {
        in_flight: 2,
        ..Polling::SMALL
    };
    assert!(
        drain(&queue, probe, polling).await,
        "the queue never drained"
    );

    // One batch waited for another to start: both were in flight together, never more.
    assert_eq!(seen.most.load(Ordering::SeqCst), 2);
    let handled = counts(&seen.handled.lock().expect("lock"));
    assert_eq!(handled.keys().cloned().collect::<BTreeSet<_>>(), ids);
    assert!(handled.values().all(|n| *n == 1), "{handled:?}");
}

#[tokio::test]
async fn batches_in_flight_never_share_a_record_and_held_messages_join_a_later_batch() {
    // 40 updates cycling over 4 people: every batch of 5 names them all, so a second batch
    // received while the first runs must wait for it.
    let (queue, ids) = queue_with(40, 4).await;
    let seen = Arc::new(Seen::default());
    let probe = Probe {
        seen: Arc::clone(&seen),
        hold: Duration::from_millis(30),
        wait_for_company: false,
    };
    let polling = Polling {
        batch_size: 5,
        in_flight: 2,
        ..Polling::SMALL
    };
    assert!(
        drain(&queue, probe, polling).await,
        "the queue never drained"
    );

    let shared = seen.shared.lock().expect("lock").clone();
    assert!(shared.is_empty(), "running batches shared {shared:?}");
    let handled = counts(&seen.handled.lock().expect("lock"));
    assert_eq!(handled.keys().cloned().collect::<BTreeSet<_>>(), ids);
    assert!(handled.values().all(|n| *n == 1), "{handled:?}");
    // Held messages cost no receive: nothing came back or went near the DLQ.
    assert!(queue.peek("records-dlq").await.expect("peek").is_empty());
}

#[tokio::test]
async fn a_batch_slower_than_the_visibility_timeout_keeps_its_lease() {
    // Messages hide for 150 ms unless renewed; the batch takes 600 ms. Without the renewal the
    // other slot would receive them again and they would be handled twice.
    let (queue, ids) = queue_with(10, 10).await;
    let seen = Arc::new(Seen::default());
    let probe = Probe {
        seen: Arc::clone(&seen),
        hold: Duration::from_millis(600),
        wait_for_company: false,
    };
    let polling = Polling {
        in_flight: 2,
        visibility: Duration::from_millis(150),
        ..Polling::SMALL
    };
    assert!(
        drain(&queue, probe, polling).await,
        "the queue never drained"
    );
    let handled = counts(&seen.handled.lock().expect("lock"));
    assert_eq!(handled.keys().cloned().collect::<BTreeSet<_>>(), ids);
    assert!(handled.values().all(|n| *n == 1), "{handled:?}");
}

fn person(n: usize) -> relay_attio::Record {
    let current = |value: serde_json::Value| {
        let mut value = value;
        value["active_from"] = json!("2026-11-02T09:12:44Z");
        value["active_until"] = json!(null);
        json!([value])
    };
    let email = format!("person{n}@example.com");
    serde_json::from_value(json!({
        "id": {"workspace_id": WS, "object_id": PEOPLE, "record_id": record_id(n)},
        "created_at": "2026-11-02T09:12:44Z",
        "values": {
            "email_addresses": current(json!({
                "attribute_type": "email-address", "email_address": email,
                "original_email_address": email, "email_domain": "example.com",
                "email_root_domain": "example.com", "email_local_specifier": format!("person{n}")})),
            "name": current(json!({
                "attribute_type": "personal-name", "first_name": format!("P{n}"),
                "last_name": "Example", "full_name": format!("P{n} Example")})),
        }
    }))
    .expect("record")
}

#[tokio::test]
async fn an_import_burst_reaches_the_records_handler_in_full_batches() {
    // 250 updates over 50 people, queued before the poller starts (an import's burst).
    let (queue, _) = queue_with(250, 50).await;
    let attio = MemoryAttio::new();
    attio.add_object(PEOPLE, "people");
    for n in 0..50 {
        attio.put_record("people", person(n));
    }
    let ctx = Arc::new(SyncContext::with_attio(
        attio,
        MemoryCrm::new(),
        MemoryMappings::new(),
        FieldMapping::default(),
    ));
    let polling = Polling::records(100, Duration::from_millis(50), 2);
    let handler = RecordsHandler::new(Arc::clone(&ctx));
    assert!(
        drain(&queue, handler, polling).await,
        "the queue never drained"
    );

    let contacts = ctx.crm.objects(CrmObject::Contacts);
    assert_eq!(contacts.len(), 50, "{contacts:?}");
    // Batches of 10 would need at least 25 upserts, and batches of 100 messages one each;
    // cut by record from the pool, the whole burst (every person five times) is one batch.
    let upserts: Vec<usize> = ctx
        .crm
        .calls()
        .into_iter()
        .filter_map(|call| match call {
            OutboxEntry::Upsert { records, .. } => Some(records.len()),
            _ => None,
        })
        .collect();
    assert_eq!(upserts, [50], "{upserts:?}");
}

/// A pooled `record.updated` for person `n`, sent at `sent_ms`, received at `received`.
fn pooled(n: usize, seq: usize, sent_ms: i64, received: Instant) -> Held {
    let outgoing = record_updated(n, seq);
    let message = ReceivedMessage {
        message: relay_queue::LocalMessage {
            message_id: format!("m{seq}"),
            queue: "records".into(),
            body: outgoing.body.clone(),
            attributes: outgoing.attributes.clone(),
            receive_count: 1,
            sent_at_ms: sent_ms,
            source_queue: None,
            failure_reason: None,
        },
        receipt_handle: format!("r{seq}"),
    };
    let subjects = subjects(&message.message.body);
    Held {
        message,
        subjects,
        received,
    }
}

fn ids(held: &[Held]) -> BTreeSet<String> {
    held.iter()
        .map(|h| h.message.message.message_id.clone())
        .collect()
}

fn polling(batch_size: usize, window_ms: u64) -> Polling {
    Polling {
        batch_size,
        pool: 100,
        window: Duration::from_millis(window_ms),
        ..Polling::SMALL
    }
}

#[test]
fn a_batch_takes_every_pooled_message_of_its_records_and_the_quiet_ones_first() {
    let t0 = Instant::now();
    // Person 1 changed last at 300 ms, person 2 at 100 ms, person 3 at 200 ms.
    let mut pool = vec![
        pooled(1, 0, 0, t0),
        pooled(2, 1, 50, t0),
        pooled(1, 2, 300, t0),
        pooled(3, 3, 200, t0),
        pooled(2, 4, 100, t0),
    ];
    let batch = pick(&mut pool, &HashSet::new(), polling(2, 0), t0).expect("a batch");
    // The two quiet longest, each with all its messages; the busiest stays pooled.
    assert_eq!(ids(&batch), ["m1", "m3", "m4"].map(String::from).into());
    assert_eq!(ids(&pool), ["m0", "m2"].map(String::from).into());
}

#[test]
fn a_record_waiting_past_overdue_goes_before_quieter_ones() {
    let t0 = Instant::now();
    let now = t0 + OVERDUE;
    // Person 1 keeps changing (newest send) but was first received a full OVERDUE ago.
    let mut pool = vec![
        pooled(1, 0, 900, t0),
        pooled(2, 1, 100, now),
        pooled(3, 2, 200, now),
    ];
    let batch = pick(&mut pool, &HashSet::new(), polling(2, 0), now).expect("a batch");
    assert_eq!(ids(&batch), ["m0", "m1"].map(String::from).into());
}

#[test]
fn a_partial_batch_waits_for_the_window_and_a_full_one_does_not() {
    let t0 = Instant::now();
    let mut pool = vec![pooled(1, 0, 0, t0), pooled(1, 1, 10, t0)];
    let gathering = pick(&mut pool, &HashSet::new(), polling(2, 200), t0 + ms(50));
    assert_eq!(gathering.err(), Some(Step::Gathering(ms(150))));
    assert_eq!(pool.len(), 2, "nothing taken while gathering");
    // Once the window has passed, the partial batch goes.
    let late = pick(&mut pool, &HashSet::new(), polling(2, 200), t0 + ms(200));
    assert_eq!(late.map(|b| b.len()).ok(), Some(2));

    // Two records fill a batch of two: no wait, even with the window open.
    let mut pool = vec![pooled(1, 0, 0, t0), pooled(2, 1, 10, t0)];
    let full = pick(&mut pool, &HashSet::new(), polling(2, 200), t0);
    assert_eq!(full.map(|b| b.len()).ok(), Some(2));
    assert!(pool.is_empty());
}

#[test]
fn a_record_held_by_a_running_batch_stays_pooled() {
    let t0 = Instant::now();
    let mut pool = vec![pooled(1, 0, 0, t0), pooled(2, 1, 10, t0)];
    let busy: HashSet<String> = subjects(&pool[0].message.message.body)
        .into_iter()
        .collect();
    let batch = pick(&mut pool, &busy, polling(10, 0), t0).expect("a batch");
    assert_eq!(ids(&batch), ["m1"].map(String::from).into());
    assert_eq!(ids(&pool), ["m0"].map(String::from).into());
    // Only held messages left: nothing to start.
    assert_eq!(
        pick(&mut pool, &busy, polling(10, 0), t0).err(),
        Some(Step::Idle)
    );
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
