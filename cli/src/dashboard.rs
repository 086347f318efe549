//! The local dashboard at `/_relay` on the dev server: recent deliveries, where each one's
//! events are (queued, synced, in a DLQ), a replay button for every dead letter, and two-way
//! sync's open conflicts (how many, the newest few; `attio-relay conflicts` settles them).
//! Server-rendered HTML with plain forms: nothing to build, works without JavaScript.
//!
//! It reads and replays through the same [queue admin](crate::queues) as `dlq` and `status`,
//! over the dev server's own queue.

use std::collections::BTreeMap;
use std::fmt::Write;

use axum::Form;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use relay_embedded::LocalDb;
use relay_idempotency::SqliteIdempotencyStore;
use relay_mappings::{Conflict, ConflictFilter, ConflictStore, SqliteConflicts};
use relay_sync::formats::iso_instant;
use serde::Deserialize;

use crate::queues::{LocalAdmin, QueueAdmin, QueueMessage, ReplayRequest, Selector, SqliteQueue};

/// At most this many messages read per queue for one page: the page stays fast however full
/// a local queue gets (the queued count comes from the depths, not from this).
const PAGE_MAX: usize = 1000;
/// Open conflicts counted for one page (more shows as "1000+"): the count is read by listing,
/// which stays fast on the local file at this size.
const CONFLICTS_COUNTED: usize = 1000;
/// Open conflicts shown, newest first; `attio-relay conflicts list` shows the rest.
const CONFLICTS_SHOWN: usize = 5;

/// What the dashboard reads.
#[derive(Clone)]
pub struct Dashboard {
    pub queues: QueueAdmin,
    pub store: SqliteIdempotencyStore,
    pub conflicts: SqliteConflicts,
}

impl Dashboard {
    pub fn new(db: LocalDb, queue: SqliteQueue) -> Self {
        Self {
            queues: QueueAdmin::Local(LocalAdmin::new(db.clone(), queue)),
            store: SqliteIdempotencyStore::new(db.clone()),
            conflicts: SqliteConflicts::new(db),
        }
    }
}

/// The open conflicts: how many (up to [`CONFLICTS_COUNTED`], `true` when there are more) and
/// the newest, first.
async fn open_conflicts(store: &SqliteConflicts) -> anyhow::Result<(Vec<Conflict>, bool)> {
    let page = store
        .list(ConflictFilter::Open, CONFLICTS_COUNTED, None)
        .await?;
    Ok((page.conflicts, page.next.is_some()))
}

/// The conflicts section: the count, the newest few (values are shown, as `conflicts list`
/// shows them: the dashboard is the operator's, on loopback), and how to settle them.
fn conflicts_html(html: &mut String, open: &[Conflict], more: bool) {
    let count = if more {
        format!("{}+", open.len())
    } else {
        open.len().to_string()
    };
    let _ = write!(
        html,
        "<h2>Conflicts</h2><p id=\"open-conflicts\"><span class=\"count\">{count}</span> open conflict(s):          fields changed in Attio and HubSpot since their last sync; the later change was kept.          Settle one with <code>attio-relay conflicts resolve &lt;id&gt; --keep attio|hubspot</code>.</p>\
         <table id=\"conflicts\"><tr><th>id</th><th>object</th><th>record</th><th>property</th>\
         <th>attio value</th><th>attio changed</th><th>hubspot value</th><th>hubspot changed</th><th>winner</th></tr>"
    );
    for c in open.iter().take(CONFLICTS_SHOWN) {
        let value = |v: &Option<String>| escape(v.as_deref().unwrap_or("(empty)"));
        let _ = write!(
            html,
            "<tr data-conflict-id=\"{id}\"><td>{id}</td><td>{object}</td><td>{record}</td><td>{property}</td>\
             <td>{attio}</td><td>{attio_at}</td><td>{hubspot}</td><td>{hubspot_at}</td><td>{winner}</td></tr>",
            id = escape(&c.id),
            object = c.object.as_str(),
            record = escape(&c.attio_record_id),
            property = escape(&c.property),
            attio = value(&c.attio.value),
            attio_at = iso_instant(c.attio.changed_at_ms),
            hubspot = value(&c.hubspot.value),
            hubspot_at = iso_instant(c.hubspot.changed_at_ms),
            winner = c.winner.as_str(),
        );
    }
    if open.is_empty() {
        html.push_str("<tr><td colspan=\"9\">no open conflicts</td></tr>");
    }
    html.push_str("</table>");
    if open.len() > CONFLICTS_SHOWN {
        let _ = write!(
            html,
            "<p>the newest {CONFLICTS_SHOWN} shown: <code>attio-relay conflicts list</code> lists them all.</p>"
        );
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Where a delivery's events are now.
fn state(queued: usize, dead: usize, status: &str) -> &'static str {
    match (queued, dead, status) {
        (_, d, _) if d > 0 => "in DLQ",
        (q, _, _) if q > 0 => "queued",
        (_, _, "COMPLETED") => "synced",
        _ => "in progress",
    }
}

fn internal(err: impl std::fmt::Display) -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        format!("dashboard: {err}"),
    )
        .into_response()
}

/// `GET /_relay`.
pub async fn page(State(dashboard): State<Dashboard>) -> Response {
    let (live, dead, queued) = match read_queues(&dashboard.queues).await {
        Ok(read) => read,
        Err(e) => return internal(e),
    };
    let deliveries = match dashboard.store.recent(50).await {
        Ok(rows) => rows,
        Err(e) => return internal(e),
    };
    let (conflicts, more_conflicts) = match open_conflicts(&dashboard.conflicts).await {
        Ok(read) => read,
        Err(e) => return internal(e),
    };
    let mut per_key: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for m in &live {
        per_key.entry(key_of(m)).or_default().0 += 1;
    }
    for m in &dead {
        per_key.entry(key_of(m)).or_default().1 += 1;
    }

    let mut html = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>attio-relay</title>\
         <style>body{font:14px system-ui;margin:2em}table{border-collapse:collapse}\
         td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}\
         .dlq{color:#a00}</style></head><body><h1>attio-relay (local)</h1>",
    );
    let _ = write!(
        html,
        "<h2>Recent deliveries</h2><table id=\"deliveries\"><tr><th>idempotency key</th><th>status</th><th>events</th></tr>"
    );
    for row in &deliveries {
        let (queued, in_dlq) = per_key.get(row.key.as_str()).copied().unwrap_or_default();
        let _ = write!(
            html,
            "<tr data-key=\"{key}\"><td>{key}</td><td>{status}</td><td class=\"state\">{state}</td></tr>",
            key = escape(&row.key),
            status = escape(&row.status),
            state = state(queued, in_dlq, &row.status),
        );
    }
    if deliveries.is_empty() {
        html.push_str("<tr><td colspan=\"3\">none yet: attio-relay send events/deliveries/record-updated.json</td></tr>");
    }
    html.push_str("</table><h2>Dead letters</h2><table id=\"dead-letters\"><tr><th>queue</th><th>event</th><th>key</th><th>reason</th><th></th></tr>");
    for m in &dead {
        let _ = write!(
            html,
            "<tr class=\"dlq\" data-message-id=\"{id}\"><td>{queue}</td><td>{event}</td><td>{key}</td><td>{reason}</td>\
             <td><form method=\"post\" action=\"/_relay/replay\"><input type=\"hidden\" name=\"queue\" value=\"{queue}\">\
             <input type=\"hidden\" name=\"message_id\" value=\"{id}\"><button type=\"submit\">Replay</button></form></td></tr>",
            id = escape(&m.message_id),
            queue = escape(&m.queue),
            event = escape(m.event_type.as_deref().unwrap_or_default()),
            key = escape(key_of(m)),
            reason = escape(m.failure_reason.as_deref().unwrap_or("received too often")),
        );
    }
    if dead.is_empty() {
        html.push_str("<tr><td colspan=\"5\">no dead letters</td></tr>");
    }
    let _ = write!(html, "</table><p>{queued} message(s) queued.</p>");
    conflicts_html(&mut html, &conflicts, more_conflicts);
    html.push_str("</body></html>");
    Html(html).into_response()
}

#[derive(Deserialize)]
pub struct ReplayForm {
    queue: String,
    message_id: String,
}

/// `POST /_relay/replay`: moves one dead letter back to its queue, then shows the page again.
pub async fn replay(State(dashboard): State<Dashboard>, Form(form): Form<ReplayForm>) -> Response {
    if !form.queue.ends_with("-dlq") {
        return (
            StatusCode::BAD_REQUEST,
            "only dead-letter queues can be replayed",
        )
            .into_response();
    }
    let Some(pair) = dashboard
        .queues
        .pairs(None)
        .into_iter()
        .find(|pair| pair.dlq == form.queue)
    else {
        return not_found();
    };
    // The dashboard's admin is the local one: its replay is one transaction, so the SQS-only
    // settings (visibility, journal, progress) have nothing to do.
    let request = ReplayRequest {
        selector: Selector {
            event_type: None,
            ids: [form.message_id].into(),
        },
        native: false,
        visibility_timeout: 0,
        journal_dir: std::path::Path::new(""),
        progress: false,
    };
    match dashboard.queues.replay(&pair, &request).await {
        Ok(replayed) if replayed.count() == 0 => not_found(),
        Ok(_) => Redirect::to("/_relay").into_response(),
        Err(e) => internal(e),
    }
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        "no such dead letter (already replayed?)",
    )
        .into_response()
}

/// Every family's live and dead messages (each queue read up to [`PAGE_MAX`]), and how many
/// are queued in all.
async fn read_queues(
    queues: &QueueAdmin,
) -> anyhow::Result<(Vec<QueueMessage>, Vec<QueueMessage>, u64)> {
    let (mut live, mut dead) = (Vec::new(), Vec::new());
    let pairs = queues.pairs(None);
    for pair in &pairs {
        live.extend(queues.peek(&pair.source, PAGE_MAX, false).await?);
        dead.extend(queues.peek(&pair.dlq, PAGE_MAX, false).await?);
    }
    let sources: Vec<String> = pairs.into_iter().map(|p| p.source).collect();
    let queued = queues
        .depths(&sources)
        .await?
        .iter()
        .map(|d| d.visible)
        .sum();
    Ok((live, dead, queued))
}

fn key_of(message: &QueueMessage) -> &str {
    message.idempotency_key.as_deref().unwrap_or_default()
}
