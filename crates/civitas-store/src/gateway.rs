//! What the exchange gateway keeps in the store: services, client certificates, daily grant
//! usage, and the personal-data access index.

use civitas_core::{
    Code, Uscc,
    access::SystemRef,
    authz::Permit,
    catalog::ResourceCode,
    service::{Service, ServiceDraft},
};
use jiff::Timestamp;
use serde_json::json;

use crate::{
    Page, PageRequest, Result, ScenarioRun, Store, StoreError, audit::record, micros, read_pool,
    timestamp, values_placeholders, write_tx,
};

fn corrupt<E: std::fmt::Display>(error: E) -> StoreError {
    StoreError::corrupt(error)
}

#[derive(sqlx::FromRow)]
struct ServiceRow {
    provider: String,
    system: String,
    code: String,
    resource: String,
    upstream: String,
    methods: String,
    paths: String,
    fields: String,
    timeout_ms: i64,
    active: bool,
    created_at: i64,
    updated_at: i64,
    seq: i64,
}

impl ServiceRow {
    fn into_service(self) -> Result<(u64, Service)> {
        Ok((
            self.seq as u64,
            Service {
                provider: SystemRef {
                    organization: Uscc::parse(&self.provider).map_err(corrupt)?,
                    system: Code::parse(&self.system).map_err(corrupt)?,
                },
                draft: ServiceDraft {
                    code: Code::parse(&self.code).map_err(corrupt)?,
                    resource: ResourceCode::parse(&self.resource).map_err(corrupt)?,
                    upstream: self.upstream,
                    methods: serde_json::from_str(&self.methods).map_err(corrupt)?,
                    paths: serde_json::from_str(&self.paths).map_err(corrupt)?,
                    fields: serde_json::from_str(&self.fields).map_err(corrupt)?,
                    timeout_ms: self.timeout_ms as u32,
                },
                active: self.active,
                created_at: timestamp(self.created_at)?,
                updated_at: timestamp(self.updated_at)?,
            },
        ))
    }
}

macro_rules! service_columns {
    () => {
        "provider, system, code, resource, upstream, methods, paths, fields, timeout_ms, active, created_at, updated_at, seq"
    };
}

/// A client certificate issued to a system by the node's CA.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ClientCertificate {
    /// Hex serial number.
    pub serial: String,
    pub system: SystemRef,
    pub not_after: Timestamp,
    pub created_at: Timestamp,
    pub created_by: String,
    pub revoked_at: Option<Timestamp>,
}

#[derive(sqlx::FromRow)]
struct CertificateRow {
    serial: String,
    organization: String,
    system: String,
    not_after: i64,
    created_at: i64,
    created_by: String,
    revoked_at: Option<i64>,
}

impl CertificateRow {
    fn into_certificate(self) -> Result<ClientCertificate> {
        Ok(ClientCertificate {
            serial: self.serial,
            system: SystemRef {
                organization: Uscc::parse(&self.organization).map_err(corrupt)?,
                system: Code::parse(&self.system).map_err(corrupt)?,
            },
            not_after: timestamp(self.not_after)?,
            created_at: timestamp(self.created_at)?,
            created_by: self.created_by,
            revoked_at: self.revoked_at.map(timestamp).transpose()?,
        })
    }
}

/// Which client certificates to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertificateState {
    /// Neither revoked nor past its end of validity.
    Active,
    /// Not revoked, but past its end of validity.
    Expired,
    Revoked,
}

/// An entry of the personal-data access index: an exchange (its ledger index) delivered data
/// about the person whose ID number has this keyed hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubjectDelivery {
    pub subject: [u8; 32],
    pub ledger_index: u64,
}

/// What `Store::rewind_ledger_index` undid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LedgerIndexRewind {
    /// How far the store had read the ledger before.
    pub indexed_to: u64,
    /// The ledger's size, where the store's position is now if it was past it.
    pub ledger_size: u64,
    /// Entries of the personal-data access index deleted.
    pub subject_deliveries: u64,
    /// Scenario runs deleted.
    pub scenario_runs: u64,
    /// Audit events returned to the outbox.
    pub audit_events: u64,
}

/// Whose the store's indexes derived from the ledger are, as `Store::claim_ledger_index` found
/// them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LedgerIndexOwner {
    /// They were recorded as the given ledger's.
    This,
    /// No ledger was recorded, and now the given one is. `derived` says whether the store had
    /// derived anything already (a store from before ledgers had ids, which can only have been
    /// reading this ledger, as a store belongs to one) or nothing yet (a new store).
    Adopted { derived: bool },
    /// They belong to another ledger, and nothing was changed. `recorded` is its id, or `None`
    /// for a store from before ledgers had ids that derived them from a ledger it did not
    /// record, which cannot be the given one because that one is empty.
    Other { recorded: Option<String> },
}

/// What the store holds derived from a ledger, and which ledger it records them as coming from,
/// as `Store::ledger_index_facts` read them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerIndexFacts {
    /// The id of the ledger the store's derived indexes are recorded as coming from, or `None`
    /// while no node has claimed them (a new store, or one from before ledgers had ids).
    pub recorded_ledger_id: Option<String>,
    /// How far the store has read that ledger.
    pub indexed_to: u64,
    /// Entries of the personal-data access index.
    pub subject_deliveries: u64,
    /// Scenario runs.
    pub scenario_runs: u64,
    /// Audit events noted as landed in the ledger.
    pub audit_events_landed: u64,
    /// Audit events waiting in the outbox for a node to append them.
    pub audit_events_waiting: u64,
}

/// What `Store::hand_ledger_index_over` undid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LedgerIndexHandover {
    /// How far the store had read the old ledger; the position is now 0.
    pub indexed_to: u64,
    /// Entries of the personal-data access index deleted.
    pub subject_deliveries: u64,
    /// Scenario runs deleted.
    pub scenario_runs: u64,
    /// Audit events returned to the outbox.
    pub audit_events: u64,
}

impl LedgerIndexRewind {
    /// Whether the store had derived anything from records the ledger no longer holds.
    pub fn rewound(&self) -> bool {
        self.indexed_to > self.ledger_size || self.audit_events > 0
    }
}

/// In a write transaction `$tx`: locks the row of the store's position in the ledger (on
/// PostgreSQL, so that of two nodes starting at once, or a node starting while an operator hands
/// the store over, the second finds what the first did) and reads the position and the id of the
/// ledger the store records its indexes as coming from: `(i64, Option<String>)`.
macro_rules! lock_ledger_index_state {
    ($tx:expr) => {{
        sqlx::query("UPDATE ledger_index_state SET next = next WHERE id = 1")
            .execute(&mut *$tx)
            .await?;
        let indexed_to: i64 =
            sqlx::query_scalar("SELECT next FROM ledger_index_state WHERE id = 1")
                .fetch_one(&mut *$tx)
                .await?;
        let recorded: Option<String> =
            sqlx::query_scalar("SELECT ledger_id FROM ledger_index_owner WHERE id = 1")
                .fetch_optional(&mut *$tx)
                .await?;
        (indexed_to, recorded)
    }};
}

/// Fails with [`StoreError::LedgerNotOwned`] unless `recorded`, the ledger the store records its
/// derived indexes as coming from, is `ledger_id`.
fn owned_by(recorded: Option<String>, ledger_id: &str) -> Result<()> {
    if recorded.as_deref() == Some(ledger_id) {
        return Ok(());
    }
    Err(StoreError::LedgerNotOwned {
        recorded,
        ledger: ledger_id.to_owned(),
    })
}

/// Fails with [`StoreError::LedgerNotOwned`] when `recorded` names another ledger than
/// `ledger_id`. A store that records none is from before ledger ids, or has not been claimed
/// yet: a node claims it before it reads or ships anything.
fn not_anothers(recorded: Option<String>, ledger_id: &str) -> Result<()> {
    match recorded {
        None => Ok(()),
        recorded => owned_by(recorded, ledger_id),
    }
}

/// The usage rows of a report: the days `$1` to `$2` of the grants whose provider (`$3` is
/// `provider`) or consumer organization is `$4`, on resource `$5` when it is not null.
macro_rules! usage_of_grants {
    () => {
        "FROM grant_usage u JOIN grants g ON g.id = u.grant_id
         WHERE u.day >= $1 AND u.day <= $2
           AND CASE WHEN $3 = 'provider' THEN g.provider ELSE g.consumer_organization END = $4
           AND ($5 IS NULL OR g.resource = $5)"
    };
}

#[derive(sqlx::FromRow)]
struct UsageRow {
    grant_id: String,
    day: String,
    calls: i64,
    denied: i64,
    bytes: i64,
}

impl UsageRow {
    fn into_usage(self) -> GrantUsage {
        GrantUsage {
            grant: self.grant_id,
            day: self.day,
            calls: self.calls as u64,
            denied: self.denied as u64,
            bytes: self.bytes as u64,
        }
    }
}

/// Whose grants a usage report covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageSide {
    /// Grants on the organization's resources.
    Provider,
    /// Grants to the organization's systems.
    Consumer,
}

impl UsageSide {
    pub fn as_str(self) -> &'static str {
        match self {
            UsageSide::Provider => "provider",
            UsageSide::Consumer => "consumer",
        }
    }
}

#[derive(Debug, Clone)]
pub struct UsageFilter {
    pub organization: Uscc,
    pub side: UsageSide,
    pub resource: Option<ResourceCode>,
    /// First and last day (`YYYY-MM-DD`, inclusive); open when absent.
    pub from: Option<String>,
    pub to: Option<String>,
}

/// One grant's usage summed over the report's days.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GrantUsageSummary {
    pub grant: String,
    pub consumer: SystemRef,
    pub provider: Uscc,
    pub resource: String,
    pub calls: u64,
    pub denied: u64,
    pub bytes: u64,
    /// Days with any call.
    pub days: u64,
    pub first_day: String,
    pub last_day: String,
}

/// Totals over every grant the report covers, and a page of the grants.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageReport {
    pub grants: u64,
    pub calls: u64,
    pub denied: u64,
    pub bytes: u64,
    pub page: Page<GrantUsageSummary>,
}

#[derive(sqlx::FromRow)]
struct UsageSummaryRow {
    id: String,
    consumer_organization: String,
    consumer_system: String,
    provider: String,
    resource: String,
    calls: i64,
    denied: i64,
    bytes: i64,
    days: i64,
    first_day: String,
    last_day: String,
}

impl UsageSummaryRow {
    fn into_summary(self) -> Result<GrantUsageSummary> {
        Ok(GrantUsageSummary {
            grant: self.id,
            consumer: SystemRef {
                organization: Uscc::parse(&self.consumer_organization).map_err(corrupt)?,
                system: Code::parse(&self.consumer_system).map_err(corrupt)?,
            },
            provider: Uscc::parse(&self.provider).map_err(corrupt)?,
            resource: self.resource,
            calls: self.calls as u64,
            denied: self.denied as u64,
            bytes: self.bytes as u64,
            days: self.days as u64,
            first_day: self.first_day,
            last_day: self.last_day,
        })
    }
}

/// Calls of one grant on one day.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GrantUsage {
    pub grant: String,
    /// `YYYY-MM-DD` in the node's time zone.
    pub day: String,
    pub calls: u64,
    pub denied: u64,
    pub bytes: u64,
}

impl Store {
    /// Registers or replaces a service; the caller has checked it against its resource.
    pub async fn put_service(
        &self,
        permit: &Permit,
        provider: &SystemRef,
        draft: &ServiceDraft,
    ) -> Result<(Service, bool)> {
        let now = micros(Timestamp::now());
        let id = format!("{provider}/{}", draft.code);
        let created = write_tx!(self, |tx| {
            let system_active: Option<bool> = sqlx::query_scalar(
                "SELECT active FROM systems WHERE organization = $1 AND code = $2",
            )
            .bind(provider.organization.as_str())
            .bind(provider.system.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            if system_active != Some(true) {
                return Err(StoreError::invalid(
                    "provider",
                    format!("no active system {provider}"),
                ));
            }
            let seq: i64 = sqlx::query_scalar(
                "UPDATE access_sequence SET last = last + 1 WHERE id = 1 RETURNING last",
            )
            .fetch_one(&mut *tx)
            .await?;
            let existing: Option<i64> = sqlx::query_scalar(
                "SELECT created_at FROM services WHERE provider = $1 AND system = $2 AND code = $3",
            )
            .bind(provider.organization.as_str())
            .bind(provider.system.as_str())
            .bind(draft.code.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO services (provider, system, code, resource, upstream, methods, paths, fields, timeout_ms,
                     active, created_at, updated_at, seq)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, TRUE, $10, $10, $11)
                 ON CONFLICT (provider, system, code) DO UPDATE SET resource = excluded.resource,
                     upstream = excluded.upstream, methods = excluded.methods, paths = excluded.paths,
                     fields = excluded.fields, timeout_ms = excluded.timeout_ms, active = TRUE,
                     updated_at = excluded.updated_at, seq = excluded.seq",
            )
            .bind(provider.organization.as_str())
            .bind(provider.system.as_str())
            .bind(draft.code.as_str())
            .bind(draft.resource.as_str())
            .bind(&draft.upstream)
            .bind(serde_json::to_string(&draft.methods).expect("serializes"))
            .bind(serde_json::to_string(&draft.paths).expect("serializes"))
            .bind(serde_json::to_string(&draft.fields).expect("serializes"))
            .bind(i64::from(draft.timeout_ms))
            .bind(now)
            .bind(seq)
            .execute(&mut *tx)
            .await?;
            let action = if existing.is_none() {
                "service.create"
            } else {
                "service.update"
            };
            record!(
                tx,
                permit,
                action,
                "service",
                &id,
                json!({
                    "resource": draft.resource.as_str(),
                    "upstream": draft.upstream,
                    "methods": draft.methods,
                    "paths": draft.paths,
                    "fields": draft.fields,
                    "timeout_ms": draft.timeout_ms,
                })
            );
            existing.is_none()
        });
        Ok((self.service(provider, &draft.code).await?, created))
    }

    pub async fn service(&self, provider: &SystemRef, code: &Code) -> Result<Service> {
        let sql = concat!(
            "SELECT ",
            service_columns!(),
            " FROM services WHERE provider = $1 AND system = $2 AND code = $3"
        );
        let row: Option<ServiceRow> = read_pool!(self, |pool| {
            sqlx::query_as(sql)
                .bind(provider.organization.as_str())
                .bind(provider.system.as_str())
                .bind(code.as_str())
                .fetch_optional(pool)
                .await?
        });
        Ok(row
            .ok_or_else(|| StoreError::NotFound {
                kind: "service",
                id: format!("{provider}/{code}"),
            })?
            .into_service()?
            .1)
    }

    /// Deactivates a service: the gateway refuses calls to it within a second.
    pub async fn deactivate_service(
        &self,
        permit: &Permit,
        provider: &SystemRef,
        code: &Code,
    ) -> Result<Service> {
        let id = format!("{provider}/{code}");
        write_tx!(self, |tx| {
            let seq: i64 = sqlx::query_scalar(
                "UPDATE access_sequence SET last = last + 1 WHERE id = 1 RETURNING last",
            )
            .fetch_one(&mut *tx)
            .await?;
            let changed = sqlx::query(
                "UPDATE services SET active = FALSE, updated_at = $4, seq = $5
                 WHERE provider = $1 AND system = $2 AND code = $3 AND active",
            )
            .bind(provider.organization.as_str())
            .bind(provider.system.as_str())
            .bind(code.as_str())
            .bind(micros(Timestamp::now()))
            .bind(seq)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if changed == 0 {
                return Err(StoreError::NotFound {
                    kind: "active service",
                    id,
                });
            }
            record!(tx, permit, "service.deactivate", "service", &id, json!({}));
        });
        self.service(provider, code).await
    }

    /// Services of one providing system, or of every system when `provider` is `None`.
    pub async fn services(&self, provider: Option<&SystemRef>) -> Result<Vec<Service>> {
        let sql = concat!(
            "SELECT ",
            service_columns!(),
            " FROM services WHERE ($1 IS NULL OR (provider = $1 AND system = $2)) ORDER BY provider, system, code"
        );
        let rows: Vec<ServiceRow> = read_pool!(self, |pool| {
            sqlx::query_as(sql)
                .bind(provider.map(|p| p.organization.as_str()))
                .bind(provider.map(|p| p.system.as_str()))
                .fetch_all(pool)
                .await?
        });
        rows.into_iter()
            .map(|row| row.into_service().map(|(_, service)| service))
            .collect()
    }

    /// Services changed after `after` in the access change sequence, with their numbers.
    pub async fn service_changes(&self, after: u64) -> Result<Vec<(u64, Service)>> {
        let sql = concat!(
            "SELECT ",
            service_columns!(),
            " FROM services WHERE seq > $1 ORDER BY seq"
        );
        let rows: Vec<ServiceRow> = read_pool!(self, |pool| {
            sqlx::query_as(sql)
                .bind(after as i64)
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(ServiceRow::into_service).collect()
    }

    pub async fn record_client_certificate(
        &self,
        permit: &Permit,
        serial: &str,
        system: &SystemRef,
        not_after: Timestamp,
    ) -> Result<ClientCertificate> {
        write_tx!(self, |tx| {
            let seq: i64 = sqlx::query_scalar(
                "UPDATE access_sequence SET last = last + 1 WHERE id = 1 RETURNING last",
            )
            .fetch_one(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO client_certificates (serial, organization, system, not_after, created_at, created_by, seq)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(serial)
            .bind(system.organization.as_str())
            .bind(system.system.as_str())
            .bind(micros(not_after))
            .bind(micros(Timestamp::now()))
            .bind(permit.actor())
            .bind(seq)
            .execute(&mut *tx)
            .await
            .map_err(crate::duplicate_as("client certificate", serial))?;
            record!(
                tx,
                permit,
                "certificate.issue",
                "certificate",
                serial,
                json!({ "system": system.to_string(), "not_after": not_after.to_string() })
            );
        });
        self.client_certificate(serial).await
    }

    pub async fn client_certificate(&self, serial: &str) -> Result<ClientCertificate> {
        let row: Option<CertificateRow> = read_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT serial, organization, system, not_after, created_at, created_by, revoked_at
                 FROM client_certificates WHERE serial = $1",
            )
            .bind(serial)
            .fetch_optional(pool)
            .await?
        });
        row.ok_or_else(|| StoreError::NotFound {
            kind: "client certificate",
            id: serial.to_owned(),
        })?
        .into_certificate()
    }

    /// A system's client certificates, newest first, optionally only those in `state` at `now`.
    /// The cursor is the last certificate's issue time and serial.
    pub async fn list_client_certificates(
        &self,
        system: &SystemRef,
        state: Option<CertificateState>,
        now: Timestamp,
        page: &PageRequest,
    ) -> Result<Page<ClientCertificate>> {
        let (after_created, after_serial) = match page.after.as_deref() {
            None => (i64::MAX, String::new()),
            Some(cursor) => cursor
                .split_once('.')
                .and_then(|(created, serial)| Some((created.parse().ok()?, serial.to_owned())))
                .ok_or_else(|| {
                    StoreError::invalid("cursor", "not a cursor from a previous page")
                })?,
        };
        let state = state.map(|state| match state {
            CertificateState::Active => "active",
            CertificateState::Expired => "expired",
            CertificateState::Revoked => "revoked",
        });
        let rows: Vec<CertificateRow> = read_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT serial, organization, system, not_after, created_at, created_by, revoked_at
                 FROM client_certificates
                 WHERE organization = $1 AND system = $2
                   AND (created_at < $3 OR (created_at = $3 AND serial < $4))
                   AND ($5 IS NULL
                        OR ($5 = 'active' AND revoked_at IS NULL AND not_after > $6)
                        OR ($5 = 'expired' AND revoked_at IS NULL AND not_after <= $6)
                        OR ($5 = 'revoked' AND revoked_at IS NOT NULL))
                 ORDER BY created_at DESC, serial DESC LIMIT $7",
            )
            .bind(system.organization.as_str())
            .bind(system.system.as_str())
            .bind(after_created)
            .bind(&after_serial)
            .bind(state)
            .bind(micros(now))
            .bind(page.fetch_limit())
            .fetch_all(pool)
            .await?
        });
        let certificates = rows
            .into_iter()
            .map(CertificateRow::into_certificate)
            .collect::<Result<Vec<_>>>()?;
        Ok(page.page(certificates, |certificate| {
            format!("{}.{}", micros(certificate.created_at), certificate.serial)
        }))
    }

    pub async fn revoke_client_certificate(
        &self,
        permit: &Permit,
        serial: &str,
    ) -> Result<ClientCertificate> {
        write_tx!(self, |tx| {
            let seq: i64 = sqlx::query_scalar(
                "UPDATE access_sequence SET last = last + 1 WHERE id = 1 RETURNING last",
            )
            .fetch_one(&mut *tx)
            .await?;
            let changed = sqlx::query(
                "UPDATE client_certificates SET revoked_at = $2, seq = $3 WHERE serial = $1 AND revoked_at IS NULL",
            )
            .bind(serial)
            .bind(micros(Timestamp::now()))
            .bind(seq)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if changed == 0 {
                return Err(StoreError::Conflict(format!(
                    "client certificate {serial} does not exist or is already revoked"
                )));
            }
            record!(
                tx,
                permit,
                "certificate.revoke",
                "certificate",
                serial,
                json!({})
            );
        });
        self.client_certificate(serial).await
    }

    /// Serials of revoked certificates changed after `after` in the access sequence.
    pub async fn revoked_certificate_changes(&self, after: u64) -> Result<Vec<(u64, String)>> {
        let rows: Vec<(i64, String)> = read_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT seq, serial FROM client_certificates WHERE seq > $1 AND revoked_at IS NOT NULL ORDER BY seq",
            )
            .bind(after as i64)
            .fetch_all(pool)
            .await?
        });
        Ok(rows
            .into_iter()
            .map(|(seq, serial)| (seq as u64, serial))
            .collect())
    }

    /// Adds calls, denials and bytes to grants' daily usage counters.
    pub async fn add_grant_usage(&self, usage: &[GrantUsage]) -> Result<()> {
        if usage.is_empty() {
            return Ok(());
        }
        write_tx!(self, |tx| {
            for entry in usage {
                sqlx::query(
                    "INSERT INTO grant_usage (grant_id, day, calls, denied, bytes) VALUES ($1, $2, $3, $4, $5)
                     ON CONFLICT (grant_id, day) DO UPDATE SET calls = grant_usage.calls + excluded.calls,
                         denied = grant_usage.denied + excluded.denied, bytes = grant_usage.bytes + excluded.bytes",
                )
                .bind(&entry.grant)
                .bind(&entry.day)
                .bind(entry.calls as i64)
                .bind(entry.denied as i64)
                .bind(entry.bytes as i64)
                .execute(&mut *tx)
                .await?;
            }
        });
        Ok(())
    }

    /// Every grant's usage on `day`: what the gateway's daily quotas count from after a restart.
    pub async fn usage_on(&self, day: &str) -> Result<Vec<GrantUsage>> {
        let rows: Vec<UsageRow> = read_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT grant_id, day, calls, denied, bytes FROM grant_usage WHERE day = $1",
            )
            .bind(day)
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().map(UsageRow::into_usage).collect())
    }

    /// One grant's usage per day, newest first, on the days from `from` to `to` (both
    /// inclusive, `YYYY-MM-DD`; open when absent).
    pub async fn grant_usage(
        &self,
        grant: &str,
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<Vec<GrantUsage>> {
        let rows: Vec<UsageRow> = read_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT grant_id, day, calls, denied, bytes FROM grant_usage
                 WHERE grant_id = $1 AND day >= $2 AND day <= $3
                 ORDER BY day DESC",
            )
            .bind(grant)
            .bind(from.unwrap_or(""))
            .bind(to.unwrap_or("9999-12-31"))
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().map(UsageRow::into_usage).collect())
    }

    /// The usage of the grants an organization provides or consumes, summed per grant over a
    /// span of days: the totals, and a page of grants by id.
    pub async fn usage_report(
        &self,
        filter: &UsageFilter,
        page: &PageRequest,
    ) -> Result<UsageReport> {
        let side = filter.side.as_str();
        let from = filter.from.as_deref().unwrap_or("");
        let to = filter.to.as_deref().unwrap_or("9999-12-31");
        let resource = filter.resource.as_ref().map(ResourceCode::as_str);
        let (totals, rows): ((i64, i64, i64, i64), Vec<UsageSummaryRow>) =
            read_pool!(self, |pool| {
                let totals = sqlx::query_as(concat!(
                    "SELECT COUNT(DISTINCT g.id), CAST(COALESCE(SUM(u.calls), 0) AS BIGINT),
                        CAST(COALESCE(SUM(u.denied), 0) AS BIGINT),
                        CAST(COALESCE(SUM(u.bytes), 0) AS BIGINT) ",
                    usage_of_grants!()
                ))
                .bind(from)
                .bind(to)
                .bind(side)
                .bind(filter.organization.as_str())
                .bind(resource)
                .fetch_one(pool)
                .await?;
                let rows = sqlx::query_as(concat!(
                    "SELECT g.id, g.consumer_organization, g.consumer_system, g.provider,
                        g.resource, CAST(SUM(u.calls) AS BIGINT) AS calls,
                        CAST(SUM(u.denied) AS BIGINT) AS denied,
                        CAST(SUM(u.bytes) AS BIGINT) AS bytes, COUNT(*) AS days,
                        MIN(u.day) AS first_day, MAX(u.day) AS last_day ",
                    usage_of_grants!(),
                    " AND g.id > $6
                     GROUP BY g.id, g.consumer_organization, g.consumer_system, g.provider,
                        g.resource
                     ORDER BY g.id LIMIT $7"
                ))
                .bind(from)
                .bind(to)
                .bind(side)
                .bind(filter.organization.as_str())
                .bind(resource)
                .bind(page.after.as_deref().unwrap_or(""))
                .bind(page.fetch_limit())
                .fetch_all(pool)
                .await?;
                (totals, rows)
            });
        let grants = rows
            .into_iter()
            .map(UsageSummaryRow::into_summary)
            .collect::<Result<Vec<_>>>()?;
        Ok(UsageReport {
            grants: totals.0 as u64,
            calls: totals.1 as u64,
            denied: totals.2 as u64,
            bytes: totals.3 as u64,
            page: page.page(grants, |summary| summary.grant.clone()),
        })
    }

    /// Adds what a span of the records of the ledger `ledger_id` contributes to the store's
    /// derived indexes (entries of the personal-data access index, scenario runs, and where
    /// audit events landed, as pairs of event id and ledger index) and records how far into the
    /// ledger they have read, in one transaction, so that a restart continues where it stopped.
    /// Adding a span twice changes nothing, and an audit event keeps the first place noted for
    /// it. An entry of the access index is only the keyed hash of a person's ID number and the
    /// ledger index of an exchange that delivered their data: the exchange's record holds the
    /// rest. Only while the store records its indexes as `ledger_id`'s: otherwise nothing
    /// changes and it fails with [`StoreError::LedgerNotOwned`] (the store was handed over to
    /// another node's ledger while this node ran).
    pub async fn add_ledger_index(
        &self,
        ledger_id: &str,
        deliveries: &[SubjectDelivery],
        runs: &[ScenarioRun],
        audit_events: &[(i64, u64)],
        next_ledger_index: u64,
    ) -> Result<()> {
        let backend = self.backend();
        write_tx!(self, |tx| {
            let (_, recorded) = lock_ledger_index_state!(tx);
            not_anothers(recorded, ledger_id)?;
            for chunk in deliveries.chunks(1000) {
                let placeholders = values_placeholders(backend, chunk.len(), 2);
                let sql = format!(
                    "INSERT INTO subject_deliveries (subject, ledger_index)
                     VALUES {placeholders} ON CONFLICT (subject, ledger_index) DO NOTHING"
                );
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                for delivery in chunk {
                    query = query
                        .bind(&delivery.subject[..])
                        .bind(delivery.ledger_index as i64);
                }
                query.execute(&mut *tx).await?;
            }
            for chunk in runs.chunks(100) {
                let placeholders = values_placeholders(backend, chunk.len(), 9);
                let sql = format!(
                    "INSERT INTO scenario_runs (id, scenario, version, subject, consent, outcome, result, ledger_index, at)
                     VALUES {placeholders} ON CONFLICT (id) DO NOTHING"
                );
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                for run in chunk {
                    query = query
                        .bind(&run.id)
                        .bind(&run.scenario)
                        .bind(i64::from(run.version))
                        .bind(&run.subject)
                        .bind(&run.consent)
                        .bind(&run.outcome)
                        .bind(run.result.to_string())
                        .bind(run.ledger_index as i64)
                        .bind(micros(run.at));
                }
                query.execute(&mut *tx).await?;
            }
            // The first record of an event is where it landed: one appended again (before this
            // was noted) is not noted a second time.
            for (event, ledger_index) in audit_events {
                sqlx::query(
                    "UPDATE audit_events SET ledger_index = $1 WHERE id = $2 AND ledger_index IS NULL",
                )
                .bind(*ledger_index as i64)
                .bind(*event)
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query("UPDATE ledger_index_state SET next = $1 WHERE id = 1 AND next < $1")
                .bind(next_ledger_index as i64)
                .execute(&mut *tx)
                .await?;
        });
        Ok(())
    }

    /// Records where audit events landed in the ledger `ledger_id`: pairs of (event id, ledger
    /// index). Not while the store records its indexes as another ledger's, like
    /// [`Store::add_ledger_index`]: then nothing changes and it fails with
    /// [`StoreError::LedgerNotOwned`].
    pub async fn mark_audit_events_shipped(
        &self,
        ledger_id: &str,
        shipped: &[(i64, u64)],
    ) -> Result<()> {
        if shipped.is_empty() {
            return Ok(());
        }
        write_tx!(self, |tx| {
            let (_, recorded) = lock_ledger_index_state!(tx);
            not_anothers(recorded, ledger_id)?;
            for (id, ledger_index) in shipped {
                sqlx::query("UPDATE audit_events SET ledger_index = $1 WHERE id = $2")
                    .bind(*ledger_index as i64)
                    .bind(*id)
                    .execute(&mut *tx)
                    .await?;
            }
        });
        Ok(())
    }

    /// Fails with [`StoreError::LedgerNotOwned`] when the store records its derived indexes as
    /// those of another ledger than `ledger_id`: a node asks before it appends audit events from the
    /// outbox to its ledger, which would otherwise append them to a ledger the store no longer
    /// reads. (The store is only read: [`Store::mark_audit_events_shipped`] checks again.)
    pub async fn check_ledger_index_owner(&self, ledger_id: &str) -> Result<()> {
        let recorded: Option<String> = read_pool!(self, |pool| {
            sqlx::query_scalar("SELECT ledger_id FROM ledger_index_owner WHERE id = 1")
                .fetch_optional(pool)
                .await?
        });
        not_anothers(recorded, ledger_id)
    }

    /// The first ledger index the store's derived indexes have not read yet.
    pub async fn ledger_index_next(&self) -> Result<u64> {
        let next: i64 = read_pool!(self, |pool| {
            sqlx::query_scalar("SELECT next FROM ledger_index_state WHERE id = 1")
                .fetch_one(pool)
                .await?
        });
        Ok(next as u64)
    }

    /// Checks that the store's indexes derived from the ledger (the access index, the scenario
    /// runs, where audit events landed, and the position) come from the ledger with id
    /// `ledger_id`, which has `ledger_size` records, and records it as theirs if the store has
    /// recorded none: see [`LedgerIndexOwner`]. Their positions name records of one ledger, so
    /// a node whose ledger is not the store's must not read, note or rewind anything. Audit
    /// events waiting in the outbox (written by the command line, say) are not derived from any
    /// ledger and do not count. In one transaction; a store of another ledger is not changed.
    pub async fn claim_ledger_index(
        &self,
        ledger_id: &str,
        ledger_size: u64,
    ) -> Result<LedgerIndexOwner> {
        let owner = write_tx!(self, |tx| {
            let (indexed_to, recorded) = lock_ledger_index_state!(tx);
            match recorded {
                Some(recorded) if recorded == ledger_id => LedgerIndexOwner::This,
                Some(recorded) => LedgerIndexOwner::Other {
                    recorded: Some(recorded),
                },
                None => {
                    // Shipping notes where an event landed before the reader gets there, so
                    // events can have landed while the position is still 0.
                    let landed: i64 = sqlx::query_scalar(
                        "SELECT COUNT(*) FROM (SELECT 1 FROM audit_events
                         WHERE ledger_index IS NOT NULL LIMIT 1) AS landed",
                    )
                    .fetch_one(&mut *tx)
                    .await?;
                    let derived = indexed_to > 0 || landed > 0;
                    if derived && ledger_size == 0 {
                        LedgerIndexOwner::Other { recorded: None }
                    } else {
                        sqlx::query(
                            "INSERT INTO ledger_index_owner (id, ledger_id) VALUES (1, $1)",
                        )
                        .bind(ledger_id)
                        .execute(&mut *tx)
                        .await?;
                        LedgerIndexOwner::Adopted { derived }
                    }
                }
            }
        });
        Ok(owner)
    }

    /// Forgets what the store derived from ledger records at `ledger_size` and beyond, for a
    /// ledger that came back shorter than the store remembers (its records cut by a salvage, or
    /// restored from an older backup), whose indexes from `ledger_size` on go to new records.
    /// In one transaction: entries of the access index and scenario runs at those indexes are
    /// deleted, audit events noted as landed there return to the outbox, to be appended again
    /// in the order they happened, and the position goes back to `ledger_size`, so that reading
    /// the ledger rebuilds the rest. Audit events are looked for even when the position is not
    /// past the ledger, since shipping notes where events landed before the reader gets there.
    /// The access index and the runs are searched only when the position is past the ledger:
    /// their rows always lie before it, and the search reads every row of the access index.
    /// Only the node holding the ledger may call this, before it reads or appends, once
    /// [`Store::claim_ledger_index`] has found the store's indexes to be its ledger's: for any
    /// other `ledger_id` it changes nothing and fails ([`StoreError::LedgerNotOwned`]), since
    /// the rows it would delete and the events it would append again belong to another ledger.
    pub async fn rewind_ledger_index(
        &self,
        ledger_id: &str,
        ledger_size: u64,
    ) -> Result<LedgerIndexRewind> {
        let size = ledger_size as i64;
        let rewind = write_tx!(self, |tx| {
            let (indexed_to, recorded) = lock_ledger_index_state!(tx);
            owned_by(recorded, ledger_id)?;
            let audit_events =
                sqlx::query("UPDATE audit_events SET ledger_index = NULL WHERE ledger_index >= $1")
                    .bind(size)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
            let (subject_deliveries, scenario_runs) = if indexed_to > size {
                let deliveries =
                    sqlx::query("DELETE FROM subject_deliveries WHERE ledger_index >= $1")
                        .bind(size)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected();
                let runs = sqlx::query("DELETE FROM scenario_runs WHERE ledger_index >= $1")
                    .bind(size)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                sqlx::query("UPDATE ledger_index_state SET next = $1 WHERE id = 1")
                    .bind(size)
                    .execute(&mut *tx)
                    .await?;
                (deliveries, runs)
            } else {
                (0, 0)
            };
            LedgerIndexRewind {
                indexed_to: indexed_to as u64,
                ledger_size,
                subject_deliveries,
                scenario_runs,
                audit_events,
            }
        });
        Ok(rewind)
    }

    /// What the store has derived from a ledger and which ledger it records as their source (see
    /// [`LedgerIndexFacts`]), for an operator deciding whether to hand the store over to another
    /// ledger. Counted one after the other, not in one snapshot: exact only while no node runs.
    pub async fn ledger_index_facts(&self) -> Result<LedgerIndexFacts> {
        let (recorded_ledger_id, counts): (Option<String>, (i64, i64, i64, i64, i64)) =
            read_pool!(self, |pool| {
                let recorded =
                    sqlx::query_scalar("SELECT ledger_id FROM ledger_index_owner WHERE id = 1")
                        .fetch_optional(pool)
                        .await?;
                let counts = sqlx::query_as(
                    "SELECT (SELECT next FROM ledger_index_state WHERE id = 1),
                            (SELECT COUNT(*) FROM subject_deliveries),
                            (SELECT COUNT(*) FROM scenario_runs),
                            (SELECT COUNT(*) FROM audit_events WHERE ledger_index IS NOT NULL),
                            (SELECT COUNT(*) FROM audit_events WHERE ledger_index IS NULL)",
                )
                .fetch_one(pool)
                .await?;
                (recorded, counts)
            });
        let (indexed_to, subject_deliveries, scenario_runs, landed, waiting) = counts;
        Ok(LedgerIndexFacts {
            recorded_ledger_id,
            indexed_to: indexed_to as u64,
            subject_deliveries: subject_deliveries as u64,
            scenario_runs: scenario_runs as u64,
            audit_events_landed: landed as u64,
            audit_events_waiting: waiting as u64,
        })
    }

    /// Hands the store's indexes derived from a ledger over to the ledger with id `ledger_id`,
    /// when the ledger they came from is lost (the operator's `civitas ledger adopt-store`): every
    /// entry of the personal-data access index and every scenario run is deleted, since they cite
    /// that ledger's records, every audit event returns to the outbox, to be appended in its
    /// order by the node on the new ledger, the position goes back to 0 and `ledger_id` is
    /// recorded. The node then reads the new ledger from its start, rebuilding what its records
    /// hold and noting where the audit events it finds there landed before the outbox is
    /// shipped, so that a new ledger holding this store's records (an older backup of the lost
    /// one) loses nothing and appends no event twice.
    ///
    /// `recorded` must be the id the store records now (`None`: none recorded), so that a store
    /// is handed over only by someone who knows whose it was; otherwise nothing is changed and
    /// it fails with `StoreError::Conflict`. In one transaction. No node may run on the store.
    pub async fn hand_ledger_index_over(
        &self,
        recorded: Option<&str>,
        ledger_id: &str,
    ) -> Result<LedgerIndexHandover> {
        let handover = write_tx!(self, |tx| {
            let (indexed_to, found) = lock_ledger_index_state!(tx);
            if found.as_deref() != recorded {
                return Err(StoreError::Conflict(format!(
                    "the store's ledger indexes are recorded as those of ledger {}, not of ledger {}: not handing them over",
                    found.as_deref().unwrap_or("(none)"),
                    recorded.unwrap_or("(none)"),
                )));
            }
            let subject_deliveries = sqlx::query("DELETE FROM subject_deliveries")
                .execute(&mut *tx)
                .await?
                .rows_affected();
            let scenario_runs = sqlx::query("DELETE FROM scenario_runs")
                .execute(&mut *tx)
                .await?
                .rows_affected();
            let audit_events = sqlx::query(
                "UPDATE audit_events SET ledger_index = NULL WHERE ledger_index IS NOT NULL",
            )
            .execute(&mut *tx)
            .await?
            .rows_affected();
            sqlx::query("UPDATE ledger_index_state SET next = 0 WHERE id = 1")
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO ledger_index_owner (id, ledger_id) VALUES (1, $1)
                 ON CONFLICT (id) DO UPDATE SET ledger_id = excluded.ledger_id",
            )
            .bind(ledger_id)
            .execute(&mut *tx)
            .await?;
            LedgerIndexHandover {
                indexed_to: indexed_to as u64,
                subject_deliveries,
                scenario_runs,
                audit_events,
            }
        });
        Ok(handover)
    }

    /// The ledger indexes of the exchanges that delivered data about the person with this keyed
    /// hash, oldest first, a page at a time.
    pub async fn subject_deliveries(
        &self,
        subject: &[u8; 32],
        page: &PageRequest,
    ) -> Result<Page<u64>> {
        // A cursor is the ledger index of the previous page's last row.
        let after: i64 = match &page.after {
            Some(cursor) => cursor
                .parse()
                .ok()
                .filter(|index| *index >= 0)
                .ok_or_else(|| StoreError::invalid("cursor", "not a cursor of this listing"))?,
            None => -1,
        };
        let indexes: Vec<i64> = read_pool!(self, |pool| {
            sqlx::query_scalar(
                "SELECT ledger_index FROM subject_deliveries
                 WHERE subject = $1 AND ledger_index > $2 ORDER BY ledger_index LIMIT $3",
            )
            .bind(&subject[..])
            .bind(after)
            .bind(page.fetch_limit())
            .fetch_all(pool)
            .await?
        });
        let indexes = indexes.into_iter().map(|index| index as u64).collect();
        Ok(page.page(indexes, u64::to_string))
    }
}
