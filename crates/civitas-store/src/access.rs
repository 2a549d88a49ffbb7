//! Access: applications, grants and platform policies, and the access change sequence the
//! gateway follows.

use civitas_core::{
    Code, Uscc,
    access::{Application, ApplicationState, Grant, GrantedItem, PlatformPolicy, SystemRef},
    authz::Permit,
    catalog::ResourceCode,
};
use jiff::Timestamp;
use serde_json::json;

use crate::{
    Page, PageRequest, Result, Store, StoreError, audit::record, duplicate_as, micros, read_pool,
    timestamp, write_tx,
};

#[derive(Debug, Clone)]
pub struct NewApplication {
    pub id: String,
    pub consumer: SystemRef,
    pub resource: ResourceCode,
    pub provider: Uscc,
    pub items: Vec<String>,
    pub purpose: String,
    pub legal_basis: String,
    pub valid_days: u32,
    pub expected_calls_per_day: Option<u64>,
    pub applicant: String,
}

/// The terms of a grant an approval creates.
#[derive(Debug, Clone)]
pub struct GrantTerms {
    pub id: String,
    pub items: Vec<GrantedItem>,
    pub valid_from: Timestamp,
    pub valid_until: Timestamp,
    pub calls_per_day: Option<u64>,
    pub requests_per_second: Option<u32>,
}

#[derive(Debug, Clone, Default)]
pub struct ApplicationFilter {
    /// Applications to this provider organization (its review queue).
    pub provider: Option<Uscc>,
    /// Applications of this consumer organization.
    pub consumer_organization: Option<Uscc>,
    pub consumer_system: Option<Code>,
    pub resource: Option<ResourceCode>,
    pub state: Option<ApplicationState>,
}

#[derive(Debug, Clone, Default)]
pub struct GrantFilter {
    pub consumer_organization: Option<Uscc>,
    pub consumer_system: Option<Code>,
    pub provider: Option<Uscc>,
    pub resource: Option<ResourceCode>,
    /// Only grants valid at this time (not revoked, within validity).
    pub valid_at: Option<Timestamp>,
}

#[derive(sqlx::FromRow)]
struct ApplicationRow {
    id: String,
    consumer_organization: String,
    consumer_system: String,
    resource: String,
    provider: String,
    items: String,
    purpose: String,
    legal_basis: String,
    valid_days: i64,
    expected_calls_per_day: Option<i64>,
    state: String,
    applicant: String,
    decided_by: Option<String>,
    decided_at: Option<i64>,
    reason: Option<String>,
    grant_id: Option<String>,
    created_at: i64,
    updated_at: i64,
}

fn corrupt<E: std::fmt::Display>(error: E) -> StoreError {
    StoreError::corrupt(error)
}

impl ApplicationRow {
    fn into_application(self) -> Result<Application> {
        Ok(Application {
            id: self.id,
            consumer: SystemRef {
                organization: Uscc::parse(&self.consumer_organization).map_err(corrupt)?,
                system: Code::parse(&self.consumer_system).map_err(corrupt)?,
            },
            resource: ResourceCode::parse(&self.resource).map_err(corrupt)?,
            provider: Uscc::parse(&self.provider).map_err(corrupt)?,
            items: serde_json::from_str(&self.items).map_err(corrupt)?,
            purpose: self.purpose,
            legal_basis: self.legal_basis,
            valid_days: self.valid_days as u32,
            expected_calls_per_day: self.expected_calls_per_day.map(|n| n as u64),
            state: ApplicationState::parse(&self.state).map_err(corrupt)?,
            applicant: self.applicant,
            decided_by: self.decided_by,
            decided_at: self.decided_at.map(timestamp).transpose()?,
            reason: self.reason,
            grant: self.grant_id,
            created_at: timestamp(self.created_at)?,
            updated_at: timestamp(self.updated_at)?,
        })
    }
}

#[derive(sqlx::FromRow)]
struct GrantRow {
    id: String,
    application: Option<String>,
    consumer_organization: String,
    consumer_system: String,
    resource: String,
    provider: String,
    items: String,
    valid_from: i64,
    valid_until: i64,
    calls_per_day: Option<i64>,
    requests_per_second: Option<i64>,
    revoked_at: Option<i64>,
    revoked_by: Option<String>,
    revoke_reason: Option<String>,
    created_at: i64,
    seq: i64,
}

impl GrantRow {
    fn into_grant(self) -> Result<(u64, Grant)> {
        Ok((
            self.seq as u64,
            Grant {
                id: self.id,
                application: self.application,
                consumer: SystemRef {
                    organization: Uscc::parse(&self.consumer_organization).map_err(corrupt)?,
                    system: Code::parse(&self.consumer_system).map_err(corrupt)?,
                },
                resource: ResourceCode::parse(&self.resource).map_err(corrupt)?,
                provider: Uscc::parse(&self.provider).map_err(corrupt)?,
                items: serde_json::from_str(&self.items).map_err(corrupt)?,
                valid_from: timestamp(self.valid_from)?,
                valid_until: timestamp(self.valid_until)?,
                calls_per_day: self.calls_per_day.map(|n| n as u64),
                requests_per_second: self.requests_per_second.map(|n| n as u32),
                revoked_at: self.revoked_at.map(timestamp).transpose()?,
                revoked_by: self.revoked_by,
                revoke_reason: self.revoke_reason,
                created_at: timestamp(self.created_at)?,
            },
        ))
    }
}

#[derive(sqlx::FromRow)]
struct PolicyRow {
    id: String,
    description: String,
    text: String,
    active: bool,
    created_at: i64,
    updated_at: i64,
    seq: i64,
}

impl PolicyRow {
    fn into_policy(self) -> Result<(u64, PlatformPolicy)> {
        Ok((
            self.seq as u64,
            PlatformPolicy {
                id: Code::parse(&self.id).map_err(corrupt)?,
                description: self.description,
                text: self.text,
                active: self.active,
                created_at: timestamp(self.created_at)?,
                updated_at: timestamp(self.updated_at)?,
            },
        ))
    }
}

macro_rules! application_columns {
    () => {
        "id, consumer_organization, consumer_system, resource, provider, items, purpose, legal_basis, \
         valid_days, expected_calls_per_day, state, applicant, decided_by, decided_at, reason, grant_id, \
         created_at, updated_at"
    };
}

macro_rules! grant_columns {
    () => {
        "id, application, consumer_organization, consumer_system, resource, provider, items, valid_from, \
         valid_until, calls_per_day, requests_per_second, revoked_at, revoked_by, revoke_reason, created_at, seq"
    };
}

macro_rules! policy_columns {
    () => {
        "id, description, text, active, created_at, updated_at, seq"
    };
}

/// Takes the next number of the access change sequence inside a transaction. The row lock also
/// serializes access writers, so sequence order is commit order.
macro_rules! next_access_seq {
    ($tx:expr) => {
        sqlx::query_scalar::<_, i64>(
            "UPDATE access_sequence SET last = last + 1 WHERE id = 1 RETURNING last",
        )
        .fetch_one(&mut *$tx)
        .await?
    };
}

macro_rules! insert_grant {
    ($tx:expr, $grant:expr, $seq:expr) => {
        sqlx::query(
            "INSERT INTO grants (id, application, consumer_organization, consumer_system, resource, provider, items,
                 valid_from, valid_until, calls_per_day, requests_per_second, created_at, seq)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        )
        .bind(&$grant.id)
        .bind(&$grant.application)
        .bind($grant.consumer.organization.as_str())
        .bind($grant.consumer.system.as_str())
        .bind($grant.resource.as_str())
        .bind($grant.provider.as_str())
        .bind(serde_json::to_string(&$grant.items).expect("items serialize"))
        .bind(micros($grant.valid_from))
        .bind(micros($grant.valid_until))
        .bind($grant.calls_per_day.map(|n| n as i64))
        .bind($grant.requests_per_second.map(i64::from))
        .bind(micros($grant.created_at))
        .bind($seq)
        .execute(&mut *$tx)
        .await
        .map_err(duplicate_as("grant", &$grant.id))?
    };
}

fn grant_from_terms(application: &Application, terms: &GrantTerms, now: Timestamp) -> Grant {
    Grant {
        id: terms.id.clone(),
        application: Some(application.id.clone()),
        consumer: application.consumer.clone(),
        resource: application.resource.clone(),
        provider: application.provider.clone(),
        items: terms.items.clone(),
        valid_from: terms.valid_from,
        valid_until: terms.valid_until,
        calls_per_day: terms.calls_per_day,
        requests_per_second: terms.requests_per_second,
        revoked_at: None,
        revoked_by: None,
        revoke_reason: None,
        created_at: now,
    }
}

impl Store {
    /// Records an application. With `approve_at_once` (for unconditionally shared resources) the
    /// application is approved and its grant created in the same transaction.
    pub async fn create_application(
        &self,
        permit: &Permit,
        new: &NewApplication,
        approve_at_once: Option<&GrantTerms>,
    ) -> Result<(Application, Option<Grant>)> {
        let now = Timestamp::now();
        let state = if approve_at_once.is_some() {
            ApplicationState::Approved
        } else {
            ApplicationState::Pending
        };
        let mut created_grant = None;
        write_tx!(self, |tx| {
            let consumer_active: Option<bool> = sqlx::query_scalar(
                "SELECT s.active AND o.active FROM systems s JOIN organizations o ON o.code = s.organization
                 WHERE s.organization = $1 AND s.code = $2",
            )
            .bind(new.consumer.organization.as_str())
            .bind(new.consumer.system.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            match consumer_active {
                None => {
                    return Err(StoreError::invalid(
                        "consumer",
                        format!("no system {}", new.consumer),
                    ));
                }
                Some(false) => {
                    return Err(StoreError::invalid(
                        "consumer",
                        format!("system {} is deactivated", new.consumer),
                    ));
                }
                Some(true) => {}
            }
            sqlx::query(
                "INSERT INTO applications (id, consumer_organization, consumer_system, resource, provider, items, purpose,
                     legal_basis, valid_days, expected_calls_per_day, state, applicant, decided_by, decided_at, reason,
                     grant_id, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $17)",
            )
            .bind(&new.id)
            .bind(new.consumer.organization.as_str())
            .bind(new.consumer.system.as_str())
            .bind(new.resource.as_str())
            .bind(new.provider.as_str())
            .bind(serde_json::to_string(&new.items).expect("items serialize"))
            .bind(&new.purpose)
            .bind(&new.legal_basis)
            .bind(i64::from(new.valid_days))
            .bind(new.expected_calls_per_day.map(|n| n as i64))
            .bind(state.as_str())
            .bind(&new.applicant)
            .bind(approve_at_once.map(|_| "civitas:unconditional"))
            .bind(approve_at_once.map(|_| micros(now)))
            .bind(approve_at_once.map(|_| "the resource is shared unconditionally"))
            .bind(approve_at_once.map(|terms| terms.id.clone()))
            .bind(micros(now))
            .execute(&mut *tx)
            .await
            .map_err(duplicate_as("application", &new.id))?;
            record!(
                tx,
                permit,
                "application.create",
                "application",
                &new.id,
                json!({
                    "consumer": new.consumer.to_string(),
                    "resource": new.resource.as_str(),
                    "items": new.items,
                    "purpose": new.purpose,
                    "legal_basis": new.legal_basis,
                    "valid_days": new.valid_days,
                })
            );
            if let Some(terms) = approve_at_once {
                let application = Application {
                    id: new.id.clone(),
                    consumer: new.consumer.clone(),
                    resource: new.resource.clone(),
                    provider: new.provider.clone(),
                    items: new.items.clone(),
                    purpose: new.purpose.clone(),
                    legal_basis: new.legal_basis.clone(),
                    valid_days: new.valid_days,
                    expected_calls_per_day: new.expected_calls_per_day,
                    state,
                    applicant: new.applicant.clone(),
                    decided_by: None,
                    decided_at: None,
                    reason: None,
                    grant: None,
                    created_at: now,
                    updated_at: now,
                };
                let grant = grant_from_terms(&application, terms, now);
                let seq = next_access_seq!(tx);
                insert_grant!(tx, grant, seq);
                record!(
                    tx,
                    Permit::internal("civitas:unconditional"),
                    "application.approve",
                    "application",
                    &new.id,
                    json!({ "grant": grant.id, "automatic": true })
                );
                record!(
                    tx,
                    Permit::internal("civitas:unconditional"),
                    "grant.create",
                    "grant",
                    &grant.id,
                    json!({ "application": new.id, "items": grant.items, "valid_until": grant.valid_until.to_string() })
                );
                created_grant = Some(grant);
            }
        });
        Ok((self.application(&new.id).await?, created_grant))
    }

    pub async fn application(&self, id: &str) -> Result<Application> {
        let sql = concat!(
            "SELECT ",
            application_columns!(),
            " FROM applications WHERE id = $1"
        );
        let row: Option<ApplicationRow> = read_pool!(self, |pool| {
            sqlx::query_as(sql).bind(id).fetch_optional(pool).await?
        });
        row.ok_or_else(|| StoreError::NotFound {
            kind: "application",
            id: id.to_owned(),
        })?
        .into_application()
    }

    /// Approves a pending application and creates its grant, in one transaction. Approving an
    /// application that is no longer pending is a conflict.
    pub async fn approve_application(
        &self,
        permit: &Permit,
        id: &str,
        terms: &GrantTerms,
        note: Option<&str>,
    ) -> Result<(Application, Grant)> {
        let now = Timestamp::now();
        let application = self.application(id).await?;
        let grant = grant_from_terms(&application, terms, now);
        write_tx!(self, |tx| {
            let changed = sqlx::query(
                "UPDATE applications SET state = 'approved', decided_by = $2, decided_at = $3, reason = $4,
                     grant_id = $5, updated_at = $3
                 WHERE id = $1 AND state = 'pending'",
            )
            .bind(id)
            .bind(permit.actor())
            .bind(micros(now))
            .bind(note)
            .bind(&grant.id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if changed == 0 {
                return Err(StoreError::Conflict(format!(
                    "application {id} is {}, only pending applications can be approved",
                    application.state
                )));
            }
            let seq = next_access_seq!(tx);
            insert_grant!(tx, grant, seq);
            record!(
                tx,
                permit,
                "application.approve",
                "application",
                id,
                json!({ "grant": grant.id, "note": note })
            );
            record!(
                tx,
                permit,
                "grant.create",
                "grant",
                &grant.id,
                json!({
                    "application": id,
                    "items": grant.items,
                    "valid_from": grant.valid_from.to_string(),
                    "valid_until": grant.valid_until.to_string(),
                    "calls_per_day": grant.calls_per_day,
                    "requests_per_second": grant.requests_per_second,
                })
            );
        });
        Ok((self.application(id).await?, grant))
    }

    /// Rejects (by the provider) or withdraws (by the applicant) a pending application.
    pub async fn close_application(
        &self,
        permit: &Permit,
        id: &str,
        state: ApplicationState,
        reason: &str,
    ) -> Result<Application> {
        debug_assert!(matches!(
            state,
            ApplicationState::Rejected | ApplicationState::Withdrawn
        ));
        let now = micros(Timestamp::now());
        write_tx!(self, |tx| {
            let current: Option<String> =
                sqlx::query_scalar("SELECT state FROM applications WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
            match current.as_deref() {
                None => {
                    return Err(StoreError::NotFound {
                        kind: "application",
                        id: id.to_owned(),
                    });
                }
                Some("pending") => {}
                Some(other) => {
                    return Err(StoreError::Conflict(format!(
                        "application {id} is {other}, only pending applications can be {state}"
                    )));
                }
            }
            sqlx::query(
                "UPDATE applications SET state = $2, decided_by = $3, decided_at = $4, reason = $5, updated_at = $4
                 WHERE id = $1",
            )
            .bind(id)
            .bind(state.as_str())
            .bind(permit.actor())
            .bind(now)
            .bind(reason)
            .execute(&mut *tx)
            .await?;
            let action = if state == ApplicationState::Rejected {
                "application.reject"
            } else {
                "application.withdraw"
            };
            record!(
                tx,
                permit,
                action,
                "application",
                id,
                json!({ "reason": reason })
            );
        });
        self.application(id).await
    }

    pub async fn list_applications(
        &self,
        filter: &ApplicationFilter,
        page: &PageRequest,
    ) -> Result<Page<Application>> {
        let sql = concat!(
            "SELECT ",
            application_columns!(),
            " FROM applications
             WHERE id > $1
               AND ($2 IS NULL OR provider = $2)
               AND ($3 IS NULL OR consumer_organization = $3)
               AND ($4 IS NULL OR consumer_system = $4)
               AND ($5 IS NULL OR resource = $5)
               AND ($6 IS NULL OR state = $6)
             ORDER BY id LIMIT $7"
        );
        let rows: Vec<ApplicationRow> = read_pool!(self, |pool| {
            sqlx::query_as(sql)
                .bind(page.after.as_deref().unwrap_or(""))
                .bind(filter.provider.as_ref().map(Uscc::as_str))
                .bind(filter.consumer_organization.as_ref().map(Uscc::as_str))
                .bind(filter.consumer_system.as_ref().map(Code::as_str))
                .bind(filter.resource.as_ref().map(ResourceCode::as_str))
                .bind(filter.state.map(ApplicationState::as_str))
                .bind(page.fetch_limit())
                .fetch_all(pool)
                .await?
        });
        let applications = rows
            .into_iter()
            .map(ApplicationRow::into_application)
            .collect::<Result<Vec<_>>>()?;
        Ok(page.page(applications, |application| application.id.clone()))
    }

    pub async fn grant(&self, id: &str) -> Result<Grant> {
        let sql = concat!("SELECT ", grant_columns!(), " FROM grants WHERE id = $1");
        let row: Option<GrantRow> = read_pool!(self, |pool| {
            sqlx::query_as(sql).bind(id).fetch_optional(pool).await?
        });
        Ok(row
            .ok_or_else(|| StoreError::NotFound {
                kind: "grant",
                id: id.to_owned(),
            })?
            .into_grant()?
            .1)
    }

    /// Revokes a grant; the gateway stops honouring it within a second.
    pub async fn revoke_grant(&self, permit: &Permit, id: &str, reason: &str) -> Result<Grant> {
        let now = micros(Timestamp::now());
        write_tx!(self, |tx| {
            let revoked: Option<Option<i64>> =
                sqlx::query_scalar("SELECT revoked_at FROM grants WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
            match revoked {
                None => {
                    return Err(StoreError::NotFound {
                        kind: "grant",
                        id: id.to_owned(),
                    });
                }
                Some(Some(_)) => {
                    return Err(StoreError::Conflict(format!(
                        "grant {id} is already revoked"
                    )));
                }
                Some(None) => {}
            }
            let seq = next_access_seq!(tx);
            sqlx::query(
                "UPDATE grants SET revoked_at = $2, revoked_by = $3, revoke_reason = $4, seq = $5 WHERE id = $1",
            )
            .bind(id)
            .bind(now)
            .bind(permit.actor())
            .bind(reason)
            .bind(seq)
            .execute(&mut *tx)
            .await?;
            record!(
                tx,
                permit,
                "grant.revoke",
                "grant",
                id,
                json!({ "reason": reason })
            );
        });
        self.grant(id).await
    }

    pub async fn list_grants(
        &self,
        filter: &GrantFilter,
        page: &PageRequest,
    ) -> Result<Page<Grant>> {
        let sql = concat!(
            "SELECT ",
            grant_columns!(),
            " FROM grants
             WHERE id > $1
               AND ($2 IS NULL OR consumer_organization = $2)
               AND ($3 IS NULL OR consumer_system = $3)
               AND ($4 IS NULL OR provider = $4)
               AND ($5 IS NULL OR resource = $5)
               AND ($6 IS NULL OR (revoked_at IS NULL AND valid_from <= $6 AND valid_until > $6))
             ORDER BY id LIMIT $7"
        );
        let rows: Vec<GrantRow> = read_pool!(self, |pool| {
            sqlx::query_as(sql)
                .bind(page.after.as_deref().unwrap_or(""))
                .bind(filter.consumer_organization.as_ref().map(Uscc::as_str))
                .bind(filter.consumer_system.as_ref().map(Code::as_str))
                .bind(filter.provider.as_ref().map(Uscc::as_str))
                .bind(filter.resource.as_ref().map(ResourceCode::as_str))
                .bind(filter.valid_at.map(micros))
                .bind(page.fetch_limit())
                .fetch_all(pool)
                .await?
        });
        let grants = rows
            .into_iter()
            .map(|row| row.into_grant().map(|(_, grant)| grant))
            .collect::<Result<Vec<_>>>()?;
        Ok(page.page(grants, |grant| grant.id.clone()))
    }

    /// The last number of the access change sequence (grants and platform policies).
    pub async fn access_sequence(&self) -> Result<u64> {
        let last: i64 = read_pool!(self, |pool| {
            sqlx::query_scalar("SELECT last FROM access_sequence WHERE id = 1")
                .fetch_one(pool)
                .await?
        });
        Ok(last as u64)
    }

    /// Grants whose latest change comes after `after` in the access change sequence, in order,
    /// with their sequence numbers: what the gateway's cache has not seen yet.
    pub async fn grant_changes(&self, after: u64, limit: u32) -> Result<Vec<(u64, Grant)>> {
        let sql = concat!(
            "SELECT ",
            grant_columns!(),
            " FROM grants WHERE seq > $1 ORDER BY seq LIMIT $2"
        );
        let rows: Vec<GrantRow> = read_pool!(self, |pool| {
            sqlx::query_as(sql)
                .bind(after as i64)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(GrantRow::into_grant).collect()
    }

    /// Creates or replaces a platform policy; the text must have been validated by the caller.
    pub async fn put_policy(
        &self,
        permit: &Permit,
        id: &Code,
        description: &str,
        text: &str,
        active: bool,
    ) -> Result<(PlatformPolicy, bool)> {
        let now = micros(Timestamp::now());
        let created = write_tx!(self, |tx| {
            let seq = next_access_seq!(tx);
            let existing: Option<i64> =
                sqlx::query_scalar("SELECT created_at FROM platform_policies WHERE id = $1")
                    .bind(id.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
            let created = existing.is_none();
            sqlx::query(
                "INSERT INTO platform_policies (id, description, text, active, created_at, updated_at, seq)
                 VALUES ($1, $2, $3, $4, $5, $5, $6)
                 ON CONFLICT (id) DO UPDATE SET description = excluded.description, text = excluded.text,
                     active = excluded.active, updated_at = excluded.updated_at, seq = excluded.seq",
            )
            .bind(id.as_str())
            .bind(description)
            .bind(text)
            .bind(active)
            .bind(now)
            .bind(seq)
            .execute(&mut *tx)
            .await?;
            let action = if created {
                "policy.create"
            } else {
                "policy.update"
            };
            record!(
                tx,
                permit,
                action,
                "policy",
                id.as_str(),
                json!({ "description": description, "text": text, "active": active })
            );
            created
        });
        Ok((self.policy(id).await?, created))
    }

    pub async fn policy(&self, id: &Code) -> Result<PlatformPolicy> {
        let sql = concat!(
            "SELECT ",
            policy_columns!(),
            " FROM platform_policies WHERE id = $1"
        );
        let row: Option<PolicyRow> = read_pool!(self, |pool| {
            sqlx::query_as(sql)
                .bind(id.as_str())
                .fetch_optional(pool)
                .await?
        });
        Ok(row
            .ok_or_else(|| StoreError::NotFound {
                kind: "policy",
                id: id.to_string(),
            })?
            .into_policy()?
            .1)
    }

    /// The largest change number of any platform policy: it changes whenever a policy does.
    pub async fn policy_sequence(&self) -> Result<u64> {
        let last: i64 = read_pool!(self, |pool| {
            sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM platform_policies")
                .fetch_one(pool)
                .await?
        });
        Ok(last as u64)
    }

    /// Every platform policy, active or not, by id.
    pub async fn policies(&self) -> Result<Vec<PlatformPolicy>> {
        let sql = concat!(
            "SELECT ",
            policy_columns!(),
            " FROM platform_policies ORDER BY id"
        );
        let rows: Vec<PolicyRow> =
            read_pool!(self, |pool| sqlx::query_as(sql).fetch_all(pool).await?);
        rows.into_iter()
            .map(|row| row.into_policy().map(|(_, policy)| policy))
            .collect()
    }
}
