//! The SAM template must give the ingest function every variable the code reads, and the
//! table the key and TTL attributes the DynamoDB adapter writes. (cfn-lint checks the
//! template's syntax and types in scripts/test; this checks it against the code.)

use relay_events::EventFamily;
use relay_queue::QueueUrls;

pub(crate) fn template() -> String {
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
        ("hubspot-sync", "HubspotQueue"),
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
        5
    );
    for name in [
        "ATTIO_API_TOKEN_SECRET_ARN",
        "HUBSPOT_TOKEN_SECRET_ARN",
        "MAPPINGS_TABLE",
    ] {
        assert_eq!(
            text.matches(&format!("{name}:")).count(),
            6,
            "{name} on every consumer and the reconcile function"
        );
    }
    assert_eq!(
        text.matches("DEAD_LETTER_QUEUE_URL:").count(),
        5,
        "DEAD_LETTER_QUEUE_URL on every consumer"
    );
    // The consumer families' queues come from one Fn::ForEach loop, each with its family's
    // visibility timeout (checked against its function in the next test); the parked `other`
    // queue is on its own. `hubspot` has had a consumer since two-way sync.
    let (families, queue) = for_each(&text, "ConsumerQueues");
    assert_eq!(
        families,
        ["Records", "ListEntries", "Notes", "Tasks", "Hubspot"]
    );
    assert!(queue.contains("${Family}Queue:"), "{queue}");
    assert!(queue.contains("VisibilityTimeout: !FindInMap [Families, !Ref Family, Visibility]"));
    let queue = resource(&text, "OtherQueue");
    assert!(queue.contains("VisibilityTimeout: 360"), "{queue}");
    assert!(text.contains(&format!("AttributeName: {}", relay_mappings::KEY_ATTRIBUTE)));
}

/// A consumer's event source setting as the range it can take: a literal, or a `!Ref` to a
/// parameter, whose `MinValue` and `MaxValue` bound it (and whose `Default` lies between).
fn setting(text: &str, raw: &str) -> (u64, u64) {
    match raw.strip_prefix("!Ref ") {
        Some(name) => {
            let parameter = resource(text, name);
            let number = |k: &str| -> u64 {
                value(&parameter, k)
                    .parse()
                    .unwrap_or_else(|e| panic!("{name} {k}: {e}"))
            };
            let (min, default, max) = (number("MinValue"), number("Default"), number("MaxValue"));
            assert!(
                min <= default && default <= max,
                "{name}: {min}..{max}, {default}"
            );
            (min, max)
        }
        None => {
            let n = raw.parse().unwrap_or_else(|e| panic!("{raw}: {e}"));
            (n, n)
        }
    }
}

/// The visibility timeout a family's queue gets from the Families mapping.
fn visibility(text: &str, family: &str) -> u64 {
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{family}: {{Name:")))
        .unwrap_or_else(|| panic!("no {family} in the Families mapping"));
    let visibility = line
        .split("Visibility: ")
        .nth(1)
        .unwrap_or_else(|| panic!("{family} has no Visibility: {line}"));
    visibility.trim_end_matches('}').parse().expect("seconds")
}

#[test]
fn every_consumer_event_source_keeps_lambdas_sqs_rules_and_records_take_full_batches() {
    let text = template();
    for (family, function) in CONSUMERS {
        let function = resource(&text, function);
        let timeout: u64 = value(&function, "Timeout").parse().expect("seconds");
        let (_, batch) = setting(&text, value(&function, "BatchSize"));
        let window = value(&function, "MaximumBatchingWindowInSeconds");
        let (least_window, window) = setting(&text, window);
        let scaling = value(&function, "ScalingConfig");
        let concurrency = scaling
            .strip_prefix("{MaximumConcurrency: ")
            .and_then(|s| s.strip_suffix('}'))
            .unwrap_or_else(|| panic!("{family}: ScalingConfig {scaling}"));
        let (least, most) = setting(&text, concurrency);
        // https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-parameters.html: batches
        // over 10 need a window of at least 1 s; windows are 0-300 s; standard queues take up to
        // 10,000 per batch. ScalingConfig.MaximumConcurrency is 2-1000.
        assert!(batch <= 10 || least_window >= 1, "{family}: {function}");
        assert!(window <= 300 && batch <= 10_000, "{family}: {function}");
        assert!(least >= 2 && most <= 1000, "{family}: {least}..{most}");
        // https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-configure.html: at least
        // six times the function timeout, plus the longest window it may wait.
        let hidden = visibility(&text, family);
        assert!(
            hidden >= 6 * timeout + window,
            "{family}: visibility {hidden} s < 6 x {timeout} s + {window} s"
        );
        assert!(function.contains("FunctionResponseTypes: [ReportBatchItemFailures]"));
    }

    // Records: 100 by default, one HubSpot batch upsert's maximum; never more than one Attio
    // record query per object takes (500 ids).
    let records = resource(&text, "RecordsFunction");
    assert!(
        records.contains("BatchSize: !Ref RecordsBatchSize"),
        "{records}"
    );
    let size = resource(&text, "RecordsBatchSize");
    assert_eq!(value(&size, "Default"), "100", "{size}");
    let (_, most) = setting(&text, value(&records, "BatchSize"));
    assert!(most <= u64::from(relay_attio::MAX_PAGE_SIZE), "{size}");
    // The deadline margin leaves the batch's upserts and links their time, and groups start.
    let timeout: u64 = value(&records, "Timeout").parse().expect("seconds");
    let margin: u64 = value(&records, "DEADLINE_MARGIN_SECS")
        .trim_matches('"')
        .parse()
        .expect("seconds");
    assert!(
        margin < timeout && margin >= 50,
        "{margin} s of {timeout} s"
    );
    // Notes, tasks, list entries and HubSpot events sync one item per call: batches of 10.
    for family in ["ListEntries", "Notes", "Tasks", "HubspotSync"] {
        let function = resource(&text, &format!("{family}Function"));
        assert_eq!(value(&function, "BatchSize"), "10", "{family}");
    }
}

/// Each consumer family and its function.
pub(crate) const CONSUMERS: [(&str, &str); 5] = [
    ("Records", "RecordsFunction"),
    ("ListEntries", "ListEntriesFunction"),
    ("Notes", "NotesFunction"),
    ("Tasks", "TasksFunction"),
    ("Hubspot", "HubspotSyncFunction"),
];

/// The YAML block of one parameter or resource: its `  Name:` line and every line after it up
/// to the next entry at the same indentation (or the next section); an entry written on one
/// line (`  Name: {Description: …, Value: …}`) is that line.
pub(crate) fn resource(text: &str, name: &str) -> String {
    let header = format!("  {name}:");
    let one_line = format!("{header} ");
    let mut lines = text
        .lines()
        .skip_while(|l| *l != header && !l.starts_with(&one_line));
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

#[test]
fn every_function_calling_the_apis_may_write_the_shared_rate_budget() {
    // The budget is one item per API in the mappings table, taken with conditional UpdateItem
    // (`relay_ratelimit::DynamoDbBudget`).
    let text = template();
    for function in [
        "RecordsFunction",
        "ListEntriesFunction",
        "NotesFunction",
        "TasksFunction",
        "HubspotSyncFunction",
        "ReconcileFunction",
    ] {
        let function_text = resource(&text, function);
        assert!(
            function_text.contains("dynamodb:GetItem")
                && function_text.contains("dynamodb:UpdateItem")
                && function_text.contains("MAPPINGS_TABLE: !Ref MappingsTable"),
            "{function} cannot take tokens from the shared rate budget"
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
        EventFamily::Hubspot => "HubspotQueue",
    }
}

/// The collection and body of the template's `Fn::ForEach::<name>` loop.
pub(crate) fn for_each(text: &str, name: &str) -> (Vec<String>, String) {
    let block = resource(text, &format!("Fn::ForEach::{name}"));
    let collection = block
        .lines()
        .find_map(|l| l.trim().strip_prefix("- [")?.strip_suffix(']'))
        .unwrap_or_else(|| panic!("Fn::ForEach::{name} has no inline collection: {block}"));
    let items = collection.split(", ").map(str::to_owned).collect();
    (items, block)
}

fn samconfig() -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../infra/samconfig.toml");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The value after `key: ` on the block's line for `key`.
pub(crate) fn value<'a>(block: &'a str, key: &str) -> &'a str {
    let prefix = format!("{key}: ");
    block
        .lines()
        .find_map(|l| l.trim().strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("no {key} in {block}"))
}

#[test]
fn the_template_stays_under_the_repository_length_limit() {
    let lines = template().lines().count();
    assert!(
        lines < 800,
        "infra/template.yaml has {lines} lines (limit 800)"
    );
}

#[test]
fn every_event_family_has_a_dead_letter_queue_and_an_alarm_on_it() {
    let text = template();
    let families: Vec<String> = EventFamily::EVERY
        .map(|f| queue_resource(f).trim_end_matches("Queue").to_owned())
        .into();
    let (dlqs, dlq) = for_each(&text, "DeadLetterQueues");
    assert_eq!(dlqs, families);
    assert!(dlq.contains("MessageRetentionPeriod: 1209600"), "{dlq}");
    let (alarmed, alarm) = for_each(&text, "DeadLetterAlarms");
    assert_eq!(alarmed, families);
    assert!(alarm.contains("Value: !GetAtt [!Sub \"${Family}DeadLetterQueue\", QueueName]"));
    assert!(
        alarm.contains("AlarmActions: !If [HasAlarmEmail, [!Ref AlarmTopic], !Ref AWS::NoValue]")
    );
    let (logged, _) = for_each(&text, "LogGroups");
    for function in [
        "Ingest",
        "HubspotIngest",
        "Records",
        "ListEntries",
        "Notes",
        "Tasks",
        "HubspotSync",
        "Reconcile",
    ] {
        assert!(
            logged.iter().any(|f| f == function),
            "no log group for {function}"
        );
        let block = resource(&text, &format!("{function}Function"));
        assert!(
            block.contains(&format!("LogGroup: !Ref {function}LogGroup")),
            "{block}"
        );
    }
    // The transform that expands the loops.
    assert!(text.contains("Transform: [AWS::LanguageExtensions, AWS::Serverless-2016-10-31]"));
}

#[test]
fn the_public_ingest_url_can_be_capped_without_failing_deploys_by_default() {
    let text = template();
    let parameter = resource(&text, "IngestReservedConcurrency");
    assert!(
        parameter.contains("Default: \"\""),
        "no cap unless asked: {parameter}"
    );
    assert!(
        text.contains(
            "CapIngestConcurrency: !Not [!Equals [!Ref IngestReservedConcurrency, \"\"]]"
        )
    );
    assert!(resource(&text, "IngestFunction").contains(
        "ReservedConcurrentExecutions: !If [CapIngestConcurrency, !Ref IngestReservedConcurrency, !Ref AWS::NoValue]"
    ));
}

#[test]
fn parked_events_are_kept_14_days_and_alarm_well_before_they_expire() {
    let text = template();
    // `other` has no consumer: it keeps SQS's maximum.
    let queue = resource(&text, "OtherQueue");
    let retention: u64 = value(&queue, "MessageRetentionPeriod").parse().unwrap();
    assert_eq!(retention, 14 * 24 * 3600, "{queue}");
    let alarm = resource(&text, "OtherQueueAgeAlarm");
    assert!(
        alarm.contains("MetricName: ApproximateAgeOfOldestMessage"),
        "{alarm}"
    );
    assert!(
        alarm.contains("Value: !GetAtt OtherQueue.QueueName"),
        "{alarm}"
    );
    let threshold: u64 = value(&alarm, "Threshold").parse().unwrap();
    assert!(
        threshold > 0 && threshold <= retention / 2,
        "the alarm must leave days to act: {threshold} s of {retention} s"
    );
    assert!(
        alarm.contains("AlarmActions: !If [HasAlarmEmail, [!Ref AlarmTopic], !Ref AWS::NoValue]")
    );
}

#[test]
fn alarms_reach_someone_cloudwatch_can_publish_to_the_topic() {
    let text = template();
    // CloudWatch cannot use the AWS managed SNS key, so alarms on a topic under it are dropped.
    assert!(!text.contains("KmsMasterKeyId: alias/aws/sns"));
    let topic = resource(&text, "AlarmTopic");
    assert!(
        topic.contains("KmsMasterKeyId: !Ref AlarmTopicKey"),
        "{topic}"
    );
    let key = resource(&text, "AlarmTopicKey");
    assert!(key.contains("Type: AWS::KMS::Key"), "{key}");
    assert!(key.contains("Service: cloudwatch.amazonaws.com"), "{key}");
    assert!(
        key.contains("Action: [kms:Decrypt, kms:GenerateDataKey*]"),
        "{key}"
    );
    // Staging and prod cannot deploy without a real address, and samconfig says where it goes.
    let rule = resource(&text, "AlarmEmailOutsideDev");
    assert!(
        rule.contains("RuleCondition: !Not [!Equals [!Ref Stage, dev]]"),
        "{rule}"
    );
    assert!(
        rule.contains("Assert: !Not [!Equals [!Ref AlarmEmail, \"\"]]"),
        "{rule}"
    );
    let placeholder = "replace-me@example.com";
    assert!(
        rule.contains(&format!("!Equals [!Ref AlarmEmail, {placeholder}]")),
        "{rule}"
    );
    let config = samconfig();
    for env in ["staging", "prod"] {
        let section = config
            .split(&format!("[{env}.deploy.parameters]"))
            .nth(1)
            .unwrap_or_else(|| panic!("samconfig.toml has no {env} deploy section"));
        let overrides = value(&section.replace(" = ", ": "), "parameter_overrides").to_owned();
        assert!(
            overrides.contains(&format!("AlarmEmail={placeholder}")),
            "{env}: {overrides}"
        );
    }
}

#[test]
fn data_that_must_survive_does_and_never_blocks_the_next_create() {
    let text = template();
    // Retained with a fixed name, a table or secret left by a failed first create makes every
    // later create fail ("already exists"): CloudFormation names what is retained.
    let mappings = resource(&text, "MappingsTable");
    for secret in [
        "AttioApiTokenSecret",
        "HubSpotTokenSecret",
        "WebhookSecret",
        "HubSpotAppSecret",
    ] {
        let block = resource(&text, secret);
        assert!(block.contains("DeletionPolicy: Retain"), "{block}");
        assert!(block.contains("UpdateReplacePolicy: Retain"), "{block}");
        assert!(!block.contains("Name:"), "{block}");
    }
    assert!(mappings.contains("DeletionPolicy: Retain"), "{mappings}");
    assert!(
        mappings.contains("UpdateReplacePolicy: Retain"),
        "{mappings}"
    );
    assert!(!mappings.contains("TableName:"), "{mappings}");
    assert!(mappings.contains("DeletionProtectionEnabled: !If [IsProd, true, false]"));
    // The idempotency table keeps its name (the CLI's `status --stage` reads it), so nothing
    // may retain or protect it: a failed create must be able to delete it.
    let keys = resource(&text, "IdempotencyTable");
    assert!(keys.contains("TableName: !Sub attio-relay-${Stage}-idempotency"));
    assert!(keys.contains("DeletionPolicy: Delete"), "{keys}");
    assert!(!keys.contains("Retain") && !keys.contains("DeletionProtectionEnabled: true"));
}

#[test]
fn lambda_keeps_its_start_and_report_lines() {
    let text = template();
    // WARN drops START/REPORT (duration, billed duration, memory, init duration).
    assert_eq!(value(&text, "SystemLogLevel"), "INFO");
    assert!(!text.contains("SystemLogLevel: WARN"));
}

/// The `Environment.Variables` of one function block, `!Ref X` read as `ref:X` and literals
/// without their quotes: what the function would see, by name.
pub(crate) fn environment(block: &str) -> std::collections::HashMap<String, String> {
    block
        .lines()
        .skip_while(|l| l.trim() != "Variables:")
        .skip(1)
        .take_while(|l| l.starts_with("          "))
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let (name, raw) = l.trim().split_once(": ")?;
            let value = match raw.strip_prefix("!Ref ") {
                Some(target) => format!("ref:{target}"),
                None => raw.trim_matches('"').to_owned(),
            };
            Some((name.to_owned(), value))
        })
        .collect()
}

#[test]
fn the_hubspot_ingest_function_is_deployed_as_its_code_reads_it() {
    use relay_ingest::hubspot::{HubSpotSecretsConfig, HubSpotSettings, WEBHOOK_PATH};
    let text = template();
    let function = resource(&text, "HubspotIngestFunction");
    assert!(function.contains("Binary: hubspot-ingest"), "{function}");
    assert!(
        function.contains("AuthType: NONE"),
        "HubSpot cannot send SigV4"
    );
    assert!(function.contains("LogGroup: !Ref HubspotIngestLogGroup"));

    // The settings the function loads from exactly these variables (the parameter for the
    // custom-domain URL defaults to empty, which the settings read as unset).
    let mut env = environment(&function);
    assert_eq!(
        env.remove("HUBSPOT_TARGET_URL").as_deref(),
        Some("ref:HubSpotTargetUrl")
    );
    assert!(resource(&text, "HubSpotTargetUrl").contains("Default: \"\""));
    let settings = HubSpotSettings::from_lookup(|name| env.get(name).cloned())
        .unwrap_or_else(|e| panic!("the template's variables do not load: {e}"));
    assert_eq!(
        settings.secrets,
        HubSpotSecretsConfig::SecretsManager {
            secret_id: "ref:HubSpotAppSecret".into(),
            refresh: std::time::Duration::from_secs(300),
        },
        "the app secret comes from Secrets Manager, never inline"
    );
    assert_eq!(
        settings.queues.get(EventFamily::Hubspot),
        Some("ref:HubspotQueue")
    );
    assert_eq!(settings.idempotency_table, "ref:IdempotencyTable");
    // The lease outlasts an invocation; keys outlive HubSpot's retries (10 over 24 hours).
    let timeout: u64 = value(&text, "Timeout").parse().expect("global timeout");
    assert!(!function.contains("Timeout:"), "the global timeout applies");
    assert!(settings.ingest.lease.as_secs() > timeout, "{settings:?}");
    assert!(settings.ingest.retain.as_secs() > 24 * 3600, "{settings:?}");

    // What it may touch: its keys, its queue, its secret (and the Attio ingest's key actions).
    let key_actions = value(&resource(&text, "IngestFunction"), "Action").to_owned();
    assert!(
        function.contains(&format!("Action: {key_actions}")),
        "{function}"
    );
    assert!(function.contains("Resource: !GetAtt IdempotencyTable.Arn"));
    assert!(
        function.contains(
            "{Effect: Allow, Action: sqs:SendMessage, Resource: !GetAtt HubspotQueue.Arn}"
        ),
        "{function}"
    );
    assert!(function.contains(
        "{Effect: Allow, Action: secretsmanager:GetSecretValue, Resource: !Ref HubSpotAppSecret}"
    ));

    // The URL to give HubSpot: the Function URL (which ends in "/") and the documented path.
    let output = resource(&text, "HubspotWebhookUrl");
    let path = WEBHOOK_PATH.trim_start_matches('/');
    assert!(
        output.contains(&format!(
            "Value: !Sub ${{HubspotIngestFunctionUrl.FunctionUrl}}{path}"
        )),
        "{output}"
    );
    assert!(resource(&text, "HubSpotAppSecretArn").contains("Value: !Ref HubSpotAppSecret"));
}

/// The identifier at the start of `s` (letters and digits).
fn identifier(s: &str) -> &str {
    let end = s
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(s.len());
    &s[..end]
}

#[test]
fn every_reference_names_something_the_template_defines() {
    // cfn-lint does not resolve references through the LanguageExtensions loops, so a typo in a
    // `!Ref` or `!GetAtt` would only fail at deploy time.
    let text = template();
    let mut defined: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut section = "";
    for line in text.lines() {
        if !line.starts_with(' ') && line.ends_with(':') {
            section = line.trim_end_matches(':');
            continue;
        }
        let Some(rest) = line.strip_prefix("  ") else {
            continue;
        };
        if rest.starts_with(' ') || rest.starts_with('#') {
            continue;
        }
        let name = identifier(rest);
        if matches!(section, "Parameters" | "Conditions" | "Resources") && !name.is_empty() {
            defined.insert(name.to_owned());
        }
    }
    // Loop bodies: `${Family}Queue:` for every item of the collection.
    for line in text.lines().filter(|l| l.starts_with("  Fn::ForEach::")) {
        let name = line
            .trim()
            .trim_start_matches("Fn::ForEach::")
            .trim_end_matches(':');
        let (items, block) = for_each(&text, name);
        for template_line in block.lines() {
            let key = template_line.trim().trim_start_matches("- ");
            if let Some(after) = key.strip_prefix("${")
                && let Some((_, suffix)) = after.split_once('}')
                && let Some(suffix) = suffix.strip_suffix(':')
            {
                for item in &items {
                    defined.insert(format!("{item}{suffix}"));
                }
            }
        }
    }
    // SAM makes `<Function>Url` for every function with a FunctionUrlConfig.
    for function in ["IngestFunction", "HubspotIngestFunction"] {
        assert!(resource(&text, function).contains("FunctionUrlConfig:"));
        defined.insert(format!("{function}Url"));
    }
    // Loop variables and !Sub's own variables.
    let local = ["Family", "Function", "Name", "Events", "Sender"];
    let code: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(|l| [l, "\n"])
        .collect();
    let text = code;
    let mut checked = 0;
    for (marker, _) in text
        .match_indices("!Ref ")
        .chain(text.match_indices("!GetAtt "))
    {
        let after = &text[marker..].split_once(' ').expect("marker").1;
        let name = identifier(after);
        if name.is_empty() || after.starts_with("AWS::") {
            continue;
        }
        checked += 1;
        assert!(
            defined.contains(name) || local.contains(&name),
            "{} refers to {name}, which the template does not define",
            text[marker..].lines().next().unwrap_or_default()
        );
    }
    for (at, _) in text.match_indices("${") {
        let name = identifier(&text[at + 2..]);
        if name.is_empty() || text[at + 2..].starts_with("AWS::") {
            continue;
        }
        checked += 1;
        assert!(
            defined.contains(name) || local.contains(&name),
            "${{{name}...}} names nothing the template defines"
        );
    }
    assert!(checked > 100, "only {checked} references found");
    assert!(defined.contains("HubspotQueue") && defined.contains("HubspotDeadLetterQueue"));
}
