//! The Attio, HubSpot and field-mapping options `dev` and `backfill` share, and the clients
//! they build.

use std::path::{Path, PathBuf};

use relay_attio::{AttioClient, AttioConfig, RateLimit};
use relay_crm::{HubSpotConfig, HubSpotSink, OutboxSink};
use relay_ratelimit::Budgets;
use relay_sync::FieldMapping;

#[derive(Debug, Clone, clap::Args)]
pub struct SyncArgs {
    /// Attio API token (read access to records, lists, notes and tasks). `dev` runs its
    /// consumers only when one is given.
    #[arg(long, env = "ATTIO_API_TOKEN", hide_env_values = true)]
    pub attio_token: Option<String>,
    /// Attio API root (point it at a stand-in server for offline runs).
    #[arg(long, env = "ATTIO_API_URL", default_value = relay_attio::DEFAULT_BASE_URL)]
    pub attio_api_url: String,
    /// HubSpot private app token; without it, CRM calls go to the local outbox
    /// (crm-outbox.jsonl in the data folder), which shows every call that would be made.
    #[arg(long, env = "HUBSPOT_TOKEN", hide_env_values = true)]
    pub hubspot_token: Option<String>,
    /// HubSpot API root.
    #[arg(long, env = "HUBSPOT_API_URL", default_value = relay_crm::HUBSPOT_API_URL)]
    pub hubspot_api_url: String,
    /// Field mapping TOML file (Attio attributes -> HubSpot properties, each with a direction);
    /// default: the built-in one.
    #[arg(long, env = "FIELD_MAPPING_FILE")]
    pub field_mapping: Option<PathBuf>,
    /// The field mapping inline, as the Lambda functions take it (the stack's `FieldMapping`
    /// parameter); wins over `--field-mapping`.
    #[arg(
        long = "field-mapping-toml",
        env = "FIELD_MAPPING",
        hide_env_values = true
    )]
    pub field_mapping_toml: Option<String>,
    /// HubSpot requests per 10 s this run may send (not a flag: `reconcile` sets it to its
    /// share of the portal's budget); `None` keeps the client's default.
    #[arg(skip)]
    pub hubspot_requests_per_10s: Option<usize>,
    /// The shared rate budgets the clients draw from (not a flag: `dev`, `backfill` and
    /// `reconcile` open them on the store they use); `None` keeps per-process pacing.
    #[arg(skip)]
    pub budgets: Option<Budgets>,
    /// The share of the shared budgets this run keeps to (not a flag: `reconcile --share`).
    #[arg(skip)]
    pub budget_share: Option<f64>,
}

/// Where CRM writes go.
pub enum CrmTarget {
    HubSpot(HubSpotSink),
    Outbox(OutboxSink),
}

impl SyncArgs {
    pub fn fields(&self) -> anyhow::Result<FieldMapping> {
        Ok(FieldMapping::load(
            self.field_mapping_toml.as_deref(),
            self.field_mapping.as_deref(),
        )?)
    }

    /// The Attio client for `token`, paced to `read_rate` when given.
    pub fn attio(&self, token: &str, read_rate: Option<RateLimit>) -> anyhow::Result<AttioClient> {
        let mut config = AttioConfig::new(token);
        config.base_url = self.attio_api_url.clone();
        if read_rate.is_some() {
            config.read_rate = read_rate;
        }
        if let Some(budgets) = &self.budgets {
            config.read_budget = Some(budgets.attio_reads.clone());
            config.write_budget = Some(budgets.attio_writes.clone());
        }
        Ok(AttioClient::new(config)?)
    }

    /// HubSpot when a token is given, else the outbox in `data_dir`.
    pub fn crm(&self, data_dir: &Path) -> anyhow::Result<CrmTarget> {
        Ok(match &self.hubspot_token {
            Some(token) => {
                let mut config = HubSpotConfig::new(token.as_str());
                config.base_url = self.hubspot_api_url.clone();
                if let Some(limit) = self.hubspot_requests_per_10s {
                    config.requests_per_10s = limit.max(1);
                }
                config.budget = self.budgets.as_ref().map(|b| b.hubspot.clone());
                CrmTarget::HubSpot(HubSpotSink::new(config)?)
            }
            None => CrmTarget::Outbox(OutboxSink::new(crate::dev::outbox_file(data_dir))),
        })
    }
}

/// The shared budgets on `store`, as `RATE_BUDGET`, `RATE_BUDGET_HEADROOM` and
/// `HUBSPOT_REQUESTS_PER_10S` set them (`None` when `RATE_BUDGET=off`).
pub fn open_budgets(
    store: std::sync::Arc<dyn relay_ratelimit::RateBudget>,
) -> anyhow::Result<Option<Budgets>> {
    let settings = relay_ratelimit::BudgetSettings::from_lookup(|name| std::env::var(name).ok())?;
    Ok(settings.budgets(store))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::SyncArgs;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        sync: SyncArgs,
    }

    #[test]
    fn an_inline_mapping_wins_over_the_file_as_in_lambda() {
        let inline = "[objects.people]\ncrm_object = \"contacts\"\n[objects.people.properties]\nfirstname = { attribute = \"name.first_name\", direction = \"both\" }\n";
        let cli = Cli::try_parse_from([
            "relay",
            "--field-mapping",
            "/nonexistent/mapping.toml",
            "--field-mapping-toml",
            inline,
        ])
        .expect("parses");
        let fields = cli
            .sync
            .fields()
            .expect("the inline mapping is read, the file is not");
        assert!(fields.objects.contains_key("people"));
        assert!(
            !fields.objects.contains_key("companies"),
            "not the built-in one"
        );

        let file_only =
            Cli::try_parse_from(["relay", "--field-mapping", "/nonexistent/mapping.toml"])
                .expect("parses");
        assert!(
            file_only.sync.fields().is_err(),
            "the file is read when nothing is inline"
        );
    }
}
