//! The walk: every record of an object, page by page, through the same field mapping, batched
//! upsert and id mappings as the records consumer (`SyncContext::sync_page`), with the position
//! saved after every page.
//!
//! Why a full pass rather than "changed since the last reconcile": the only timestamp Attio
//! documents on every record is `created_at`
//! (<https://docs.attio.com/docs/attribute-types/attribute-types-timestamp>); there is no
//! updated-at to filter a record query on, so an update that was missed can only be found by
//! reading every record. Pages are sorted by `created_at` so offsets name the same records
//! while a walk is paused (records created meanwhile land at the end).
//!
//! A pass can outlast one Lambda invocation (15 minutes at most), so a walk takes a `stop_at`
//! time: it starts no page after it, and the saved position lets the next run continue.

use std::future::Future;
use std::sync::Mutex;

use relay_attio::{AttioApi, AttioClient, AttioError, MAX_PAGE_SIZE, Record, RecordQuery};
use relay_crm::CrmSink;
use relay_events::clock::{Clock, UnixSeconds};
use relay_mappings::IdMappings;
use relay_sync::{PageReport, StepError, SyncContext};

use crate::position::{PositionError, PositionStore, SyncPosition};

/// One page of an object's records from `offset`, in an order that is stable across calls.
pub trait RecordPageSource: Send + Sync {
    fn page(
        &self,
        object: &str,
        offset: u32,
        limit: u32,
    ) -> impl Future<Output = Result<Vec<Record>, AttioError>> + Send;
}

impl RecordPageSource for AttioClient {
    /// `POST /objects/{object}/records/query`, oldest first.
    async fn page(&self, object: &str, offset: u32, limit: u32) -> Result<Vec<Record>, AttioError> {
        let query = RecordQuery::new()
            .sort(serde_json::json!({"direction": "asc", "attribute": "created_at"}))
            .limit(limit)
            .offset(offset);
        self.query_records(object, &query).await
    }
}

/// Records per object in memory, served in pages as Attio's query does; for tests. A page can
/// be told to fail once, and every request is recorded.
#[derive(Debug, Default)]
pub struct MemoryRecords {
    objects: std::collections::HashMap<String, Vec<Record>>,
    fail_at: Mutex<Option<(String, u32, AttioError)>>,
    requests: Mutex<Vec<(String, u32)>>,
}

impl MemoryRecords {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_records(mut self, object: &str, records: Vec<Record>) -> Self {
        self.objects.insert(object.to_owned(), records);
        self
    }

    /// The next read of `object` at `offset` fails with `error`.
    pub fn fail_once(&self, object: &str, offset: u32, error: AttioError) {
        *self.fail_at.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((object.to_owned(), offset, error));
    }

    /// (object, offset) of every page read so far.
    pub fn requests(&self) -> Vec<(String, u32)> {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl RecordPageSource for MemoryRecords {
    async fn page(&self, object: &str, offset: u32, limit: u32) -> Result<Vec<Record>, AttioError> {
        self.requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((object.to_owned(), offset));
        let mut fail = self.fail_at.lock().unwrap_or_else(|e| e.into_inner());
        if fail
            .as_ref()
            .is_some_and(|(o, at, _)| o == object && *at == offset)
            && let Some((_, _, error)) = fail.take()
        {
            return Err(error);
        }
        Ok(self
            .objects
            .get(object)
            .map(|all| {
                all.iter()
                    .skip(offset as usize)
                    .take(limit as usize)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }
}

/// Told of a walk's progress (the CLI draws a progress bar; the Lambda logs).
pub trait WalkObserver: Send {
    /// A pass that stopped halfway is continued from `position`.
    fn resumed(&mut self, _position: &SyncPosition) {}
    /// A page was synced; `position` is what was saved.
    fn page_done(&mut self, _report: &PageReport, _position: &SyncPosition) {}
}

/// An observer that ignores everything.
#[derive(Debug, Default)]
pub struct Quiet;
impl WalkObserver for Quiet {}

/// How one walk goes.
#[derive(Debug, Clone)]
pub struct WalkOptions {
    pub object: String,
    /// Records per page (Attio allows at most 500).
    pub page_size: u32,
    /// Start from the first record even if a pass stopped halfway.
    pub restart: bool,
    /// Start no page at or after this time (a Lambda invocation's deadline less a reserve).
    pub stop_at: Option<UnixSeconds>,
}

impl WalkOptions {
    pub fn new(object: impl Into<String>) -> Self {
        Self {
            object: object.into(),
            page_size: MAX_PAGE_SIZE,
            restart: false,
            stop_at: None,
        }
    }
}

/// How a walk ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WalkOutcome {
    /// The pass reached the last record: `position` (offset 0 again) is saved.
    Finished(SyncPosition),
    /// Time ran out: `position` is saved, and the next run continues from it.
    Paused(SyncPosition),
}

impl WalkOutcome {
    pub fn position(&self) -> &SyncPosition {
        match self {
            Self::Finished(p) | Self::Paused(p) => p,
        }
    }
}

/// A page that failed; the position before it is saved, so a new run retries that page.
#[derive(Debug, thiserror::Error)]
pub enum WalkError {
    #[error("reading the page at offset {offset} from Attio failed: {source}; run again to resume")]
    Attio {
        offset: u32,
        #[source]
        source: AttioError,
    },
    #[error("page at offset {offset} failed: {reason}; run again to resume")]
    Sync { offset: u32, reason: String },
    #[error(transparent)]
    Position(#[from] PositionError),
}

fn now_u64(clock: &dyn Clock) -> u64 {
    u64::try_from(clock.now()).unwrap_or(0)
}

/// Walks one object from its saved position (or the first record) to the end or to
/// `options.stop_at`, saving the position after every page.
pub async fn walk_object<S, M, A, R, P>(
    ctx: &SyncContext<S, M, A>,
    source: &R,
    positions: &P,
    clock: &dyn Clock,
    options: &WalkOptions,
    observer: &mut dyn WalkObserver,
) -> Result<WalkOutcome, WalkError>
where
    S: CrmSink,
    M: IdMappings,
    A: AttioApi,
    R: RecordPageSource,
    P: PositionStore,
{
    let object = options.object.as_str();
    let limit = options.page_size.clamp(1, MAX_PAGE_SIZE);
    let saved = if options.restart {
        None
    } else {
        positions.load(object).await?
    };
    let mut position = match saved {
        Some(saved) if saved.in_progress() && saved.object == object => {
            observer.resumed(&saved);
            saved
        }
        other => SyncPosition::start(object, clock.now(), other.and_then(|p| p.last_full_sync)),
    };
    loop {
        if options.stop_at.is_some_and(|stop| clock.now() >= stop) {
            return Ok(WalkOutcome::Paused(position));
        }
        let offset = position.offset;
        let records = source
            .page(object, offset, limit)
            .await
            .map_err(|source| WalkError::Attio { offset, source })?;
        if records.is_empty() {
            break;
        }
        let report = ctx
            .sync_page(object, &records)
            .await
            .map_err(|StepError(d)| WalkError::Sync {
                offset,
                reason: format!("{d:?}"),
            })?;
        let count = u32::try_from(records.len()).unwrap_or(u32::MAX);
        position.offset = offset.saturating_add(count);
        position.records_synced += report.synced as u64;
        position.records_failed += report.failed.len() as u64;
        positions.save(&position).await?;
        observer.page_done(&report, &position);
        // Attio fills every page but the last.
        if count < limit {
            break;
        }
    }
    position.offset = 0;
    position.last_full_sync = Some(now_u64(clock));
    positions.save(&position).await?;
    Ok(WalkOutcome::Finished(position))
}

/// What a pass over several objects did, one entry per object in the order walked.
#[derive(Debug, Default)]
pub struct PassReport {
    pub objects: Vec<(String, ObjectResult)>,
}

#[derive(Debug)]
pub enum ObjectResult {
    Walked(WalkOutcome),
    Failed(WalkError),
    /// Time ran out before this object's turn.
    NotStarted,
}

impl PassReport {
    /// True when every object reached its last record.
    pub fn complete(&self) -> bool {
        self.objects
            .iter()
            .all(|(_, r)| matches!(r, ObjectResult::Walked(WalkOutcome::Finished(_))))
    }

    pub fn failed(&self) -> Vec<&str> {
        self.objects
            .iter()
            .filter(|(_, r)| matches!(r, ObjectResult::Failed(_)))
            .map(|(o, _)| o.as_str())
            .collect()
    }
}

/// Walks `objects` once each, in a fair order across runs: a pass that stopped halfway first
/// (it resumes), then the object whose last full pass is oldest (never first). So when one
/// run cannot finish them all, the next run does not start the finished ones again while the
/// others wait. One object failing does not stop the others: its position is saved, and the
/// next run retries its page.
pub async fn walk_objects<S, M, A, R, P>(
    ctx: &SyncContext<S, M, A>,
    source: &R,
    positions: &P,
    clock: &dyn Clock,
    objects: &[String],
    template: &WalkOptions,
    observer: &mut dyn WalkObserver,
) -> PassReport
where
    S: CrmSink,
    M: IdMappings,
    A: AttioApi,
    R: RecordPageSource,
    P: PositionStore,
{
    let mut report = PassReport::default();
    let mut order = Vec::with_capacity(objects.len());
    for object in objects {
        match positions.load(object).await {
            Ok(saved) => order.push((object.clone(), saved)),
            Err(err) => report
                .objects
                .push((object.clone(), ObjectResult::Failed(err.into()))),
        }
    }
    // Stable: objects that tie keep the caller's order.
    order.sort_by_key(|(_, saved)| {
        let in_progress = saved.as_ref().is_some_and(SyncPosition::in_progress);
        let last = saved.as_ref().and_then(|p| p.last_full_sync);
        (!in_progress, last.is_some(), last)
    });
    for (object, _) in order {
        if template.stop_at.is_some_and(|stop| clock.now() >= stop) {
            report.objects.push((object, ObjectResult::NotStarted));
            continue;
        }
        let options = WalkOptions {
            object: object.clone(),
            ..template.clone()
        };
        let result = match walk_object(ctx, source, positions, clock, &options, observer).await {
            Ok(outcome) => ObjectResult::Walked(outcome),
            Err(err) => ObjectResult::Failed(err),
        };
        report.objects.push((object, result));
    }
    report
}
