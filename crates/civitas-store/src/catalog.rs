//! Catalog resources: the current version of each, every earlier version, and the change
//! sequence the search index follows.

use std::collections::{HashMap, HashSet};

use civitas_core::{
    Uscc,
    authz::Permit,
    catalog::{ClassificationCode, OpenType, Resource, ResourceCode, ResourceDraft, ResourceKind},
};
use jiff::Timestamp;
use serde_json::json;

use crate::{
    Backend, Page, PageRequest, Result, Store, StoreError, audit::record, list_placeholders,
    micros, read_pool, timestamp, values_placeholders, write_tx,
};

/// Rows per multi-row statement: well under SQLite's 32,766 and PostgreSQL's 65,535 parameters
/// with the 17 columns of a resource row.
const ROWS_PER_STATEMENT: usize = 500;
/// Resource codes named by one `resource.import` audit event.
const AUDITED_CODES: usize = 1000;

/// How a batch of drafts is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    /// Every draft must be new (an existing code is a duplicate).
    Create,
    /// Every draft must exist already.
    Update,
    /// Create what is new, update what changed, leave identical drafts alone (bulk import).
    Upsert,
}

/// What a bulk write did, row by row.
#[derive(Debug, Default)]
pub struct ImportOutcome {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    /// (index in the batch, error) for rows refused because of stored data, e.g. an unknown
    /// provider. Valid rows of the batch are written regardless.
    pub rejected: Vec<(usize, StoreError)>,
    /// The catalog change sequence number of the first resource written; the others written
    /// follow it in order. `None` when nothing was written.
    pub first_seq: Option<u64>,
}

/// One stored version of a resource.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ResourceVersion {
    pub version: u32,
    pub active: bool,
    pub changed_at: Timestamp,
    pub changed_by: String,
    pub draft: ResourceDraft,
}

/// Which resources a listing or count takes: those that pass every condition given. The lists
/// are bound one parameter per value, so they hold a few hundred values at most (CKAN's `fq`
/// holds 100 clauses at most).
#[derive(Debug, Clone, Default)]
pub struct ResourceFilter {
    /// Only resources of one of these providers (of any provider when empty).
    pub providers: Vec<Uscc>,
    /// No resources of these providers.
    pub excluded_providers: Vec<Uscc>,
    /// Only resources of one of these classifications (of any when empty).
    pub classifications: Vec<ClassificationCode>,
    /// No resources of these classifications.
    pub excluded_classifications: Vec<ClassificationCode>,
    pub kind: Option<ResourceKind>,
    pub active: Option<bool>,
    /// Only resources changed at or after this time.
    pub modified_since: Option<Timestamp>,
    /// Only resources of this open type (anonymous callers see open data only, and counts
    /// shown to them must not tell how many others exist).
    pub open_type: Option<OpenType>,
}

impl ResourceFilter {
    /// The filter's conditions, joined by `AND`, and the number of the first parameter after
    /// theirs. The lists' placeholders come first, numbered from 1: on SQLite they are anonymous,
    /// which only the statement's first parameters can be (see `list_placeholders`). An empty
    /// list is no condition (`IN ()` is not SQL on PostgreSQL). Bind the parameters with
    /// `bind_filter!`.
    fn conditions(&self, backend: Backend) -> (String, usize) {
        let mut conditions = Vec::new();
        let mut next = 1;
        let lists = [
            ("provider IN", self.providers.len()),
            ("provider NOT IN", self.excluded_providers.len()),
            ("classification IN", self.classifications.len()),
            ("classification NOT IN", self.excluded_classifications.len()),
        ];
        for (test, values) in lists {
            if values > 0 {
                conditions.push(format!(
                    "{test} ({})",
                    list_placeholders(backend, next, values)
                ));
                next += values;
            }
        }
        for test in ["kind =", "active =", "updated_at >=", "open_type ="] {
            conditions.push(format!("(${next} IS NULL OR {test} ${next})"));
            next += 1;
        }
        (conditions.join(" AND "), next)
    }
}

/// Binds a `ResourceFilter`'s parameters to a query, in the order of
/// `ResourceFilter::conditions`; the statement's own parameters are bound after them.
macro_rules! bind_filter {
    ($query:expr, $filter:expr) => {{
        let filter: &ResourceFilter = $filter;
        let mut query = $query;
        for provider in filter.providers.iter().chain(&filter.excluded_providers) {
            query = query.bind(provider.as_str());
        }
        for classification in filter
            .classifications
            .iter()
            .chain(&filter.excluded_classifications)
        {
            query = query.bind(classification.to_string());
        }
        query
            .bind(filter.kind.map(ResourceKind::as_str))
            .bind(filter.active)
            .bind(filter.modified_since.map(micros))
            .bind(filter.open_type.map(OpenType::as_str))
    }};
}

#[derive(sqlx::FromRow)]
struct ResourceRow {
    version: i64,
    active: bool,
    created_at: i64,
    updated_at: i64,
    document: String,
}

impl ResourceRow {
    fn into_resource(self) -> Result<Resource> {
        Ok(Resource {
            draft: serde_json::from_str(&self.document).map_err(StoreError::corrupt)?,
            version: self.version as u32,
            active: self.active,
            created_at: timestamp(self.created_at)?,
            updated_at: timestamp(self.updated_at)?,
        })
    }
}

#[derive(sqlx::FromRow)]
struct ExistingRow {
    code: String,
    version: i64,
    active: bool,
    created_at: i64,
    updated_at: i64,
    changed_by: String,
    document: String,
}

/// The columns of [`ExistingRow`].
macro_rules! existing_columns {
    () => {
        "code, version, active, created_at, updated_at, changed_by, document"
    };
}

/// A row about to be written.
struct PendingRow {
    resource: Resource,
    document: String,
    seq: i64,
    /// The version it replaces, which moves to `resource_versions`.
    previous: Option<ExistingRow>,
}

macro_rules! resource_columns {
    () => {
        "version, active, created_at, updated_at, document"
    };
}

impl Store {
    /// Writes a batch of validated drafts in one transaction and returns what happened to each.
    /// Drafts are assumed to have passed `ResourceDraft::validate`; this checks what needs the
    /// stored data: the provider organization is active and an interface or video names one of its
    /// systems.
    ///
    /// In [`WriteMode::Update`] a deactivated resource is refused as a conflict: it is
    /// reactivated on its own ([`Store::set_resource_active`]), never as a side effect of an
    /// edit. A bulk [`WriteMode::Upsert`] (an import) does reactivate what it writes.
    pub async fn write_resources(
        &self,
        permit: &Permit,
        drafts: &[ResourceDraft],
        mode: WriteMode,
    ) -> Result<(ImportOutcome, Vec<Resource>)> {
        self.write_resources_at(permit, drafts, mode, None).await
    }

    /// Replaces one resource's draft on the condition that its current version is
    /// `expected_version` ([`StoreError::Stale`] if not), as one update of
    /// [`Store::write_resources`]. Returns the new version, or `None` when the draft is what is
    /// stored already.
    pub async fn update_resource(
        &self,
        permit: &Permit,
        draft: &ResourceDraft,
        expected_version: u32,
    ) -> Result<Option<Resource>> {
        let (_, mut written) = self
            .write_resources_at(
                permit,
                std::slice::from_ref(draft),
                WriteMode::Update,
                Some(expected_version),
            )
            .await?;
        Ok(written.pop())
    }

    async fn write_resources_at(
        &self,
        permit: &Permit,
        drafts: &[ResourceDraft],
        mode: WriteMode,
        expected_version: Option<u32>,
    ) -> Result<(ImportOutcome, Vec<Resource>)> {
        let mut outcome = ImportOutcome::default();
        let mut written = Vec::new();
        if drafts.is_empty() {
            return Ok((outcome, written));
        }
        let mut codes = HashSet::with_capacity(drafts.len());
        for (index, draft) in drafts.iter().enumerate() {
            if !codes.insert(draft.code.as_str()) {
                return Err(StoreError::invalid(
                    &format!("[{index}].code"),
                    format!("resource {} appears twice in one batch", draft.code),
                ));
            }
        }
        let now = Timestamp::now();
        let backend = self.backend();
        write_tx!(self, |tx| {
            lock_catalog!(tx);
            // Existing versions of the batch's resources.
            let codes: Vec<&str> = drafts.iter().map(|d| d.code.as_str()).collect();
            let mut existing: HashMap<String, ExistingRow> = HashMap::new();
            for chunk in codes.chunks(ROWS_PER_STATEMENT) {
                let sql = format!(
                    concat!(
                        "SELECT ",
                        existing_columns!(),
                        " FROM resources WHERE code IN ({})"
                    ),
                    list_placeholders(backend, 1, chunk.len())
                );
                let mut query = sqlx::query_as::<_, ExistingRow>(sqlx::AssertSqlSafe(sql));
                for code in chunk {
                    query = query.bind(*code);
                }
                for row in query.fetch_all(&mut *tx).await? {
                    existing.insert(row.code.clone(), row);
                }
            }
            // Active providers and their systems.
            let providers: Vec<String> = drafts
                .iter()
                .map(|d| d.provider.to_string())
                .collect::<HashSet<_>>()
                .into_iter()
                .collect();
            let mut active_providers = HashSet::new();
            let mut systems = HashSet::new();
            for chunk in providers.chunks(ROWS_PER_STATEMENT) {
                let sql = format!(
                    "SELECT code FROM organizations WHERE active AND code IN ({})",
                    list_placeholders(backend, 1, chunk.len())
                );
                let mut query = sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(sql));
                for provider in chunk {
                    query = query.bind(provider);
                }
                active_providers.extend(query.fetch_all(&mut *tx).await?);
                let sql = format!(
                    "SELECT organization, code FROM systems WHERE active AND organization IN ({})",
                    list_placeholders(backend, 1, chunk.len())
                );
                let mut query = sqlx::query_as::<_, (String, String)>(sqlx::AssertSqlSafe(sql));
                for provider in chunk {
                    query = query.bind(provider);
                }
                systems.extend(query.fetch_all(&mut *tx).await?);
            }

            let mut pending = Vec::new();
            for (index, draft) in drafts.iter().enumerate() {
                let previous = existing.get(draft.code.as_str());
                let refusal = match (mode, previous) {
                    (WriteMode::Create, Some(_)) => Some(StoreError::Duplicate {
                        kind: "resource",
                        id: draft.code.to_string(),
                    }),
                    (WriteMode::Update, None) => Some(StoreError::NotFound {
                        kind: "resource",
                        id: draft.code.to_string(),
                    }),
                    (WriteMode::Update, Some(row))
                        if expected_version.is_some_and(|v| i64::from(v) != row.version) =>
                    {
                        Some(StoreError::Stale {
                            kind: "resource",
                            id: draft.code.to_string(),
                            expected: expected_version.unwrap_or_default(),
                            current: row.version as u32,
                        })
                    }
                    (WriteMode::Update, Some(row)) if !row.active => {
                        Some(StoreError::Conflict(format!(
                            "resource {} is deactivated; reactivate it before changing it",
                            draft.code
                        )))
                    }
                    _ if !active_providers.contains(draft.provider.as_str()) => {
                        Some(StoreError::invalid(
                            "provider",
                            format!("no active organization {}", draft.provider),
                        ))
                    }
                    _ => match &draft.provider_system {
                        Some(system)
                            if !systems
                                .contains(&(draft.provider.to_string(), system.to_string())) =>
                        {
                            Some(StoreError::invalid(
                                "provider_system",
                                format!("{} has no active system {system}", draft.provider),
                            ))
                        }
                        _ => None,
                    },
                };
                if let Some(error) = refusal {
                    if mode == WriteMode::Upsert {
                        outcome.rejected.push((index, error));
                        continue;
                    }
                    return Err(error);
                }
                let document = serde_json::to_string(draft).expect("drafts serialize");
                let (version, created_at, active) = match previous {
                    None => {
                        outcome.created += 1;
                        (1, now, true)
                    }
                    Some(row) if row.document == document && row.active => {
                        outcome.unchanged += 1;
                        continue;
                    }
                    Some(row) => {
                        outcome.updated += 1;
                        (row.version as u32 + 1, timestamp(row.created_at)?, true)
                    }
                };
                pending.push(PendingRow {
                    resource: Resource {
                        draft: draft.clone(),
                        version,
                        active,
                        created_at,
                        updated_at: now,
                    },
                    document,
                    seq: 0,
                    previous: existing.remove(draft.code.as_str()),
                });
            }
            if !pending.is_empty() {
                let last: i64 = sqlx::query_scalar(
                    "UPDATE catalog_sequence SET last = last + $1 WHERE id = 1 RETURNING last",
                )
                .bind(pending.len() as i64)
                .fetch_one(&mut *tx)
                .await?;
                let first = last - pending.len() as i64 + 1;
                outcome.first_seq = Some(first as u64);
                for (offset, row) in pending.iter_mut().enumerate() {
                    row.seq = first + offset as i64;
                }
                for chunk in pending.chunks(ROWS_PER_STATEMENT) {
                    let (new, replacing): (Vec<&PendingRow>, Vec<&PendingRow>) =
                        chunk.iter().partition(|row| row.previous.is_none());
                    insert_resource_rows!(tx, backend, new, permit.actor(), "");
                    insert_resource_rows!(tx, backend, replacing, permit.actor(), REPLACE_RESOURCE);
                    insert_version_rows!(tx, backend, chunk);
                }
                let created: Vec<&str> = pending
                    .iter()
                    .filter(|row| row.resource.version == 1)
                    .map(|row| row.resource.draft.code.as_str())
                    .collect();
                let updated: Vec<&str> = pending
                    .iter()
                    .filter(|row| row.resource.version > 1)
                    .map(|row| row.resource.draft.code.as_str())
                    .collect();
                if pending.len() == 1 {
                    let row = &pending[0];
                    let action = if row.resource.version == 1 {
                        "resource.create"
                    } else {
                        "resource.update"
                    };
                    record!(
                        tx,
                        permit,
                        action,
                        "resource",
                        row.resource.draft.code.as_str(),
                        json!({
                            "version": row.resource.version,
                            "provider": row.resource.draft.provider.as_str(),
                            "name": row.resource.draft.name,
                        })
                    );
                } else {
                    // One event per chunk of codes keeps each ledger record well below its
                    // size limit, however large the batch.
                    let chunks = created.len().max(updated.len()).div_ceil(AUDITED_CODES);
                    for chunk in 0..chunks {
                        let part = |codes: &[&str]| -> Vec<String> {
                            codes
                                .iter()
                                .skip(chunk * AUDITED_CODES)
                                .take(AUDITED_CODES)
                                .map(|code| (*code).to_owned())
                                .collect()
                        };
                        record!(
                            tx,
                            permit,
                            "resource.import",
                            "catalog",
                            "resources",
                            json!({ "created": part(&created), "updated": part(&updated) })
                        );
                    }
                }
            }
            written = pending.into_iter().map(|row| row.resource).collect();
        });
        Ok((outcome, written))
    }

    /// Deactivates (or reactivates) a resource. Its history keeps every earlier version.
    pub async fn set_resource_active(
        &self,
        permit: &Permit,
        code: &ResourceCode,
        active: bool,
    ) -> Result<Resource> {
        let now = micros(Timestamp::now());
        write_tx!(self, |tx| {
            lock_catalog!(tx);
            let row: Option<ExistingRow> = sqlx::query_as(concat!(
                "SELECT ",
                existing_columns!(),
                " FROM resources WHERE code = $1"
            ))
            .bind(code.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = row else {
                return Err(StoreError::NotFound {
                    kind: "resource",
                    id: code.to_string(),
                });
            };
            if row.active == active {
                return Err(StoreError::Conflict(format!(
                    "resource {code} is already {}",
                    if active { "active" } else { "deactivated" }
                )));
            }
            let seq: i64 = sqlx::query_scalar(
                "UPDATE catalog_sequence SET last = last + 1 WHERE id = 1 RETURNING last",
            )
            .fetch_one(&mut *tx)
            .await?;
            let version = row.version + 1;
            sqlx::query(
                "INSERT INTO resource_versions (code, version, active, changed_at, changed_by, document)
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(code.as_str())
            .bind(row.version)
            .bind(row.active)
            .bind(row.updated_at)
            .bind(&row.changed_by)
            .bind(&row.document)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE resources SET active = $2, version = $3, seq = $4, updated_at = $5,
                     changed_by = $6
                 WHERE code = $1",
            )
            .bind(code.as_str())
            .bind(active)
            .bind(version)
            .bind(seq)
            .bind(now)
            .bind(permit.actor())
            .execute(&mut *tx)
            .await?;
            let action = if active {
                "resource.reactivate"
            } else {
                "resource.deactivate"
            };
            record!(
                tx,
                permit,
                action,
                "resource",
                code.as_str(),
                json!({ "version": version })
            );
        });
        self.resource(code).await
    }

    pub async fn resource(&self, code: &ResourceCode) -> Result<Resource> {
        let sql = concat!(
            "SELECT ",
            resource_columns!(),
            " FROM resources WHERE code = $1"
        );
        let row: Option<ResourceRow> = read_pool!(self, |pool| {
            sqlx::query_as(sql)
                .bind(code.as_str())
                .fetch_optional(pool)
                .await?
        });
        row.ok_or_else(|| StoreError::NotFound {
            kind: "resource",
            id: code.to_string(),
        })?
        .into_resource()
    }

    /// The resources with these codes that exist, in no particular order.
    pub async fn resources_by_code(&self, codes: &[&str]) -> Result<Vec<Resource>> {
        let backend = self.backend();
        let mut resources = Vec::with_capacity(codes.len());
        for chunk in codes.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "SELECT {} FROM resources WHERE code IN ({})",
                resource_columns!(),
                list_placeholders(backend, 1, chunk.len())
            );
            let rows: Vec<ResourceRow> = read_pool!(self, |pool| {
                let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql));
                for code in chunk {
                    query = query.bind(*code);
                }
                query.fetch_all(pool).await?
            });
            for row in rows {
                resources.push(row.into_resource()?);
            }
        }
        Ok(resources)
    }

    /// Every version of a resource, oldest first: those it replaced, then the current one.
    pub async fn resource_history(&self, code: &ResourceCode) -> Result<Vec<ResourceVersion>> {
        let rows: Vec<(i64, bool, i64, String, String)> = read_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT version, active, changed_at, changed_by, document FROM resource_versions
                 WHERE code = $1
                 UNION ALL
                 SELECT version, active, updated_at, changed_by, document FROM resources
                 WHERE code = $1
                 ORDER BY version",
            )
            .bind(code.as_str())
            .fetch_all(pool)
            .await?
        });
        if rows.is_empty() {
            return Err(StoreError::NotFound {
                kind: "resource",
                id: code.to_string(),
            });
        }
        rows.into_iter()
            .map(|(version, active, changed_at, changed_by, document)| {
                Ok(ResourceVersion {
                    version: version as u32,
                    active,
                    changed_at: timestamp(changed_at)?,
                    changed_by,
                    draft: serde_json::from_str(&document).map_err(StoreError::corrupt)?,
                })
            })
            .collect()
    }

    /// Lists resources by code.
    pub async fn list_resources(
        &self,
        filter: &ResourceFilter,
        page: &PageRequest,
    ) -> Result<Page<Resource>> {
        let (conditions, next) = filter.conditions(self.backend());
        let sql = format!(
            "SELECT code, {} FROM resources WHERE {conditions} AND code > ${next}
             ORDER BY code LIMIT ${}",
            resource_columns!(),
            next + 1
        );
        let rows: Vec<(String, i64, bool, i64, i64, String)> = read_pool!(self, |pool| {
            bind_filter!(sqlx::query_as(sqlx::AssertSqlSafe(sql)), filter)
                .bind(page.after.as_deref().unwrap_or(""))
                .bind(page.fetch_limit())
                .fetch_all(pool)
                .await?
        });
        let resources = rows
            .into_iter()
            .map(|(_, version, active, created_at, updated_at, document)| {
                ResourceRow {
                    version,
                    active,
                    created_at,
                    updated_at,
                    document,
                }
                .into_resource()
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(page.page(resources, |resource| resource.draft.code.to_string()))
    }

    /// One page of resources by offset, in code order: for exports that page by number (DCAT-AP
    /// with Hydra paging, CKAN's `start`).
    pub async fn resources_at_offset(
        &self,
        filter: &ResourceFilter,
        offset: u64,
        limit: u32,
    ) -> Result<Vec<Resource>> {
        let (conditions, next) = filter.conditions(self.backend());
        let sql = format!(
            "SELECT {} FROM resources WHERE {conditions} ORDER BY code LIMIT ${next} OFFSET ${}",
            resource_columns!(),
            next + 1
        );
        // An offset past every row gives an empty page, as any offset past the end does.
        let offset = i64::try_from(offset).unwrap_or(i64::MAX);
        let rows: Vec<ResourceRow> = read_pool!(self, |pool| {
            bind_filter!(sqlx::query_as(sqlx::AssertSqlSafe(sql)), filter)
                .bind(i64::from(limit))
                .bind(offset)
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(ResourceRow::into_resource).collect()
    }

    /// How many resources match `filter`.
    pub async fn count_resources(&self, filter: &ResourceFilter) -> Result<u64> {
        let (conditions, _) = filter.conditions(self.backend());
        let sql = format!("SELECT COUNT(*) FROM resources WHERE {conditions}");
        let count: i64 = read_pool!(self, |pool| {
            bind_filter!(sqlx::query_scalar(sqlx::AssertSqlSafe(sql)), filter)
                .fetch_one(pool)
                .await?
        });
        Ok(count as u64)
    }

    /// Codes of all active resources, in code order (CKAN's `package_list` returns them all).
    pub async fn active_resource_codes(&self) -> Result<Vec<String>> {
        let codes = read_pool!(self, |pool| {
            sqlx::query_scalar("SELECT code FROM resources WHERE active ORDER BY code")
                .fetch_all(pool)
                .await?
        });
        Ok(codes)
    }

    /// Codes of active resources that are open data, for anonymous callers.
    pub async fn open_resource_codes(&self) -> Result<Vec<String>> {
        let codes = read_pool!(self, |pool| {
            sqlx::query_scalar(
                "SELECT code FROM resources WHERE active AND open_type = 'open' ORDER BY code",
            )
            .fetch_all(pool)
            .await?
        });
        Ok(codes)
    }

    /// Active resources per provider organization, of `open_type` only when given.
    pub async fn resource_counts_by_provider(
        &self,
        open_type: Option<OpenType>,
    ) -> Result<HashMap<String, u64>> {
        let rows: Vec<(String, i64)> = read_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT provider, COUNT(*) FROM resources
                 WHERE active AND ($1 IS NULL OR open_type = $1) GROUP BY provider",
            )
            .bind(open_type.map(OpenType::as_str))
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|(code, count)| (code, count as u64))
            .collect())
    }

    /// Active resources per classification code, of `open_type` only when given.
    pub async fn resource_counts_by_classification(
        &self,
        open_type: Option<OpenType>,
    ) -> Result<HashMap<String, u64>> {
        let rows: Vec<(String, i64)> = read_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT classification, COUNT(*) FROM resources
                 WHERE active AND ($1 IS NULL OR open_type = $1) GROUP BY classification",
            )
            .bind(open_type.map(OpenType::as_str))
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|(code, count)| (code, count as u64))
            .collect())
    }

    /// The active video resource whose camera is `device`.
    pub async fn video_resource(&self, device: &str) -> Result<Resource> {
        let sql = concat!(
            "SELECT ",
            resource_columns!(),
            " FROM resources WHERE device = $1 AND kind = 'video' AND active"
        );
        let row: Option<ResourceRow> = read_pool!(self, |pool| {
            sqlx::query_as(sql)
                .bind(device)
                .fetch_optional(pool)
                .await?
        });
        row.ok_or_else(|| StoreError::NotFound {
            kind: "video resource for camera",
            id: device.to_owned(),
        })?
        .into_resource()
    }

    /// The last number of the catalog's change sequence: every change to a resource gets the next.
    pub async fn catalog_sequence(&self) -> Result<u64> {
        let last: i64 = read_pool!(self, |pool| {
            sqlx::query_scalar("SELECT last FROM catalog_sequence WHERE id = 1")
                .fetch_one(pool)
                .await?
        });
        Ok(last as u64)
    }

    /// Resources whose latest change comes after `after` in the change sequence, in sequence
    /// order, with their sequence numbers: what the search index has not seen yet.
    pub async fn resource_changes(&self, after: u64, limit: u32) -> Result<Vec<(u64, Resource)>> {
        let sql = concat!(
            "SELECT seq, ",
            resource_columns!(),
            " FROM resources WHERE seq > $1 ORDER BY seq LIMIT $2"
        );
        let rows: Vec<(i64, i64, bool, i64, i64, String)> = read_pool!(self, |pool| {
            sqlx::query_as(sql)
                .bind(after as i64)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
        });
        rows.into_iter()
            .map(|(seq, version, active, created_at, updated_at, document)| {
                let resource = ResourceRow {
                    version,
                    active,
                    created_at,
                    updated_at,
                    document,
                }
                .into_resource()?;
                Ok((seq as u64, resource))
            })
            .collect()
    }
}

/// What replaces a resource row: only rows read as existing under the catalog lock are written
/// with it, so a new resource is a plain insert, and a code that exists after all is a
/// duplicate rather than a silent replacement.
const REPLACE_RESOURCE: &str = "ON CONFLICT (code) DO UPDATE SET
    seq = excluded.seq, version = excluded.version, kind = excluded.kind,
    classification = excluded.classification, provider = excluded.provider,
    provider_system = excluded.provider_system, sharing_type = excluded.sharing_type,
    open_type = excluded.open_type, origin_node = excluded.origin_node,
    name = excluded.name, active = excluded.active, updated_at = excluded.updated_at,
    document = excluded.document, device = excluded.device,
    changed_by = excluded.changed_by";

/// Takes the catalog's write lock (the sequence row) before anything is read: on PostgreSQL two
/// writers of one code would otherwise both read it as it was, and the second would overwrite
/// the first or collide on the version it moves to the history. The statement changes nothing;
/// its row lock is held to the end of the transaction, and every later statement of it (in READ
/// COMMITTED) sees what the previous writer committed. SQLite's single writer serializes anyway.
macro_rules! lock_catalog {
    ($tx:expr) => {
        sqlx::query("UPDATE catalog_sequence SET last = last WHERE id = 1")
            .execute(&mut *$tx)
            .await?;
    };
}
use lock_catalog;

/// Inserts a chunk of pending rows, `$on_conflict` (empty or [`REPLACE_RESOURCE`]) deciding
/// what an existing code does.
macro_rules! insert_resource_rows {
    ($tx:expr, $backend:expr, $chunk:expr, $actor:expr, $on_conflict:expr) => {{
        if let Some(first) = $chunk.first() {
        let sql = format!(
            "INSERT INTO resources (code, seq, version, kind, classification, provider, provider_system,
                 sharing_type, open_type, origin_node, name, active, created_at, updated_at, document, device,
                 changed_by)
             VALUES {} {}",
            values_placeholders($backend, $chunk.len(), 17),
            $on_conflict
        );
        let first_code = first.resource.draft.code.to_string();
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for row in $chunk {
            let draft = &row.resource.draft;
            query = query
                .bind(draft.code.as_str())
                .bind(row.seq)
                .bind(i64::from(row.resource.version))
                .bind(draft.kind.as_str())
                .bind(draft.classification.to_string())
                .bind(draft.provider.as_str())
                .bind(draft.provider_system.as_ref().map(|s| s.as_str()))
                .bind(draft.sharing.sharing_type.as_str())
                .bind(draft.open_type.as_str())
                .bind(draft.origin_node.as_ref().map(|n| n.as_str()))
                .bind(&draft.name)
                .bind(row.resource.active)
                .bind(micros(row.resource.created_at))
                .bind(micros(row.resource.updated_at))
                .bind(&row.document)
                .bind(draft.device.as_ref().map(|d| d.as_str()))
                .bind($actor);
        }
        query
            .execute(&mut *$tx)
            .await
            .map_err(crate::duplicate_as("resource", &first_code))?;
        }
    }};
}
use insert_resource_rows;

/// Moves the versions that a chunk of pending rows replaces to `resource_versions`.
macro_rules! insert_version_rows {
    ($tx:expr, $backend:expr, $chunk:expr) => {{
        let replaced: Vec<&ExistingRow> =
            $chunk.iter().filter_map(|row| row.previous.as_ref()).collect();
        if !replaced.is_empty() {
            let sql = format!(
                "INSERT INTO resource_versions (code, version, active, changed_at, changed_by, document) VALUES {}",
                values_placeholders($backend, replaced.len(), 6)
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for row in replaced {
                query = query
                    .bind(&row.code)
                    .bind(row.version)
                    .bind(row.active)
                    .bind(row.updated_at)
                    .bind(&row.changed_by)
                    .bind(&row.document);
            }
            query.execute(&mut *$tx).await?;
        }
    }};
}
use insert_version_rows;
