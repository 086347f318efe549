//! The SAM template must give the ingest function every variable the code reads, and the
//! table the key and TTL attributes the DynamoDB adapter writes. (cfn-lint checks the
//! template's syntax and types in scripts/test; this checks it against the code.)

use relay_events::EventFamily;
use relay_queue::QueueUrls;

fn template() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/template.yaml");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_ingest_function_gets_every_variable_the_code_requires() {
    let text = template();
    let mut required = vec![
        "ATTIO_WEBHOOK_SECRET_ARN",
        "IDEMPOTENCY_TABLE",
        "IDEMPOTENCY_LEASE_SECS",
        "IDEMPOTENCY_TTL_SECS",
        "SIGNATURE_POLICY",
    ];
    required.extend(EventFamily::ALL.map(QueueUrls::env_var));
    for name in required {
        assert!(
            text.contains(&format!("{name}:")),
            "infra/template.yaml does not set {name}"
        );
    }
}

#[test]
fn the_table_matches_the_dynamodb_adapter() {
    let text = template();
    assert!(text.contains(relay_idempotency::KEY_ATTRIBUTE));
    assert!(text.contains(&format!(
        "AttributeName: {}",
        relay_idempotency::TTL_ATTRIBUTE
    )));
    assert!(
        text.contains("Binary: ingest"),
        "the SAM build must name the ingest binary"
    );
}

#[test]
fn every_consumer_function_is_wired_to_its_queue_with_partial_batch_responses() {
    let text = template();
    for (binary, queue) in [
        ("records", "RecordsQueue"),
        ("list-entries", "ListEntriesQueue"),
        ("notes", "NotesQueue"),
        ("tasks", "TasksQueue"),
    ] {
        assert!(
            text.contains(&format!("Binary: {binary}")),
            "no function builds {binary}"
        );
        assert!(
            text.contains(&format!("Queue: !GetAtt {queue}.Arn")),
            "{queue} feeds no function"
        );
    }
    assert_eq!(
        text.matches("FunctionResponseTypes: [ReportBatchItemFailures]")
            .count(),
        4
    );
    for name in [
        "ATTIO_API_TOKEN_SECRET_ARN",
        "HUBSPOT_TOKEN_SECRET_ARN",
        "MAPPINGS_TABLE",
    ] {
        assert_eq!(
            text.matches(&format!("{name}:")).count(),
            5,
            "{name} on every consumer and the reconcile function"
        );
    }
    assert_eq!(
        text.matches("DEAD_LETTER_QUEUE_URL:").count(),
        4,
        "DEAD_LETTER_QUEUE_URL on every consumer"
    );
    // Visibility timeout at least 6x the consumer timeout (60 s).
    assert_eq!(text.matches("VisibilityTimeout: 360").count(), 5);
    assert_eq!(text.matches("Timeout: 60\n").count(), 4);
    assert!(text.contains(&format!("AttributeName: {}", relay_mappings::KEY_ATTRIBUTE)));
}

/// The YAML block of one parameter or resource: its `  Name:` line and every line after it up
/// to the next entry at the same indentation (or the next section).
fn resource(text: &str, name: &str) -> String {
    let header = format!("  {name}:");
    let mut lines = text.lines().skip_while(|l| *l != header);
    let first = lines
        .next()
        .unwrap_or_else(|| panic!("infra/template.yaml has no {name}"));
    let body = lines.take_while(|l| {
        l.is_empty()
            || l.starts_with("   ")
            || (l.starts_with("  ") && l.trim_start().starts_with('#'))
    });
    std::iter::once(first)
        .chain(body)
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_reconcile_function_is_scheduled_off_by_default_and_alarms_when_a_webhook_is_not_active() {
    let text = template();
    let function = &resource(&text, "ReconcileFunction");
    assert!(function.contains("Binary: reconcile"), "{function}");
    // Lambda's maximum: the walk stops itself before the deadline.
    assert!(function.contains("Timeout: 900"), "{function}");
    assert!(
        function.contains("MaximumRetryAttempts: 0"),
        "a failed run is not retried"
    );
    for name in relay_reconcile::settings::ENV_VARS {
        assert!(
            function.contains(&format!("{name}:")),
            "the reconcile function does not get {name}"
        );
    }
    assert!(function.contains("RECONCILE_SHARE: !Ref ReconcileShare"));
    assert!(function.contains("ATTIO_WEBHOOK_IDS: !Ref ReconcileWebhookIds"));
    assert!(function.contains("RELAY_TARGET_URL: !GetAtt IngestFunctionUrl.FunctionUrl"));
    assert!(function.contains("LogGroup: !Ref ReconcileLogGroup"));

    // The schedule: off unless ReconcileSchedule is set.
    let parameter = resource(&text, "ReconcileSchedule");
    assert!(parameter.contains("Default: \"\""), "{parameter}");
    assert!(text.contains("ReconcileScheduled: !Not [!Equals [!Ref ReconcileSchedule, \"\"]]"));
    assert!(function.contains("Type: Schedule"), "{function}");
    assert!(
        function.contains("State: !If [ReconcileScheduled, ENABLED, DISABLED]"),
        "{function}"
    );
    assert!(function.contains("Schedule: !If [ReconcileScheduled, !Ref ReconcileSchedule,"));
    let share = resource(&text, "ReconcileShare");
    assert!(
        share.contains("Default: 0.1") && share.contains("MaxValue: 1"),
        "{share}"
    );

    // The alarm: the log line the library writes, counted from the function's log group.
    let filter = resource(&text, "WebhookNotActiveFilter");
    assert!(
        filter.contains("LogGroupName: !Ref ReconcileLogGroup"),
        "{filter}"
    );
    assert!(
        filter.contains(&format!(
            "FilterPattern: '{{ $.event = \"{}\" }}'",
            relay_reconcile::ALARM_EVENT
        )),
        "{filter}"
    );
    assert!(filter.contains("MetricName: WebhooksNotActive"));
    for alarm in ["WebhookNotActiveAlarm", "ReconcileFailingAlarm"] {
        let block = resource(&text, alarm);
        assert!(
            block.contains(
                "AlarmActions: !If [HasAlarmEmail, [!Ref AlarmTopic], !Ref AWS::NoValue]"
            ),
            "{alarm} notifies the alarm topic: {block}"
        );
    }
    assert!(resource(&text, "WebhookNotActiveAlarm").contains("MetricName: WebhooksNotActive"));
    assert!(resource(&text, "ReconcileFailingAlarm").contains("Value: !Ref ReconcileFunction"));
}

#[test]
fn the_consumers_that_receive_attribute_events_may_bump_the_schema_generation() {
    use relay_events::EventType;
    let text = template();
    // Attribute events go to the records and list-entries queues; their functions bump the
    // counter with UpdateItem (ADD) on the mappings table, and every consumer reads it.
    for (event_type, function) in [
        ("object-attribute.updated", "RecordsFunction"),
        ("list-attribute.created", "ListEntriesFunction"),
    ] {
        let family = EventType::parse(event_type).family();
        let function_text = resource(&text, function);
        assert!(
            function_text.contains(&format!(
                "SOURCE_QUEUE_URL: !Ref {}",
                queue_resource(family)
            )),
            "{event_type} is routed to {family}, which {function} does not read"
        );
        assert!(
            function_text.contains("dynamodb:UpdateItem]"),
            "{function} cannot bump the schema generation"
        );
    }
    for function in [
        "RecordsFunction",
        "ListEntriesFunction",
        "NotesFunction",
        "TasksFunction",
    ] {
        let function_text = resource(&text, function);
        assert!(
            function_text.contains("dynamodb:GetItem")
                && function_text.contains("MappingsTable.Arn"),
            "{function} cannot read the schema generation"
        );
    }
}

/// The template's queue resource for a family.
fn queue_resource(family: EventFamily) -> &'static str {
    match family {
        EventFamily::Records => "RecordsQueue",
        EventFamily::ListEntries => "ListEntriesQueue",
        EventFamily::Notes => "NotesQueue",
        EventFamily::Tasks => "TasksQueue",
        EventFamily::Other => "OtherQueue",
    }
}
