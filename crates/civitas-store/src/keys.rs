//! API keys of users and systems. The store sees only a key's SHA-256 hash and its first
//! characters; the key itself is shown to its owner once, by the API, and never stored.

use civitas_core::{
    Code, Uscc,
    access::SystemRef,
    authz::Permit,
    registry::{ApiKey, KeyOwner, Principal, Role, User, UserName},
};
use jiff::Timestamp;
use serde_json::json;

use crate::{
    Page, PageRequest, Result, Store, StoreError,
    audit::record,
    duplicate_as, micros, read_pool,
    registry::{lock_user_as_seen, user_not_as_seen},
    timestamp, write_tx,
};

#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub id: String,
    /// Hex SHA-256 of the key.
    pub hash: String,
    pub prefix: String,
    pub owner: KeyOwner,
    pub label: String,
    pub expires_at: Option<Timestamp>,
}

/// A caller established from a key: who they are, and which key it was.
#[derive(Debug, Clone, PartialEq)]
pub struct Authenticated {
    pub key_id: String,
    pub principal: Principal,
    pub last_used_at: Option<Timestamp>,
}

#[derive(sqlx::FromRow)]
struct KeyRow {
    id: String,
    prefix: String,
    owner_kind: String,
    user_name: Option<String>,
    organization: Option<String>,
    system_code: Option<String>,
    label: String,
    created_at: i64,
    created_by: String,
    expires_at: Option<i64>,
    last_used_at: Option<i64>,
    revoked_at: Option<i64>,
}

impl KeyRow {
    fn owner(&self) -> Result<KeyOwner> {
        match (
            self.owner_kind.as_str(),
            &self.user_name,
            &self.organization,
            &self.system_code,
        ) {
            ("user", Some(name), _, _) => Ok(KeyOwner::User {
                name: UserName::parse(name).map_err(StoreError::corrupt)?,
            }),
            ("system", _, Some(organization), Some(system)) => Ok(KeyOwner::System {
                organization: Uscc::parse(organization).map_err(StoreError::corrupt)?,
                system: Code::parse(system).map_err(StoreError::corrupt)?,
            }),
            _ => Err(StoreError::corrupt(format!(
                "api key {} has no owner",
                self.id
            ))),
        }
    }

    fn into_key(self) -> Result<ApiKey> {
        Ok(ApiKey {
            owner: self.owner()?,
            id: self.id,
            prefix: self.prefix,
            label: self.label,
            created_at: timestamp(self.created_at)?,
            created_by: self.created_by,
            expires_at: self.expires_at.map(timestamp).transpose()?,
            last_used_at: self.last_used_at.map(timestamp).transpose()?,
            revoked_at: self.revoked_at.map(timestamp).transpose()?,
        })
    }
}

macro_rules! key_columns {
    () => {
        "id, prefix, owner_kind, user_name, organization, system_code, label, \
                           created_at, created_by, expires_at, last_used_at, revoked_at"
    };
}

#[derive(sqlx::FromRow)]
struct CredentialRow {
    id: String,
    owner_kind: String,
    user_name: Option<String>,
    organization: Option<String>,
    system_code: Option<String>,
    expires_at: Option<i64>,
    last_used_at: Option<i64>,
    revoked_at: Option<i64>,
    user_role: Option<String>,
    user_organization: Option<String>,
    user_active: Option<bool>,
    system_active: Option<bool>,
    organization_active: Option<bool>,
}

impl Store {
    /// Issues a key. `checked` is the user the caller's permission was checked against when the
    /// key is another user's (its owner, as the caller read them): the key is issued only while the
    /// owner's role and organization are still theirs, as a change made since (a demotion, a move
    /// to another organization) may have taken the permission away ([`StoreError::Conflict`]
    /// otherwise). `None` for one's own keys, systems' keys and keys the server issues.
    pub async fn create_api_key(
        &self,
        permit: &Permit,
        new: &NewApiKey,
        checked: Option<&User>,
    ) -> Result<ApiKey> {
        if new.label.chars().count() > 200 {
            return Err(StoreError::invalid(
                "label",
                "must have at most 200 characters",
            ));
        }
        let (owner_kind, user_name, organization, system_code) = match &new.owner {
            KeyOwner::User { name } => ("user", Some(name.as_str()), None, None),
            KeyOwner::System {
                organization,
                system,
            } => (
                "system",
                None,
                Some(organization.as_str()),
                Some(system.as_str()),
            ),
        };
        if let Some(seen) = checked
            && user_name != Some(seen.name.as_str())
        {
            return Err(StoreError::invalid(
                "owner",
                "the key's owner is not the user checked",
            ));
        }
        write_tx!(self, |tx| {
            // The owner's row stays locked, as checked, until the key is in.
            if let Some(seen) = checked
                && !lock_user_as_seen!(tx, seen)
            {
                return Err(match user_not_as_seen!(&mut *tx, &seen.name) {
                    StoreError::NotFound { .. } => {
                        StoreError::invalid("owner", "no such user or system")
                    }
                    conflict => conflict,
                });
            }
            let owner_active: Option<bool> = match &new.owner {
                KeyOwner::User { name } => {
                    sqlx::query_scalar("SELECT active FROM users WHERE name = $1")
                        .bind(name.as_str())
                        .fetch_optional(&mut *tx)
                        .await?
                }
                KeyOwner::System {
                    organization,
                    system,
                } => {
                    sqlx::query_scalar(
                        "SELECT active FROM systems WHERE organization = $1 AND code = $2",
                    )
                    .bind(organization.as_str())
                    .bind(system.as_str())
                    .fetch_optional(&mut *tx)
                    .await?
                }
            };
            match owner_active {
                None => return Err(StoreError::invalid("owner", "no such user or system")),
                Some(false) => {
                    return Err(StoreError::invalid("owner", "the owner is deactivated"));
                }
                Some(true) => {}
            }
            sqlx::query(
                "INSERT INTO api_keys (id, hash, prefix, owner_kind, user_name, organization, system_code, label, created_at, created_by, expires_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(&new.id)
            .bind(&new.hash)
            .bind(&new.prefix)
            .bind(owner_kind)
            .bind(user_name)
            .bind(organization)
            .bind(system_code)
            .bind(&new.label)
            .bind(micros(Timestamp::now()))
            .bind(permit.actor())
            .bind(new.expires_at.map(micros))
            .execute(&mut *tx)
            .await
            .map_err(duplicate_as("api key", &new.id))?;
            credentials_changed!(tx);
            record!(
                tx,
                permit,
                "api_key.create",
                "api_key",
                &new.id,
                json!({ "owner": new.owner, "label": new.label, "prefix": new.prefix })
            );
        });
        self.api_key(&new.id).await
    }

    pub async fn api_key(&self, id: &str) -> Result<ApiKey> {
        let sql = concat!("SELECT ", key_columns!(), " FROM api_keys WHERE id = $1");
        let row: Option<KeyRow> = read_pool!(self, |pool| {
            sqlx::query_as(sql).bind(id).fetch_optional(pool).await?
        });
        row.ok_or_else(|| StoreError::NotFound {
            kind: "api key",
            id: id.to_owned(),
        })?
        .into_key()
    }

    /// Lists keys, newest first, of one owner or of everyone in one organization (users' keys
    /// count for their user's organization).
    pub async fn list_api_keys(
        &self,
        owner: Option<&KeyOwner>,
        organization: Option<&Uscc>,
        page: &PageRequest,
    ) -> Result<Page<ApiKey>> {
        let (user_name, system) = match owner {
            Some(KeyOwner::User { name }) => (Some(name.as_str()), None),
            Some(KeyOwner::System {
                organization,
                system,
            }) => (None, Some((organization.as_str(), system.as_str()))),
            None => (None, None),
        };
        let sql = concat!(
            "SELECT ",
            key_columns!(),
            " FROM api_keys k
             WHERE ($1 = '' OR id < $1)
               AND ($2 IS NULL OR user_name = $2)
               AND ($3 IS NULL OR (organization = $3 AND system_code = $4))
               AND ($5 IS NULL OR organization = $5
                    OR user_name IN (SELECT name FROM users WHERE organization = $5))
             ORDER BY id DESC LIMIT $6"
        );
        let rows: Vec<KeyRow> = read_pool!(self, |pool| {
            sqlx::query_as(sql)
                .bind(page.after.as_deref().unwrap_or(""))
                .bind(user_name)
                .bind(system.map(|s| s.0))
                .bind(system.map(|s| s.1))
                .bind(organization.map(Uscc::as_str))
                .bind(page.fetch_limit())
                .fetch_all(pool)
                .await?
        });
        let keys = rows
            .into_iter()
            .map(KeyRow::into_key)
            .collect::<Result<Vec<_>>>()?;
        Ok(page.page(keys, |key| key.id.clone()))
    }

    /// Revokes a key. `checked` is, as for [`Store::create_api_key`], the user the caller's
    /// permission was checked against when the key is another user's: the key is revoked only
    /// while its owner's role and organization are still theirs ([`StoreError::Conflict`]
    /// otherwise).
    pub async fn revoke_api_key(
        &self,
        permit: &Permit,
        id: &str,
        checked: Option<&User>,
    ) -> Result<ApiKey> {
        write_tx!(self, |tx| {
            let key: Option<(Option<i64>, Option<String>)> =
                sqlx::query_as("SELECT revoked_at, user_name FROM api_keys WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let user_name = match key {
                None => {
                    return Err(StoreError::NotFound {
                        kind: "api key",
                        id: id.to_owned(),
                    });
                }
                Some((Some(_), _)) => {
                    return Err(StoreError::Conflict(format!(
                        "api key {id} is already revoked"
                    )));
                }
                Some((None, user_name)) => user_name,
            };
            if let Some(seen) = checked {
                if user_name.as_deref() != Some(seen.name.as_str()) {
                    return Err(StoreError::invalid(
                        "owner",
                        "the key's owner is not the user checked",
                    ));
                }
                if !lock_user_as_seen!(tx, seen) {
                    return Err(user_not_as_seen!(&mut *tx, &seen.name));
                }
            }
            sqlx::query("UPDATE api_keys SET revoked_at = $2 WHERE id = $1")
                .bind(id)
                .bind(micros(Timestamp::now()))
                .execute(&mut *tx)
                .await?;
            credentials_changed!(tx);
            record!(tx, permit, "api_key.revoke", "api_key", id, json!({}));
        });
        self.api_key(id).await
    }

    /// Finds the caller behind a key hash. `None` when the key is unknown, revoked, expired, or
    /// its owner (user, system, or the system's organization) is deactivated.
    pub async fn authenticate(&self, hash: &str, now: Timestamp) -> Result<Option<Authenticated>> {
        let row: Option<CredentialRow> = read_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT k.id, k.owner_kind, k.user_name, k.organization, k.system_code,
                        k.expires_at, k.last_used_at, k.revoked_at,
                        u.role AS user_role, u.organization AS user_organization,
                        u.active AS user_active, s.active AS system_active,
                        o.active AS organization_active
                 FROM api_keys k
                 LEFT JOIN users u ON u.name = k.user_name
                 LEFT JOIN systems s ON s.organization = k.organization AND s.code = k.system_code
                 LEFT JOIN organizations o ON o.code = COALESCE(k.organization, u.organization)
                 WHERE k.hash = $1",
            )
            .bind(hash)
            .fetch_optional(pool)
            .await?
        });
        let Some(row) = row else { return Ok(None) };
        if row.revoked_at.is_some() || row.expires_at.is_some_and(|at| at <= micros(now)) {
            return Ok(None);
        }
        // A user's organization is NULL only for platform admins, who need no active organization.
        let organization_ok = row
            .organization_active
            .unwrap_or(row.user_organization.is_none());
        let principal = match row.owner_kind.as_str() {
            "user" => {
                if row.user_active != Some(true) || !organization_ok {
                    return Ok(None);
                }
                Principal::User {
                    name: UserName::parse(row.user_name.as_deref().unwrap_or_default())
                        .map_err(StoreError::corrupt)?,
                    role: Role::parse(row.user_role.as_deref().unwrap_or_default())
                        .map_err(StoreError::corrupt)?,
                    organization: row
                        .user_organization
                        .as_deref()
                        .map(Uscc::parse)
                        .transpose()
                        .map_err(StoreError::corrupt)?,
                }
            }
            "system" => {
                if row.system_active != Some(true) || row.organization_active != Some(true) {
                    return Ok(None);
                }
                Principal::System {
                    organization: Uscc::parse(row.organization.as_deref().unwrap_or_default())
                        .map_err(StoreError::corrupt)?,
                    system: Code::parse(row.system_code.as_deref().unwrap_or_default())
                        .map_err(StoreError::corrupt)?,
                }
            }
            other => return Err(StoreError::corrupt(format!("api key owner kind {other}"))),
        };
        Ok(Some(Authenticated {
            key_id: row.id,
            principal,
            last_used_at: row.last_used_at.map(timestamp).transpose()?,
        }))
    }

    /// Every active system of an active organization: the systems that may call the gateway,
    /// whether with a key or a client certificate.
    pub async fn active_systems(&self) -> Result<Vec<SystemRef>> {
        let rows: Vec<(String, String)> = read_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT s.organization, s.code FROM systems s
                 JOIN organizations o ON o.code = s.organization
                 WHERE s.active AND o.active",
            )
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(|(organization, system)| {
                Ok(SystemRef {
                    organization: Uscc::parse(&organization).map_err(StoreError::corrupt)?,
                    system: Code::parse(&system).map_err(StoreError::corrupt)?,
                })
            })
            .collect()
    }

    /// The hashes of every usable system key, with the system each belongs to and when the key
    /// expires: keys not revoked or expired, of active systems of active organizations. The
    /// gateway holds them in memory.
    pub async fn system_key_hashes(
        &self,
        now: Timestamp,
    ) -> Result<Vec<(String, Uscc, Code, Option<Timestamp>)>> {
        let rows: Vec<(String, String, String, Option<i64>)> = read_pool!(self, |pool| {
            sqlx::query_as(
                "SELECT k.hash, k.organization, k.system_code, k.expires_at FROM api_keys k
                 JOIN systems s ON s.organization = k.organization AND s.code = k.system_code
                 JOIN organizations o ON o.code = k.organization
                 WHERE k.owner_kind = 'system' AND k.revoked_at IS NULL
                   AND (k.expires_at IS NULL OR k.expires_at > $1) AND s.active AND o.active",
            )
            .bind(micros(now))
            .fetch_all(pool)
            .await?
        });
        rows.into_iter()
            .map(|(hash, organization, system, expires_at)| {
                Ok((
                    hash,
                    Uscc::parse(&organization).map_err(StoreError::corrupt)?,
                    Code::parse(&system).map_err(StoreError::corrupt)?,
                    expires_at.map(timestamp).transpose()?,
                ))
            })
            .collect()
    }

    /// A value that changes whenever the set of usable system keys may have changed (a key
    /// issued or revoked, a system or organization registered or changed): the credentials
    /// change sequence, which every such change advances in its own transaction. Cheap enough to
    /// poll.
    pub async fn credentials_fingerprint(&self) -> Result<String> {
        let last: i64 = read_pool!(self, |pool| {
            sqlx::query_scalar("SELECT last FROM credentials_sequence WHERE id = 1")
                .fetch_one(pool)
                .await?
        });
        Ok(last.to_string())
    }

    /// Records that a key was used. Callers do this at most about once a minute per key, so that
    /// authentication does not turn every read into a write.
    pub async fn touch_api_key(&self, id: &str, at: Timestamp) -> Result<()> {
        write_tx!(self, |tx| {
            sqlx::query("UPDATE api_keys SET last_used_at = $2 WHERE id = $1")
                .bind(id)
                .bind(micros(at))
                .execute(&mut *tx)
                .await?;
        });
        Ok(())
    }
}

/// Advances the credentials change sequence inside a change's transaction: the gateway reloads
/// keys, active systems and organizations when the number moves. The row lock also makes such
/// changes commit in the order of their numbers on PostgreSQL, so the number a reader sees covers
/// every change before it. Timestamps could not do this: a change committed after another may
/// carry an earlier time (a replica whose clock is behind, or a concurrent transaction).
macro_rules! credentials_changed {
    ($tx:expr) => {
        sqlx::query("UPDATE credentials_sequence SET last = last + 1 WHERE id = 1")
            .execute(&mut *$tx)
            .await?;
    };
}
pub(crate) use credentials_changed;
