//! `attio-relay hubspot setup`: one-time HubSpot preparation.

use relay_crm::{CrmObject, HubSpotConfig, HubSpotSink, ID_PROPERTY};

#[derive(Debug, clap::Args)]
pub struct HubSpotArgs {
    #[command(subcommand)]
    pub command: HubSpotCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum HubSpotCommand {
    /// Create the unique `attio_record_id` property on contacts, companies and deals (records
    /// are upserted on it). Safe to run again: existing properties are left alone.
    Setup {
        /// HubSpot private app token (scopes: crm.schemas.*.write, crm.objects.*.write).
        #[arg(long, env = "HUBSPOT_TOKEN", hide_env_values = true)]
        token: String,
        /// HubSpot API root.
        #[arg(long, env = "HUBSPOT_API_URL", default_value = relay_crm::HUBSPOT_API_URL)]
        api_url: String,
    },
}

pub async fn run(args: HubSpotArgs) -> anyhow::Result<()> {
    match args.command {
        HubSpotCommand::Setup { token, api_url } => {
            let mut config = HubSpotConfig::new(token);
            config.base_url = api_url;
            let sink = HubSpotSink::new(config)?;
            for object in [CrmObject::Contacts, CrmObject::Companies, CrmObject::Deals] {
                let created = sink.ensure_id_property(object).await?;
                let state = if created { "created" } else { "already there" };
                println!("{object:<9} {ID_PROPERTY}: {state}");
            }
            Ok(())
        }
    }
}
