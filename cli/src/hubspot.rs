//! `attio-relay hubspot setup`: one-time HubSpot preparation, and a check that what is already
//! there will work.
//!
//! Records are upserted on `attio_record_id`, and HubSpot only upserts on a property that
//! requires unique values (`hasUniqueValue`). A portal where someone created the property by
//! hand, without "require unique values", looks set up but refuses every upsert; HubSpot
//! cannot make an existing property unique ("Only net new properties can be set to contain a
//! unique value": <https://developers.hubspot.com/changelog/unique-properties-for-contacts>),
//! so setup stops and says how to replace it.
//!
//! Notes and tasks get a plain text marker property each (`attio_note_id`, `attio_task_id`,
//! in the group of the object's body or subject): every create carries it, so a create whose
//! answer was lost is found with the search API instead of made twice (`relay-crm`'s
//! `markers.rs`). HubSpot offers no unique values on notes or tasks; the marker need not be
//! unique, only a string.

use anyhow::bail;
use relay_crm::{CrmObject, HubSpotConfig, HubSpotSink, ID_PROPERTY, marker_property};
use serde_json::Value;

#[derive(Debug, clap::Args)]
pub struct HubSpotArgs {
    #[command(subcommand)]
    pub command: HubSpotCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum HubSpotCommand {
    /// Create the unique `attio_record_id` property on contacts, companies and deals (records
    /// are upserted on it), and the `attio_note_id` / `attio_task_id` markers on notes and
    /// tasks (a create whose answer was lost is found by them). Safe to run again: an existing
    /// property is checked and left alone; a wrong one fails with how to fix it.
    Setup {
        /// HubSpot private app token (scopes: crm.schemas.*.write, crm.objects.*.write).
        #[arg(long, env = "HUBSPOT_TOKEN", hide_env_values = true)]
        token: String,
        /// HubSpot API root.
        #[arg(long, env = "HUBSPOT_API_URL", default_value = relay_crm::HUBSPOT_API_URL)]
        api_url: String,
    },
}

/// What is wrong with an existing `attio_record_id`, if anything.
fn problem(definition: &Value) -> Option<String> {
    let mut wrong = Vec::new();
    if definition["hasUniqueValue"].as_bool() != Some(true) {
        wrong.push("it does not require unique values (hasUniqueValue is not true)".to_owned());
    }
    match definition["type"].as_str() {
        Some("string") | None => {}
        Some(other) => wrong.push(format!("its type is {other:?}, not \"string\"")),
    }
    (!wrong.is_empty()).then(|| wrong.join(", and "))
}

/// The fix for objects whose property cannot be used, step by step.
fn how_to_fix(api_url: &str, objects: &[CrmObject]) -> String {
    let api_url = api_url.trim_end_matches('/');
    let names: Vec<String> = objects.iter().map(ToString::to_string).collect();
    let deletes: Vec<String> = objects
        .iter()
        .map(|o| {
            format!(
                "       curl -X DELETE -H \"Authorization: Bearer $HUBSPOT_TOKEN\" \
                 {api_url}/crm/v3/properties/{o}/{ID_PROPERTY}"
            )
        })
        .collect();
    format!(
        "HubSpot upserts records only on a property that requires unique values, and it cannot \
         make an existing property unique (only new properties can be:\n\
         https://developers.hubspot.com/changelog/unique-properties-for-contacts). \
         The relay always uses the name {ID_PROPERTY}, so replace the property on {objects}:\n\
         1. Check nothing else relies on {ID_PROPERTY} (workflows, lists, forms, other \
         integrations): its values are lost.\n\
         2. Delete it, in HubSpot (Settings > Properties > {ID_PROPERTY} > Delete) or with the \
         properties API:\n{deletes}\n\
         3. Run `attio-relay hubspot setup` again: it creates {ID_PROPERTY} with unique values.\n\
         4. Write the Attio ids again: `attio-relay reconcile` (or `attio-relay backfill \
         --object <slug>` per object).",
        objects = names.join(", "),
        deletes = deletes.join("\n"),
    )
}

pub async fn run(args: HubSpotArgs) -> anyhow::Result<()> {
    match args.command {
        HubSpotCommand::Setup { token, api_url } => {
            let mut config = HubSpotConfig::new(token);
            config.base_url = api_url.clone();
            let sink = HubSpotSink::new(config)?;
            let mut unusable = Vec::new();
            for object in [CrmObject::Contacts, CrmObject::Companies, CrmObject::Deals] {
                let state = match sink.property_definition(object, ID_PROPERTY).await? {
                    None => {
                        sink.ensure_id_property(object).await?;
                        "created (unique)".to_owned()
                    }
                    Some(definition) => match problem(&definition) {
                        None => "already there (unique)".to_owned(),
                        Some(why) => {
                            unusable.push(object);
                            format!("UNUSABLE: {why}")
                        }
                    },
                };
                // CrmObject's Display ignores width: pad its text.
                println!("{:<9} {ID_PROPERTY}: {state}", object.to_string());
            }
            if !unusable.is_empty() {
                eprintln!("\n{}", how_to_fix(&api_url, &unusable));
                bail!(
                    "{ID_PROPERTY} cannot be used on {} (see above)",
                    unusable
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                );
            }
            let mut bad_markers = Vec::new();
            for object in [CrmObject::Notes, CrmObject::Tasks] {
                let Some(marker) = marker_property(object) else {
                    continue;
                };
                let state = match sink.property_definition(object, marker).await? {
                    None => {
                        sink.ensure_marker_property(object).await?;
                        "created".to_owned()
                    }
                    Some(definition) => match definition["type"].as_str() {
                        Some("string") | None => "already there".to_owned(),
                        Some(other) => {
                            bad_markers.push(format!("{object} {marker}"));
                            format!("UNUSABLE: its type is {other:?}, not \"string\"")
                        }
                    },
                };
                println!("{:<9} {marker}: {state}", object.to_string());
            }
            if !bad_markers.is_empty() {
                bail!(
                    "{} cannot hold Attio ids: delete it (Settings > Properties, or DELETE \
                     {}/crm/v3/properties/<object>/<name>) and run `attio-relay hubspot setup` again",
                    bad_markers.join(", "),
                    api_url.trim_end_matches('/')
                );
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_a_unique_string_property_is_usable() {
        assert_eq!(
            problem(&json!({"name": ID_PROPERTY, "type": "string", "hasUniqueValue": true})),
            None
        );
        let not_unique = problem(&json!({"type": "string", "hasUniqueValue": false})).unwrap();
        assert!(not_unique.contains("unique"), "{not_unique}");
        assert!(
            problem(&json!({"type": "string"})).is_some(),
            "absent means not unique"
        );
        let number = problem(&json!({"type": "number", "hasUniqueValue": true})).unwrap();
        assert!(number.contains("\"number\""), "{number}");
    }

    #[test]
    fn the_fix_names_each_object_and_its_delete_call() {
        let fix = how_to_fix(
            "https://api.hubapi.com/",
            &[CrmObject::Contacts, CrmObject::Deals],
        );
        assert!(
            fix.contains("https://api.hubapi.com/crm/v3/properties/contacts/attio_record_id"),
            "{fix}"
        );
        assert!(
            fix.contains("/crm/v3/properties/deals/attio_record_id"),
            "{fix}"
        );
        assert!(!fix.contains("/companies/"), "{fix}");
        assert!(fix.contains("attio-relay hubspot setup"), "{fix}");
    }
}
