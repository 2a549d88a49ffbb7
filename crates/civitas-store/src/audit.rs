//! The audit seam: every change made through the API records who did what to which object, in the
//! same transaction as the change. The rows also serve as an outbox: the server appends each one to
//! the ledger and then stores the ledger index it got.

use jiff::Timestamp;
use serde::Serialize;

use crate::{Page, PageRequest, Result, Store, read_pool, timestamp};

/// One recorded change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEvent {
    pub id: i64,
    pub at: Timestamp,
    pub actor: String,
    /// What was done, as `{object kind}.{verb}`, e.g. `organization.create`.
    pub action: String,
    pub object_kind: String,
    pub object_id: String,
    pub details: serde_json::Value,
    /// Where the event sits in the ledger, once it has been appended there.
    pub ledger_index: Option<u64>,
}

#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub object_kind: Option<String>,
    pub object_id: Option<String>,
    pub actor: Option<String>,
}

#[derive(sqlx::FromRow)]
struct AuditRow {
    id: i64,
    at: i64,
    actor: String,
    action: String,
    object_kind: String,
    object_id: String,
    details: String,
    ledger_index: Option<i64>,
}

impl AuditRow {
    fn into_event(self) -> Result<AuditEvent> {
        Ok(AuditEvent {
            id: self.id,
            at: timestamp(self.at)?,
            actor: self.actor,
            action: self.action,
            object_kind: self.object_kind,
            object_id: self.object_id,
            details: serde_json::from_str(&self.details).map_err(crate::StoreError::corrupt)?,
            ledger_index: self.ledger_index.map(|index| index as u64),
        })
    }
}

/// Writes an audit event inside the transaction `$tx`, on behalf of the permit's actor.
macro_rules! record {
    ($tx:expr, $permit:expr, $action:expr, $object_kind:expr, $object_id:expr, $details:expr) => {
        sqlx::query(
            "INSERT INTO audit_events (at, actor, action, object_kind, object_id, details)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind($crate::micros(jiff::Timestamp::now()))
        .bind($permit.actor())
        .bind($action)
        .bind($object_kind)
        .bind($object_id)
        .bind(serde_json::Value::to_string(&$details))
        .execute(&mut *$tx)
        .await?
    };
}
pub(crate) use record;

macro_rules! audit_columns {
    () => {
        "id, at, actor, action, object_kind, object_id, details, ledger_index"
    };
}

impl Store {
    /// Lists audit events, newest first, optionally about one object or by one actor.
    pub async fn list_audit_events(
        &self,
        filter: &AuditFilter,
        page: &PageRequest,
    ) -> Result<Page<AuditEvent>> {
        let before: i64 = match &page.after {
            Some(cursor) => cursor.parse().map_err(|_| {
                crate::StoreError::invalid("cursor", "not a cursor of this listing")
            })?,
            None => i64::MAX,
        };
        let sql = concat!(
            "SELECT ",
            audit_columns!(),
            " FROM audit_events
             WHERE id < $1
               AND ($2 IS NULL OR object_kind = $2)
               AND ($3 IS NULL OR object_id = $3)
               AND ($4 IS NULL OR actor = $4)
             ORDER BY id DESC LIMIT $5"
        );
        let rows: Vec<AuditRow> = read_pool!(self, |pool| {
            sqlx::query_as(sql)
                .bind(before)
                .bind(&filter.object_kind)
                .bind(&filter.object_id)
                .bind(&filter.actor)
                .bind(page.fetch_limit())
                .fetch_all(pool)
                .await?
        });
        let events = rows
            .into_iter()
            .map(AuditRow::into_event)
            .collect::<Result<Vec<_>>>()?;
        Ok(page.page(events, |event| event.id.to_string()))
    }

    /// The audit events about any of these objects (`(object kind, object id)` pairs), oldest
    /// first, as one sequence: the story of a grant is its own events and its application's.
    pub async fn audit_events_about(
        &self,
        objects: &[(&str, &str)],
        page: &PageRequest,
    ) -> Result<Page<AuditEvent>> {
        let after: i64 = match &page.after {
            Some(cursor) => cursor.parse().ok().filter(|id| *id >= 0).ok_or_else(|| {
                crate::StoreError::invalid("cursor", "not a cursor of this listing")
            })?,
            None => 0,
        };
        if objects.is_empty() {
            return Ok(Page {
                items: Vec::new(),
                next_cursor: None,
            });
        }
        // An OR of the pairs rather than a row-value `IN`: SQLite answers that `IN` by walking
        // every event after the cursor, but the OR by a range of `audit_events_object` per pair
        // (PostgreSQL uses the index either way). So few numbered placeholders bind quickly on
        // SQLite too.
        let pairs = (0..objects.len())
            .map(|n| {
                format!(
                    "(object_kind = ${} AND object_id = ${})",
                    2 * n + 1,
                    2 * n + 2
                )
            })
            .collect::<Vec<_>>()
            .join(" OR ");
        let after_placeholder = objects.len() * 2 + 1;
        let sql = format!(
            "SELECT {} FROM audit_events WHERE ({pairs}) AND id > ${after_placeholder}
             ORDER BY id LIMIT ${}",
            audit_columns!(),
            after_placeholder + 1
        );
        let rows: Vec<AuditRow> = read_pool!(self, |pool| {
            let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql));
            for (kind, id) in objects {
                query = query.bind(*kind).bind(*id);
            }
            query
                .bind(after)
                .bind(page.fetch_limit())
                .fetch_all(pool)
                .await?
        });
        let events = rows
            .into_iter()
            .map(AuditRow::into_event)
            .collect::<Result<Vec<_>>>()?;
        Ok(page.page(events, |event| event.id.to_string()))
    }

    /// The oldest audit events that have not reached the ledger yet, in the order they happened.
    pub async fn unshipped_audit_events(&self, limit: u32) -> Result<Vec<AuditEvent>> {
        let sql = concat!(
            "SELECT ",
            audit_columns!(),
            " FROM audit_events WHERE ledger_index IS NULL ORDER BY id LIMIT $1"
        );
        let rows: Vec<AuditRow> = read_pool!(self, |pool| {
            sqlx::query_as(sql)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(AuditRow::into_event).collect()
    }
}
