//! Arbitrary bytes as a webhook body: what ingest does after the signature has passed.
//!
//! `Delivery::parse` must answer `Ok` or a `ParseError` for any input, never panic. On `Ok`,
//! every event is routed, the idempotency key is derived (no header, blank header, a short
//! printable header, the input itself as a header; unsigned and signed), and each event is
//! built into the `QueuedEvent` body and message attributes ingest sends, then read back.
//! The assertions below are contracts stated in `shared/events` (doc comments, `ParseError`,
//! `key.rs`, `message.rs`), not guesses.

#![no_main]

use libfuzzer_sys::fuzz_target;
use relay_events::{
    Delivery, Event, EventFamily, EventType, IdempotencyKey, KeySource, MAX_HEADER_KEY_LEN,
    MessageAttributes, ParseError, QueuedEvent, Subject,
};

/// Any fixed instant: ingest stamps `received_at` with its clock.
const NOW: i64 = 1_763_000_000;

fuzz_target!(|data: &[u8]| {
    let delivery = match Delivery::parse(data) {
        Ok(delivery) => delivery,
        Err(err) => {
            check_error(&err);
            return;
        }
    };

    // `ParseError::NoEvents`: a delivery always carries at least one event.
    assert!(!delivery.events.is_empty(), "Ok delivery without events");

    for event in &delivery.events {
        // An event that does not read is kept, parked, and refused again by the consumers'
        // reader; everything below is about events that read.
        if let Subject::Unreadable { reason } = &event.subject {
            assert!(!reason.is_empty(), "unreadable event without a reason");
            assert_eq!(event.family(), EventFamily::Other);
            assert!(Event::from_raw(event.raw()).is_err());
            continue;
        }
        // Event::parse refuses a missing or empty `id.workspace_id`.
        assert!(
            !event.workspace_id.is_empty(),
            "empty workspace_id accepted"
        );

        // Routing is total, and parks what no consumer models.
        let family = event.family();
        assert!(EventFamily::ALL.contains(&family));
        assert_eq!(family.as_str().parse::<EventFamily>(), Ok(family));
        match &event.subject {
            Subject::Ids(_) => assert_eq!(family, EventFamily::Other),
            typed => {
                // Typed subjects only come from known types, and match their family.
                assert!(
                    event.event_type.is_known(),
                    "typed subject for {:?}",
                    event.event_type
                );
                assert_eq!(family, event.event_type.family());
                let expected = match typed {
                    Subject::Record { .. }
                    | Subject::MergedRecord { .. }
                    | Subject::ObjectAttribute { .. } => EventFamily::Records,
                    Subject::ListEntry { .. } | Subject::ListAttribute { .. } => {
                        EventFamily::ListEntries
                    }
                    Subject::Note { .. } => EventFamily::Notes,
                    Subject::Task { .. } => EventFamily::Tasks,
                    Subject::Ids(_) | Subject::Unreadable { .. } => unreachable!(),
                };
                assert_eq!(family, expected, "{:?} routed to {family}", event.subject);
            }
        }

        // Wire names round-trip (one table for parsing and printing; unknown kept verbatim).
        assert_eq!(
            EventType::parse(event.event_type.as_str()),
            event.event_type
        );

        // The identity starts with the workspace.
        let identity = event.identity();
        assert_eq!(
            identity.first(),
            Some(&("workspace_id", event.workspace_id.as_str()))
        );

        // The consumers read a queued event back with `Event::from_raw` (through
        // `QueuedEvent::parse_event`, once per message in relay_consumer::settle) and dead-letter it
        // when that fails: the raw text of an accepted event must read back as that same event.
        let same = Event::from_raw(event.raw()).unwrap_or_else(|err| {
            panic!(
                "accepted event does not read back as the consumers read it: {err}\nraw: {}",
                event.raw().get()
            )
        });
        assert_eq!(same.event_type, event.event_type);
        assert_eq!(same.workspace_id, event.workspace_id);
        assert_eq!(same.subject, event.subject);
        assert_eq!(same.actor, event.actor);
        assert_eq!(same.raw().get(), event.raw().get());
    }

    // Idempotency keys, as ingest derives them.
    let unsigned = IdempotencyKey::for_delivery(None, &delivery, None);
    let signed = IdempotencyKey::for_delivery(None, &delivery, Some(NOW));
    check_derived(&unsigned, KeySource::DerivedUnsigned);
    check_derived(&signed, KeySource::DerivedSigned);
    assert_ne!(
        unsigned.as_str(),
        signed.as_str(),
        "the signed timestamp does not reach the key"
    );
    assert_eq!(
        unsigned,
        IdempotencyKey::for_delivery(None, &delivery, None),
        "derived key is not deterministic"
    );
    // A blank header is no header.
    assert_eq!(
        IdempotencyKey::for_delivery(Some(" \t "), &delivery, None),
        unsigned
    );

    let short = IdempotencyKey::for_delivery(Some(" retry-7f3a "), &delivery, Some(NOW));
    assert_eq!(short.as_str(), "h:retry-7f3a");
    assert_eq!(short.source(), KeySource::Header);

    // The input itself as a header value: arbitrary length and characters.
    let header = String::from_utf8_lossy(data);
    let from_header = IdempotencyKey::for_delivery(Some(&header), &delivery, None);
    if header.trim().is_empty() {
        assert_eq!(from_header, unsigned);
    } else {
        check_header_key(&from_header, header.trim());
    }

    // The queue messages ingest builds: one QueuedEvent per event (as in
    // relay_ingest::IngestService::process) and the attributes relay_queue::OutgoingMessage::new
    // derives from it. relay-queue itself is not linked: it pulls in the AWS SDK.
    for key in [&unsigned, &signed, &short, &from_header] {
        for (index, event) in delivery.events.iter().enumerate() {
            let queued = QueuedEvent::new(key, delivery.webhook_id.as_deref(), index, NOW, event);
            assert_eq!(queued.version, QueuedEvent::VERSION);
            assert_eq!(queued.family, event.family());
            let attributes = MessageAttributes {
                event_type: queued.event_type.as_str().to_owned(),
                workspace_id: event.workspace_id.clone(),
                idempotency_key: queued.idempotency_key.clone(),
            };
            assert_eq!(attributes.event_type, event.event_type.as_str());
            assert_eq!(attributes.idempotency_key, key.as_str());

            // The body consumers read back: the event verbatim, the rest unchanged.
            let body = queued.to_body();
            let back = QueuedEvent::from_body(&body).expect("queued body reads back");
            assert_eq!(back.event.get(), event.raw().get(), "event not verbatim");
            assert_eq!(back.version, queued.version);
            assert_eq!(back.idempotency_key, queued.idempotency_key);
            assert_eq!(back.webhook_id, queued.webhook_id);
            assert_eq!(back.event_index, index);
            assert_eq!(back.received_at, NOW);
            assert_eq!(back.event_type, event.event_type);
            assert_eq!(back.family, event.family());
            if !matches!(event.subject, Subject::Unreadable { .. }) {
                let typed = back.parse_event().expect("queued event reads back");
                assert_eq!(typed.subject, event.subject);
            }
        }
    }
});

/// Every refusal has a code and a message (each becomes a 400).
fn check_error(err: &ParseError) {
    // One odd event never refuses a delivery: it is kept as `Subject::Unreadable`.
    assert!(
        !matches!(err, ParseError::InvalidEvent { .. }),
        "a delivery refused for one event: {err}"
    );
    let code = err.code();
    assert!(!code.is_empty());
    let _ = err.to_string();
}

/// `d:` and the hex SHA-256 of the delivery's identity.
fn check_derived(key: &IdempotencyKey, source: KeySource) {
    assert_eq!(key.source(), source);
    let value = key.as_str();
    assert_eq!(value.len(), 2 + 64, "{value}");
    assert!(value.starts_with("d:"), "{value}");
    assert!(
        value[2..]
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    );
    assert_eq!(key.to_string(), value);
}

/// Header keys are kept readable when short and printable, else hashed: small and printable.
fn check_header_key(key: &IdempotencyKey, trimmed: &str) {
    assert_eq!(key.source(), KeySource::Header);
    let value = key.as_str();
    let printable = trimmed.bytes().all(|b| b.is_ascii_graphic());
    if printable && trimmed.len() <= MAX_HEADER_KEY_LEN {
        assert_eq!(value, format!("h:{trimmed}"));
    } else {
        assert_eq!(value.len(), 2 + 64, "{value}");
        assert!(value.starts_with("h#"), "{value}");
        assert!(
            value[2..]
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        );
    }
    assert!(value.len() <= 2 + MAX_HEADER_KEY_LEN);
    assert!(value.bytes().all(|b| b.is_ascii_graphic()), "{value:?}");
}
