//! The data chain over HTTP: the latest signed checkpoint and C2SP tlog-tiles under `/ledger`,
//! and records, checkpoints, proofs and receipts under `/api/v1/ledger`. Also the audit seam's
//! shipping of audit events from the store's outbox into the ledger.

use axum::{
    Router,
    extract::{Path, State},
    http::header,
    response::{IntoResponse, Response},
    routing::get,
};
use base64::{Engine, engine::general_purpose::STANDARD};
use civitas_core::authz::Action;
use civitas_ledger::{
    Ledger, Receipt,
    record::{self, AdminRecord, Record},
    tiles::{self, TileKind},
};
use civitas_store::{AuditEvent, Store};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::{
    AppState,
    auth::{Caller, MaybeCaller},
    error::{ApiError, ApiResult, Problem},
    extract::Query,
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/ledger/checkpoint", get(checkpoint_text))
        .route("/ledger/{*path}", get(tile))
        .route("/api/v1/ledger", get(status))
        .route("/api/v1/ledger/checkpoints", get(checkpoints))
        .route("/api/v1/ledger/records", get(records))
        .route("/api/v1/ledger/records/{index}", get(record_at))
        .route("/api/v1/ledger/proofs/inclusion", get(inclusion_proof))
        .route("/api/v1/ledger/proofs/consistency", get(consistency_proof))
        .route("/api/v1/ledger/receipts/{index}", get(receipt))
}

/// Most records returned by one call.
pub const MAX_RECORDS_PER_CALL: u64 = 1000;

/// A page of records stops adding records once they hold this many bytes (counting each record's
/// 8-byte frame), so that one call reads and encodes a few megabytes rather than the 65 MB that
/// 1000 records of up to 64 KiB could hold.
pub const MAX_RECORD_BYTES_PER_CALL: u64 = 4 << 20;

impl From<civitas_ledger::Error> for ApiError {
    fn from(error: civitas_ledger::Error) -> ApiError {
        use civitas_ledger::Error;
        match error {
            Error::IndexOutOfRange { index, size } => ApiError::NotFound {
                kind: "ledger record",
                id: format!("{index} (the ledger holds {size})"),
            },
            Error::TreeSizeOutOfRange { .. } | Error::Proof(_) => {
                ApiError::invalid("tree_size", error)
            }
            Error::TileNotAvailable { .. } | Error::EntryBundleNotAvailable { .. } => {
                ApiError::NotFound {
                    kind: "tile",
                    id: error.to_string(),
                }
            }
            other => ApiError::internal(other),
        }
    }
}

/// Appends every audit event still in the store's outbox to the ledger, oldest first, and
/// records where each landed. Callers serialize through `AppState::audit_shipping`, which holds
/// `unnoted`: where events landed whose note in the store failed. Those are noted before anything
/// else is shipped, so that a failed write of the store never makes an event ship twice (a node
/// stopped before the note finds its events in the ledger instead: `Gateway::index_ledger`).
/// Nothing is appended once the store is another ledger's (`StoreError::LedgerNotOwned`).
pub async fn ship_audit_events(
    store: &Store,
    ledger: &Ledger,
    unnoted: &mut Vec<(i64, u64)>,
) -> anyhow::Result<usize> {
    if !unnoted.is_empty() {
        store
            .mark_audit_events_shipped(ledger.id(), unnoted)
            .await?;
        unnoted.clear();
    }
    let mut shipped = 0;
    loop {
        let events = store.unshipped_audit_events(1000).await?;
        if events.is_empty() {
            return Ok(shipped);
        }
        store.check_ledger_index_owner(ledger.id()).await?;
        let records = events.iter().map(admin_record).collect();
        let indexes = ledger.append_batch(records).await?;
        *unnoted = events.iter().map(|e| e.id).zip(indexes).collect();
        store
            .mark_audit_events_shipped(ledger.id(), unnoted)
            .await?;
        shipped += unnoted.len();
        unnoted.clear();
    }
}

/// An audit event's ledger record. An event whose details would make the record larger than the
/// ledger takes (a request body of up to 4 MB can carry a long text) is recorded with a digest
/// in place of its details, `{"oversized": {"sha256": …, "bytes": …}}`, over the JSON of the
/// details as the audit trail serves them: the record still commits to them, and one such event
/// cannot stop the outbox, and with it every later event, from reaching the ledger.
pub fn admin_record(event: &AuditEvent) -> Vec<u8> {
    let record = |details: serde_json::Value| {
        record::encode(&Record::Admin(AdminRecord {
            at: event.at,
            actor: event.actor.clone(),
            action: event.action.clone(),
            object_kind: event.object_kind.clone(),
            object_id: event.object_id.clone(),
            details,
            event: u64::try_from(event.id).ok(),
        }))
    };
    let whole = record(event.details.clone());
    if whole.len() <= record::MAX_RECORD_BYTES {
        return whole;
    }
    let details = serde_json::to_vec(&event.details).expect("json values always serialize");
    record(serde_json::json!({
        "oversized": {
            "sha256": record::Sha256Digest::of(&details).to_hex(),
            "bytes": details.len(),
        }
    }))
}

/// Runs `read` on a blocking thread: reads of many records or checkpoints are file I/O that
/// must not hold up an async worker.
async fn read_ledger<T: Send + 'static>(
    state: &AppState,
    read: impl FnOnce(&Ledger) -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    let ledger = state.ledger.clone();
    tokio::task::spawn_blocking(move || read(&ledger))
        .await
        .map_err(ApiError::internal)?
}

async fn checkpoint_text(State(state): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        state.ledger.latest_checkpoint().note,
    )
        .into_response()
}

/// C2SP tlog-tiles: hash tiles are public (they reveal only hashes); entry bundles hold the
/// records and need the `read_audit` permission. A full entry bundle reads up to 16 MiB of
/// records, so it is read on a blocking thread.
async fn tile(
    State(state): State<AppState>,
    caller: MaybeCaller,
    Path(path): Path<String>,
) -> ApiResult<Response> {
    let id = tiles::parse_tile_path(&path)
        .map_err(|error| ApiError::NoRoute(format!("/ledger/{path}: {error}")))?;
    let bytes = match id.kind {
        TileKind::Hashes { level } => state.ledger.tile(level, id.index, id.width)?,
        TileKind::Entries => {
            match &caller.0 {
                Some(caller) => caller.permit(Action::ReadAudit, None)?,
                None => return Err(ApiError::Unauthenticated),
            };
            read_ledger(&state, move |ledger| {
                Ok(ledger.entry_bundle(id.index, id.width)?)
            })
            .await?
        }
    };
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream"),
            // Full tiles never change; partial ones are replaced as the tree grows.
            (
                header::CACHE_CONTROL,
                if u64::from(id.width) == tiles::TILE_WIDTH {
                    "public, max-age=31536000, immutable"
                } else {
                    "no-cache"
                },
            ),
        ],
        bytes,
    )
        .into_response())
}

/// The ledger's state.
#[derive(Debug, Serialize, ToSchema)]
pub struct LedgerStatus {
    /// Durable records.
    pub size: u64,
    /// The latest signed checkpoint (a C2SP signed note).
    pub checkpoint: String,
    pub checkpoint_size: u64,
    /// The node's verifier key in the signed-note format.
    pub verifier_key: String,
    /// The ledger's id: 32 lowercase hex digits, random, made when the ledger directory was first
    /// opened and kept by a salvage. The store records the id of the ledger its indexes come
    /// from, and a node on another ledger refuses to start (see `civitas ledger adopt-store`).
    pub ledger_id: String,
}

#[utoipa::path(get, path = "/api/v1/ledger", tag = "ledger",
    responses((status = 200, body = LedgerStatus)))]
async fn status(State(state): State<AppState>) -> axum::Json<LedgerStatus> {
    let checkpoint = state.ledger.latest_checkpoint();
    axum::Json(LedgerStatus {
        size: state.ledger.size(),
        checkpoint: checkpoint.note,
        checkpoint_size: checkpoint.tree_size,
        verifier_key: state.ledger.verifier_key().to_owned(),
        ledger_id: state.ledger.id().to_owned(),
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CheckpointQuery {
    /// Checkpoints covering at least this many records (default 0).
    pub from_size: Option<u64>,
    /// At most this many (1 to 1000, default 100).
    pub limit: Option<u32>,
}

/// A signed checkpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckpointView {
    pub tree_size: u64,
    /// Base64 root hash.
    pub root: String,
    pub note: String,
}

#[utoipa::path(get, path = "/api/v1/ledger/checkpoints", tag = "ledger", params(CheckpointQuery),
    description = "Signed checkpoints in order of tree size, one per size, so that a verifier can check each against the next. Continue with `from_size` one above the last size returned; an empty list means there are no more.",
    responses((status = 200, body = Vec<CheckpointView>)))]
async fn checkpoints(
    State(state): State<AppState>,
    Query(query): Query<CheckpointQuery>,
) -> ApiResult<axum::Json<Vec<CheckpointView>>> {
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid("limit", "must be between 1 and 1000"));
    }
    let from_size = query.from_size.unwrap_or(0);
    // Anyone may ask, and a page reads some 1,250 checkpoint frames at most from the file: those
    // from the sparse index's entry before `from_size`, then the page.
    let found = read_ledger(&state, move |ledger| {
        Ok(ledger.checkpoints_from(from_size, limit as usize)?)
    })
    .await?;
    Ok(axum::Json(
        found
            .into_iter()
            .map(|checkpoint| CheckpointView {
                tree_size: checkpoint.tree_size,
                root: STANDARD.encode(checkpoint.root),
                note: checkpoint.note,
            })
            .collect(),
    ))
}

/// One ledger record: its index, leaf hash, the decoded record and its exact bytes.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordView {
    pub index: u64,
    /// Base64 RFC 9162 leaf hash.
    pub leaf_hash: String,
    /// The record decoded (see FORMAT.md of the ledger); absent if it does not decode.
    pub record: Option<serde_json::Value>,
    /// The record's canonical bytes, base64.
    pub bytes: String,
}

fn record_view(ledger: &Ledger, index: u64, bytes: Vec<u8>) -> ApiResult<RecordView> {
    let leaf_hash = ledger.leaf_hash(index)?;
    Ok(RecordView {
        index,
        leaf_hash: STANDARD.encode(leaf_hash),
        record: record::decode(&bytes)
            .ok()
            .and_then(|record| serde_json::to_value(record).ok()),
        bytes: STANDARD.encode(&bytes),
    })
}

#[utoipa::path(get, path = "/api/v1/ledger/records/{index}", tag = "ledger",
    params(("index" = u64, Path)),
    responses((status = 200, body = RecordView), (status = 404, body = Problem)))]
async fn record_at(
    State(state): State<AppState>,
    caller: Caller,
    Path(index): Path<u64>,
) -> ApiResult<axum::Json<RecordView>> {
    caller.permit(Action::ReadAudit, None)?;
    let bytes = state.ledger.read(index)?;
    Ok(axum::Json(record_view(&state.ledger, index, bytes)?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RangeQuery {
    /// First index (inclusive).
    pub start: u64,
    /// End index (exclusive); at most 1000 records per call.
    pub end: u64,
}

#[utoipa::path(get, path = "/api/v1/ledger/records", tag = "ledger", params(RangeQuery),
    description = "Records `start` to `end` in index order, as many as the ledger holds. A page also stops once its records reach 4 MiB (records are up to 64 KiB each): it then has a `Link` header with `rel=\"next\"` for the rest of the range. A client that gets fewer records than it asked for continues from `start` plus the number it got; an empty list means the ledger ends at `start`. Auditors only.",
    responses(
        (status = 200, body = Vec<RecordView>, headers(
            ("Link" = String, description = "`<PUBLIC_URL/api/v1/ledger/records?start=…&end=…>; rel=\"next\"`, with the node's public URL, when the page stopped early at its byte limit"),
        )),
        (status = 422, body = Problem),
    ))]
async fn records(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<RangeQuery>,
) -> ApiResult<Response> {
    caller.permit(Action::ReadAudit, None)?;
    if query.end <= query.start || query.end - query.start > MAX_RECORDS_PER_CALL {
        return Err(ApiError::invalid(
            "end",
            format!("must be above start and at most {MAX_RECORDS_PER_CALL} past it"),
        ));
    }
    let start = query.start;
    let end = query.end.min(state.ledger.size());
    if start >= end {
        return Ok(axum::Json(Vec::<RecordView>::new()).into_response());
    }
    let views = read_ledger(&state, move |ledger| {
        ledger
            .read_range_within(start..end, MAX_RECORD_BYTES_PER_CALL)?
            .into_iter()
            .zip(start..)
            .map(|(bytes, index)| record_view(ledger, index, bytes))
            .collect::<ApiResult<Vec<_>>>()
    })
    .await?;
    let next = start + views.len() as u64;
    if next < end {
        // Absolute, from the node's public URL: a node served under a path prefix (behind a
        // reverse proxy) is not at the root of its host.
        let link = format!(
            "<{}/api/v1/ledger/records?start={next}&end={}>; rel=\"next\"",
            state.public_url, query.end
        );
        return Ok(([(header::LINK, link)], axum::Json(views)).into_response());
    }
    Ok(axum::Json(views).into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InclusionQuery {
    pub index: u64,
    /// Defaults to the latest checkpoint's size.
    pub tree_size: Option<u64>,
}

/// An RFC 9162 inclusion proof.
#[derive(Debug, Serialize, ToSchema)]
pub struct InclusionProofView {
    pub index: u64,
    pub tree_size: u64,
    pub leaf_hash: String,
    pub root: String,
    /// Base64 hashes, from the leaf up.
    pub proof: Vec<String>,
}

#[utoipa::path(get, path = "/api/v1/ledger/proofs/inclusion", tag = "ledger", params(InclusionQuery),
    responses((status = 200, body = InclusionProofView), (status = 404, body = Problem), (status = 422, body = Problem)))]
async fn inclusion_proof(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<InclusionQuery>,
) -> ApiResult<axum::Json<InclusionProofView>> {
    drop(caller);
    let tree_size = query
        .tree_size
        .unwrap_or_else(|| state.ledger.latest_checkpoint().tree_size);
    if query.index >= tree_size {
        return Err(ApiError::invalid(
            "index",
            format!("must be below tree_size {tree_size}"),
        ));
    }
    let proof = state.ledger.inclusion_proof(query.index, tree_size)?;
    Ok(axum::Json(InclusionProofView {
        index: query.index,
        tree_size,
        leaf_hash: STANDARD.encode(state.ledger.leaf_hash(query.index)?),
        root: STANDARD.encode(state.ledger.root(tree_size)?),
        proof: proof.iter().map(|hash| STANDARD.encode(hash)).collect(),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConsistencyQuery {
    pub old: u64,
    pub new: u64,
}

/// An RFC 9162 consistency proof between two tree sizes.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsistencyProofView {
    pub old: u64,
    pub new: u64,
    pub old_root: String,
    pub new_root: String,
    pub proof: Vec<String>,
}

#[utoipa::path(get, path = "/api/v1/ledger/proofs/consistency", tag = "ledger", params(ConsistencyQuery),
    responses((status = 200, body = ConsistencyProofView), (status = 422, body = Problem)))]
async fn consistency_proof(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<ConsistencyQuery>,
) -> ApiResult<axum::Json<ConsistencyProofView>> {
    drop(caller);
    if query.old > query.new {
        return Err(ApiError::invalid("old", "must not exceed new"));
    }
    let proof = state.ledger.consistency_proof(query.old, query.new)?;
    Ok(axum::Json(ConsistencyProofView {
        old: query.old,
        new: query.new,
        old_root: STANDARD.encode(state.ledger.root(query.old)?),
        new_root: STANDARD.encode(state.ledger.root(query.new)?),
        proof: proof.iter().map(|hash| STANDARD.encode(hash)).collect(),
    }))
}

#[utoipa::path(get, path = "/api/v1/ledger/receipts/{index}", tag = "ledger",
    params(("index" = u64, Path)),
    description = "A receipt for a record: its leaf hash, a signed checkpoint covering it and the inclusion proof, verifiable with nothing but the node's verifier key.",
    responses((status = 200, body = serde_json::Value), (status = 404, body = Problem)))]
async fn receipt(
    State(state): State<AppState>,
    caller: Caller,
    Path(index): Path<u64>,
) -> ApiResult<axum::Json<Receipt>> {
    drop(caller);
    Ok(axum::Json(state.ledger.receipt(index).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(details: serde_json::Value) -> AuditEvent {
        AuditEvent {
            id: 1,
            at: jiff::Timestamp::UNIX_EPOCH,
            actor: "user:admin".into(),
            action: "application.withdraw".into(),
            object_kind: "application".into(),
            object_id: "app-1".into(),
            details,
            ledger_index: None,
        }
    }

    fn details_of(bytes: &[u8]) -> serde_json::Value {
        match record::decode(bytes).unwrap() {
            Record::Admin(admin) => admin.details,
            other => panic!("not an admin record: {other:?}"),
        }
    }

    #[test]
    fn an_event_that_fits_is_recorded_whole() {
        let details = serde_json::json!({ "reason": "用途已变更" });
        assert_eq!(details_of(&admin_record(&event(details.clone()))), details);
    }

    #[test]
    fn an_oversized_event_is_recorded_with_a_digest_of_its_details() {
        let details = serde_json::json!({ "reason": "撤".repeat(30_000) });
        let bytes = admin_record(&event(details.clone()));
        assert!(bytes.len() <= record::MAX_RECORD_BYTES, "{}", bytes.len());
        let json = serde_json::to_vec(&details).unwrap();
        assert_eq!(
            details_of(&bytes),
            serde_json::json!({ "oversized": {
                "sha256": record::Sha256Digest::of(&json).to_hex(),
                "bytes": json.len(),
            }})
        );
    }
}
