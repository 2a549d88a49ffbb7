//! Organizations, systems and users.

use civitas_core::{
    Code, RegionCode, Uscc,
    authz::Permit,
    registry::{Level, Organization, Role, System, User, UserName},
};
use jiff::Timestamp;
use serde_json::json;

use crate::{
    Page, PageRequest, Result, Store, StoreError, audit::record, duplicate_as,
    keys::credentials_changed, list_placeholders, micros, read_pool, timestamp, write_tx,
};

/// Longest chain of parents followed before a hierarchy is declared broken; real hierarchies
/// (national → provincial → municipal → district → street) are far shallower.
const MAX_HIERARCHY_DEPTH: usize = 64;

/// Longest description of a system, when it is registered and when it is changed.
const MAX_DESCRIPTION_CHARS: usize = 4000;

#[derive(Debug, Clone)]
pub struct NewOrganization {
    pub code: Uscc,
    pub name: String,
    pub name_en: Option<String>,
    pub level: Level,
    pub region: RegionCode,
    pub parent: Option<Uscc>,
}

/// A partial update: `None` leaves a field as it is; `Some(None)` clears an optional one.
#[derive(Debug, Clone, Default)]
pub struct OrganizationUpdate {
    pub name: Option<String>,
    pub name_en: Option<Option<String>>,
    pub level: Option<Level>,
    pub region: Option<RegionCode>,
    pub parent: Option<Option<Uscc>>,
}

#[derive(Debug, Clone, Default)]
pub struct OrganizationFilter {
    pub level: Option<Level>,
    pub region: Option<RegionCode>,
    pub parent: Option<Uscc>,
    /// `None` lists active and deactivated organizations alike.
    pub active: Option<bool>,
}

#[derive(Debug, Clone)]
pub struct NewSystem {
    pub code: Code,
    pub name: String,
    pub description: String,
    pub consumes: bool,
    pub provides: bool,
}

#[derive(Debug, Clone, Default)]
pub struct SystemUpdate {
    pub name: Option<String>,
    pub description: Option<String>,
    pub consumes: Option<bool>,
    pub provides: Option<bool>,
}

#[derive(Debug, Clone, Default)]
pub struct SystemFilter {
    pub consumes: Option<bool>,
    pub provides: Option<bool>,
    pub active: Option<bool>,
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub name: UserName,
    pub display_name: String,
    pub role: Role,
    pub organization: Option<Uscc>,
    /// An argon2 PHC string; `None` for users who sign in only with API keys.
    pub password_hash: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct UserUpdate {
    pub display_name: Option<String>,
    pub role: Option<Role>,
    pub organization: Option<Option<Uscc>>,
    pub password_hash: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    pub organization: Option<Uscc>,
    pub role: Option<Role>,
    pub active: Option<bool>,
}

#[derive(sqlx::FromRow)]
struct OrganizationRow {
    code: String,
    name: String,
    name_en: Option<String>,
    level: String,
    region: String,
    parent: Option<String>,
    active: bool,
    created_at: i64,
    updated_at: i64,
}

impl OrganizationRow {
    fn into_organization(self) -> Result<Organization> {
        Ok(Organization {
            code: Uscc::parse(&self.code).map_err(StoreError::corrupt)?,
            name: self.name,
            name_en: self.name_en,
            level: Level::parse(&self.level).map_err(StoreError::corrupt)?,
            region: RegionCode::parse(&self.region).map_err(StoreError::corrupt)?,
            parent: self
                .parent
                .as_deref()
                .map(Uscc::parse)
                .transpose()
                .map_err(StoreError::corrupt)?,
            active: self.active,
            created_at: timestamp(self.created_at)?,
            updated_at: timestamp(self.updated_at)?,
        })
    }
}

#[derive(sqlx::FromRow)]
struct SystemRow {
    organization: String,
    code: String,
    name: String,
    description: String,
    consumes: bool,
    provides: bool,
    active: bool,
    created_at: i64,
    updated_at: i64,
}

impl SystemRow {
    fn into_system(self) -> Result<System> {
        Ok(System {
            organization: Uscc::parse(&self.organization).map_err(StoreError::corrupt)?,
            code: Code::parse(&self.code).map_err(StoreError::corrupt)?,
            name: self.name,
            description: self.description,
            consumes: self.consumes,
            provides: self.provides,
            active: self.active,
            created_at: timestamp(self.created_at)?,
            updated_at: timestamp(self.updated_at)?,
        })
    }
}

#[derive(sqlx::FromRow)]
struct UserRow {
    name: String,
    display_name: String,
    role: String,
    organization: Option<String>,
    active: bool,
    created_at: i64,
    updated_at: i64,
}

impl UserRow {
    fn into_user(self) -> Result<User> {
        Ok(User {
            name: UserName::parse(&self.name).map_err(StoreError::corrupt)?,
            display_name: self.display_name,
            role: Role::parse(&self.role).map_err(StoreError::corrupt)?,
            organization: self
                .organization
                .as_deref()
                .map(Uscc::parse)
                .transpose()
                .map_err(StoreError::corrupt)?,
            active: self.active,
            created_at: timestamp(self.created_at)?,
            updated_at: timestamp(self.updated_at)?,
        })
    }
}

macro_rules! organization_columns {
    () => {
        "code, name, name_en, level, region, parent, active, created_at, updated_at"
    };
}
macro_rules! system_columns {
    () => {
        "organization, code, name, description, consumes, provides, active, created_at, updated_at"
    };
}
macro_rules! user_columns {
    () => {
        "name, display_name, role, organization, active, created_at, updated_at"
    };
}

/// Checks a name: one line of text. Control characters have no place in one, and PostgreSQL
/// cannot store NUL at all, so refusing them here keeps both backends alike and names the field.
fn check_text(field: &str, value: &str, max_chars: usize) -> Result<()> {
    if value.trim().is_empty() {
        return Err(StoreError::invalid(field, "must not be empty"));
    }
    if value.chars().count() > max_chars {
        return Err(StoreError::invalid(
            field,
            format!("must have at most {max_chars} characters"),
        ));
    }
    if value.contains(char::is_control) {
        return Err(StoreError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(())
}

/// Checks a system's description: free text of several lines, so only NUL, which PostgreSQL
/// cannot store, is refused.
fn check_description(value: &str) -> Result<()> {
    if value.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(StoreError::invalid(
            "description",
            format!("must have at most {MAX_DESCRIPTION_CHARS} characters"),
        ));
    }
    if value.contains('\0') {
        return Err(StoreError::invalid(
            "description",
            "must not contain the NUL character (U+0000)",
        ));
    }
    Ok(())
}

fn check_user_scope(role: Role, organization: Option<&Uscc>) -> Result<()> {
    match (role.is_scoped_to_organization(), organization) {
        (true, None) => Err(StoreError::invalid(
            "organization",
            format!("a user with the role {role} belongs to an organization"),
        )),
        (false, Some(_)) => Err(StoreError::invalid(
            "organization",
            "a platform_admin is not scoped to an organization",
        )),
        _ => Ok(()),
    }
}

/// Reads `organizations.active` for `code` inside a transaction or on a pool; `None` when absent.
macro_rules! organization_active {
    ($executor:expr, $code:expr) => {
        sqlx::query_scalar::<_, bool>("SELECT active FROM organizations WHERE code = $1")
            .bind($code)
            .fetch_optional($executor)
            .await?
    };
}

/// Locks the row of the active organization `$code` for the rest of the transaction; evaluates to
/// whether it is there and active. The statement changes nothing. A user or system added to an
/// organization takes this lock first: on PostgreSQL the row's foreign-key lock does not hold off
/// a deactivation, which would then commit between the check and the insert and leave a user or
/// system in a deactivated organization; with it, the deactivation waits, or the check sees it.
macro_rules! lock_active_organization {
    ($tx:expr, $code:expr) => {
        sqlx::query("UPDATE organizations SET active = active WHERE code = $1 AND active")
            .bind($code)
            .execute(&mut *$tx)
            .await?
            .rows_affected()
            > 0
    };
}

/// Returns from the enclosing function with an `organization` error unless the organization
/// `$organization` (a [`Uscc`]) exists and is active, as a user's organization must be; it stays
/// so until the transaction `$tx` ends (see [`lock_active_organization`]).
macro_rules! organization_takes_users {
    ($tx:expr, $organization:expr) => {
        let organization: &Uscc = $organization;
        if !lock_active_organization!($tx, organization.as_str()) {
            let message = match organization_active!(&mut *$tx, organization.as_str()) {
                None => format!("unknown organization {organization}"),
                Some(_) => format!("organization {organization} is deactivated"),
            };
            return Err(StoreError::invalid("organization", message));
        }
    };
}

/// Locks the row of the user `$seen` (a [`User`] as the caller read it) for the rest of the
/// transaction, if the user's role and organization are still those of `$seen`; evaluates to
/// whether they are. The statement changes nothing. On PostgreSQL its condition is evaluated again
/// on the row as a concurrent writer left it, and the lock holds off a change of the user until
/// the transaction ends, so what the transaction writes next is for the user as checked.
macro_rules! lock_user_as_seen {
    ($tx:expr, $seen:expr) => {
        sqlx::query(
            "UPDATE users SET role = role
             WHERE name = $1 AND role = $2 AND COALESCE(organization, '') = COALESCE($3, '')",
        )
        .bind($seen.name.as_str())
        .bind($seen.role.as_str())
        .bind($seen.organization.as_ref().map(Uscc::as_str))
        .execute(&mut *$tx)
        .await?
        .rows_affected()
            > 0
    };
}
pub(crate) use lock_user_as_seen;

/// The error for a write to the user `$name` that found them no longer as read: `NotFound` when
/// they are gone, [`StoreError::Conflict`] when their role or organization changed.
macro_rules! user_not_as_seen {
    ($executor:expr, $name:expr) => {{
        let exists: Option<String> = sqlx::query_scalar("SELECT name FROM users WHERE name = $1")
            .bind($name.as_str())
            .fetch_optional($executor)
            .await?;
        match exists {
            None => StoreError::NotFound {
                kind: "user",
                id: $name.to_string(),
            },
            Some(_) => StoreError::Conflict(format!(
                "user {}'s role or organization changed since it was read; read it again and retry",
                $name
            )),
        }
    }};
}
pub(crate) use user_not_as_seen;

impl Store {
    pub async fn create_organization(
        &self,
        permit: &Permit,
        new: &NewOrganization,
    ) -> Result<Organization> {
        check_text("name", &new.name, 200)?;
        if let Some(name_en) = &new.name_en {
            check_text("name_en", name_en, 300)?;
        }
        let now = micros(Timestamp::now());
        write_tx!(self, |tx| {
            if let Some(parent) = &new.parent
                && organization_active!(&mut *tx, parent.as_str()).is_none()
            {
                return Err(StoreError::invalid(
                    "parent",
                    format!("unknown organization {parent}"),
                ));
            }
            sqlx::query(
                "INSERT INTO organizations (code, name, name_en, level, region, parent, active, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, TRUE, $7, $7)",
            )
            .bind(new.code.as_str())
            .bind(&new.name)
            .bind(&new.name_en)
            .bind(new.level.as_str())
            .bind(new.region.as_str())
            .bind(new.parent.as_ref().map(Uscc::as_str))
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(duplicate_as("organization", new.code.as_str()))?;
            credentials_changed!(tx);
            record!(
                tx,
                permit,
                "organization.create",
                "organization",
                new.code.as_str(),
                json!({
                    "name": new.name,
                    "name_en": new.name_en,
                    "level": new.level.as_str(),
                    "region": new.region.as_str(),
                    "parent": new.parent.as_ref().map(Uscc::as_str),
                })
            );
        });
        self.organization(&new.code).await
    }

    pub async fn organization(&self, code: &Uscc) -> Result<Organization> {
        let sql = concat!(
            "SELECT ",
            organization_columns!(),
            " FROM organizations WHERE code = $1"
        );
        let row: Option<OrganizationRow> = read_pool!(self, |pool| {
            sqlx::query_as(sql)
                .bind(code.as_str())
                .fetch_optional(pool)
                .await?
        });
        row.ok_or_else(|| StoreError::NotFound {
            kind: "organization",
            id: code.to_string(),
        })?
        .into_organization()
    }

    /// The organizations with these codes that exist, in no particular order.
    pub async fn organizations_by_code(&self, codes: &[&str]) -> Result<Vec<Organization>> {
        let mut organizations = Vec::with_capacity(codes.len());
        for chunk in codes.chunks(500) {
            let placeholders = list_placeholders(self.backend(), 1, chunk.len());
            let sql = format!(
                "SELECT {} FROM organizations WHERE code IN ({placeholders})",
                organization_columns!()
            );
            let rows: Vec<OrganizationRow> = read_pool!(self, |pool| {
                let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql));
                for code in chunk {
                    query = query.bind(*code);
                }
                query.fetch_all(pool).await?
            });
            for row in rows {
                organizations.push(row.into_organization()?);
            }
        }
        Ok(organizations)
    }

    pub async fn update_organization(
        &self,
        permit: &Permit,
        code: &Uscc,
        update: &OrganizationUpdate,
    ) -> Result<Organization> {
        if let Some(name) = &update.name {
            check_text("name", name, 200)?;
        }
        if let Some(Some(name_en)) = &update.name_en {
            check_text("name_en", name_en, 300)?;
        }
        write_tx!(self, |tx| {
            if organization_active!(&mut *tx, code.as_str()).is_none() {
                return Err(StoreError::NotFound {
                    kind: "organization",
                    id: code.to_string(),
                });
            }
            if let Some(Some(parent)) = &update.parent {
                // Walk up from the new parent: reaching `code` means the change closes a cycle.
                let mut current = Some(parent.to_string());
                let mut depth = 0;
                while let Some(ancestor) = current {
                    if ancestor == code.as_str() {
                        return Err(StoreError::invalid(
                            "parent",
                            format!(
                                "{parent} is {code} or lies below it: the hierarchy would have a cycle"
                            ),
                        ));
                    }
                    depth += 1;
                    if depth > MAX_HIERARCHY_DEPTH {
                        return Err(StoreError::invalid(
                            "parent",
                            "the hierarchy above it is too deep",
                        ));
                    }
                    let row: Option<Option<String>> =
                        sqlx::query_scalar("SELECT parent FROM organizations WHERE code = $1")
                            .bind(&ancestor)
                            .fetch_optional(&mut *tx)
                            .await?;
                    current = match row {
                        Some(next) => next,
                        None if ancestor == parent.as_str() => {
                            return Err(StoreError::invalid(
                                "parent",
                                format!("unknown organization {parent}"),
                            ));
                        }
                        None => None,
                    };
                }
            }
            sqlx::query(
                "UPDATE organizations SET
                    name = COALESCE($2, name),
                    name_en = CASE WHEN $3 THEN $4 ELSE name_en END,
                    level = COALESCE($5, level),
                    region = COALESCE($6, region),
                    parent = CASE WHEN $7 THEN $8 ELSE parent END,
                    updated_at = $9
                 WHERE code = $1",
            )
            .bind(code.as_str())
            .bind(&update.name)
            .bind(update.name_en.is_some())
            .bind(update.name_en.clone().flatten())
            .bind(update.level.map(Level::as_str))
            .bind(update.region.map(|r| r.as_str()))
            .bind(update.parent.is_some())
            .bind(update.parent.clone().flatten().map(|p| p.to_string()))
            .bind(micros(Timestamp::now()))
            .execute(&mut *tx)
            .await?;
            if update.name.is_some() || update.name_en.is_some() || update.level.is_some() {
                reindex_resources_of!(tx, code);
            }
            credentials_changed!(tx);
            record!(
                tx,
                permit,
                "organization.update",
                "organization",
                code.as_str(),
                json!({
                    "name": update.name,
                    "name_en": update.name_en,
                    "level": update.level.map(Level::as_str),
                    "region": update.region.map(|r| r.as_str()),
                    "parent": update.parent.as_ref().map(|p| p.as_ref().map(Uscc::as_str)),
                })
            );
        });
        self.organization(code).await
    }

    /// Deactivates (or reactivates) an organization. Organizations are never deleted: exchanges
    /// and audit records refer to them forever.
    pub async fn set_organization_active(
        &self,
        permit: &Permit,
        code: &Uscc,
        active: bool,
    ) -> Result<Organization> {
        write_tx!(self, |tx| {
            let changed = sqlx::query(
                "UPDATE organizations SET active = $2, updated_at = $3 WHERE code = $1",
            )
            .bind(code.as_str())
            .bind(active)
            .bind(micros(Timestamp::now()))
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if changed == 0 {
                return Err(StoreError::NotFound {
                    kind: "organization",
                    id: code.to_string(),
                });
            }
            let action = if active {
                "organization.reactivate"
            } else {
                "organization.deactivate"
            };
            credentials_changed!(tx);
            record!(tx, permit, action, "organization", code.as_str(), json!({}));
        });
        self.organization(code).await
    }

    pub async fn list_organizations(
        &self,
        filter: &OrganizationFilter,
        page: &PageRequest,
    ) -> Result<Page<Organization>> {
        let sql = concat!(
            "SELECT ",
            organization_columns!(),
            " FROM organizations
             WHERE code > $1
               AND ($2 IS NULL OR level = $2)
               AND ($3 IS NULL OR region = $3)
               AND ($4 IS NULL OR parent = $4)
               AND ($5 IS NULL OR active = $5)
             ORDER BY code LIMIT $6"
        );
        let rows: Vec<OrganizationRow> = read_pool!(self, |pool| {
            sqlx::query_as(sql)
                .bind(page.after.as_deref().unwrap_or(""))
                .bind(filter.level.map(Level::as_str))
                .bind(filter.region.map(|r| r.as_str()))
                .bind(filter.parent.as_ref().map(Uscc::as_str))
                .bind(filter.active)
                .bind(page.fetch_limit())
                .fetch_all(pool)
                .await?
        });
        let organizations = rows
            .into_iter()
            .map(OrganizationRow::into_organization)
            .collect::<Result<Vec<_>>>()?;
        Ok(page.page(organizations, |org| org.code.to_string()))
    }

    pub async fn create_system(
        &self,
        permit: &Permit,
        organization: &Uscc,
        new: &NewSystem,
    ) -> Result<System> {
        check_text("name", &new.name, 200)?;
        check_description(&new.description)?;
        let id = format!("{organization}/{}", new.code);
        write_tx!(self, |tx| {
            if !lock_active_organization!(tx, organization.as_str()) {
                return Err(
                    match organization_active!(&mut *tx, organization.as_str()) {
                        None => StoreError::NotFound {
                            kind: "organization",
                            id: organization.to_string(),
                        },
                        Some(_) => StoreError::Conflict(format!(
                            "organization {organization} is deactivated"
                        )),
                    },
                );
            }
            sqlx::query(
                "INSERT INTO systems (organization, code, name, description, consumes, provides, active, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, TRUE, $7, $7)",
            )
            .bind(organization.as_str())
            .bind(new.code.as_str())
            .bind(&new.name)
            .bind(&new.description)
            .bind(new.consumes)
            .bind(new.provides)
            .bind(micros(Timestamp::now()))
            .execute(&mut *tx)
            .await
            .map_err(duplicate_as("system", &id))?;
            credentials_changed!(tx);
            record!(
                tx,
                permit,
                "system.create",
                "system",
                &id,
                json!({
                    "name": new.name,
                    "consumes": new.consumes,
                    "provides": new.provides,
                })
            );
        });
        self.system(organization, &new.code).await
    }

    pub async fn system(&self, organization: &Uscc, code: &Code) -> Result<System> {
        let sql = concat!(
            "SELECT ",
            system_columns!(),
            " FROM systems WHERE organization = $1 AND code = $2"
        );
        let row: Option<SystemRow> = read_pool!(self, |pool| {
            sqlx::query_as(sql)
                .bind(organization.as_str())
                .bind(code.as_str())
                .fetch_optional(pool)
                .await?
        });
        row.ok_or_else(|| StoreError::NotFound {
            kind: "system",
            id: format!("{organization}/{code}"),
        })?
        .into_system()
    }

    pub async fn update_system(
        &self,
        permit: &Permit,
        organization: &Uscc,
        code: &Code,
        update: &SystemUpdate,
    ) -> Result<System> {
        if let Some(name) = &update.name {
            check_text("name", name, 200)?;
        }
        if let Some(description) = &update.description {
            check_description(description)?;
        }
        let id = format!("{organization}/{code}");
        write_tx!(self, |tx| {
            let changed = sqlx::query(
                "UPDATE systems SET
                    name = COALESCE($3, name),
                    description = COALESCE($4, description),
                    consumes = COALESCE($5, consumes),
                    provides = COALESCE($6, provides),
                    updated_at = $7
                 WHERE organization = $1 AND code = $2",
            )
            .bind(organization.as_str())
            .bind(code.as_str())
            .bind(&update.name)
            .bind(&update.description)
            .bind(update.consumes)
            .bind(update.provides)
            .bind(micros(Timestamp::now()))
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if changed == 0 {
                return Err(StoreError::NotFound { kind: "system", id });
            }
            record!(
                tx,
                permit,
                "system.update",
                "system",
                &id,
                json!({
                    "name": update.name,
                    "description": update.description,
                    "consumes": update.consumes,
                    "provides": update.provides,
                })
            );
        });
        self.system(organization, code).await
    }

    pub async fn set_system_active(
        &self,
        permit: &Permit,
        organization: &Uscc,
        code: &Code,
        active: bool,
    ) -> Result<System> {
        let id = format!("{organization}/{code}");
        write_tx!(self, |tx| {
            let changed = sqlx::query(
                "UPDATE systems SET active = $3, updated_at = $4 WHERE organization = $1 AND code = $2",
            )
            .bind(organization.as_str())
            .bind(code.as_str())
            .bind(active)
            .bind(micros(Timestamp::now()))
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if changed == 0 {
                return Err(StoreError::NotFound { kind: "system", id });
            }
            let action = if active {
                "system.reactivate"
            } else {
                "system.deactivate"
            };
            credentials_changed!(tx);
            record!(tx, permit, action, "system", &id, json!({}));
        });
        self.system(organization, code).await
    }

    pub async fn list_systems(
        &self,
        organization: &Uscc,
        filter: &SystemFilter,
        page: &PageRequest,
    ) -> Result<Page<System>> {
        // Listing the systems of an organization that does not exist is a 404, not an empty page.
        self.organization(organization).await?;
        let sql = concat!(
            "SELECT ",
            system_columns!(),
            " FROM systems
             WHERE organization = $1 AND code > $2
               AND ($3 IS NULL OR consumes = $3)
               AND ($4 IS NULL OR provides = $4)
               AND ($5 IS NULL OR active = $5)
             ORDER BY code LIMIT $6"
        );
        let rows: Vec<SystemRow> = read_pool!(self, |pool| {
            sqlx::query_as(sql)
                .bind(organization.as_str())
                .bind(page.after.as_deref().unwrap_or(""))
                .bind(filter.consumes)
                .bind(filter.provides)
                .bind(filter.active)
                .bind(page.fetch_limit())
                .fetch_all(pool)
                .await?
        });
        let systems = rows
            .into_iter()
            .map(SystemRow::into_system)
            .collect::<Result<Vec<_>>>()?;
        Ok(page.page(systems, |system| system.code.to_string()))
    }

    pub async fn create_user(&self, permit: &Permit, new: &NewUser) -> Result<User> {
        check_text("display_name", &new.display_name, 200)?;
        check_user_scope(new.role, new.organization.as_ref())?;
        write_tx!(self, |tx| {
            if let Some(organization) = &new.organization {
                organization_takes_users!(tx, organization);
            }
            sqlx::query(
                "INSERT INTO users (name, display_name, role, organization, password_hash, active, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, TRUE, $6, $6)",
            )
            .bind(new.name.as_str())
            .bind(&new.display_name)
            .bind(new.role.as_str())
            .bind(new.organization.as_ref().map(Uscc::as_str))
            .bind(&new.password_hash)
            .bind(micros(Timestamp::now()))
            .execute(&mut *tx)
            .await
            .map_err(duplicate_as("user", new.name.as_str()))?;
            record!(
                tx,
                permit,
                "user.create",
                "user",
                new.name.as_str(),
                json!({
                    "role": new.role.as_str(),
                    "organization": new.organization.as_ref().map(Uscc::as_str),
                    "password": new.password_hash.is_some(),
                })
            );
        });
        self.user(&new.name).await
    }

    pub async fn user(&self, name: &UserName) -> Result<User> {
        let sql = concat!("SELECT ", user_columns!(), " FROM users WHERE name = $1");
        let row: Option<UserRow> = read_pool!(self, |pool| {
            sqlx::query_as(sql)
                .bind(name.as_str())
                .fetch_optional(pool)
                .await?
        });
        row.ok_or_else(|| StoreError::NotFound {
            kind: "user",
            id: name.to_string(),
        })?
        .into_user()
    }

    /// The stored password hash of an active user of an active organization (or of none, as
    /// platform admins are), for signing in: a deactivated organization's users sign in again
    /// once it is reactivated, as their keys work again.
    pub async fn password_hash(&self, name: &UserName) -> Result<Option<String>> {
        let hash: Option<Option<String>> = read_pool!(self, |pool| {
            sqlx::query_scalar(
                "SELECT u.password_hash FROM users u
                 LEFT JOIN organizations o ON o.code = u.organization
                 WHERE u.name = $1 AND u.active AND (u.organization IS NULL OR o.active)",
            )
            .bind(name.as_str())
            .fetch_optional(pool)
            .await?
        });
        Ok(hash.flatten())
    }

    /// Changes the user `seen`, writing only the fields `update` names, on the condition that the
    /// user's role and organization are still those of `seen`: the caller's permission to manage
    /// the user was checked against them, and a change made since (a demotion, a move to another
    /// organization) may have taken it away. [`StoreError::Conflict`] when they changed, so the
    /// caller reads the user again and checks anew; [`lock_user_as_seen`] checks the condition and
    /// holds the row until the change commits.
    pub async fn update_user(
        &self,
        permit: &Permit,
        seen: &User,
        update: &UserUpdate,
    ) -> Result<User> {
        let name = &seen.name;
        if let Some(display_name) = &update.display_name {
            check_text("display_name", display_name, 200)?;
        }
        // What the user will be, given that the row still holds `seen`'s role and organization.
        let role = update.role.unwrap_or(seen.role);
        let organization = match &update.organization {
            Some(organization) => organization.as_ref(),
            None => seen.organization.as_ref(),
        };
        check_user_scope(role, organization)?;
        write_tx!(self, |tx| {
            if let Some(Some(organization)) = &update.organization {
                organization_takes_users!(tx, organization);
            }
            if !lock_user_as_seen!(tx, seen) {
                return Err(user_not_as_seen!(&mut *tx, name));
            }
            sqlx::query(
                "UPDATE users SET
                    display_name = COALESCE($2, display_name),
                    role = COALESCE($3, role),
                    organization = CASE WHEN $4 THEN $5 ELSE organization END,
                    password_hash = COALESCE($6, password_hash),
                    updated_at = $7
                 WHERE name = $1",
            )
            .bind(name.as_str())
            .bind(&update.display_name)
            .bind(update.role.map(Role::as_str))
            .bind(update.organization.is_some())
            .bind(
                update
                    .organization
                    .as_ref()
                    .and_then(Option::as_ref)
                    .map(Uscc::as_str),
            )
            .bind(&update.password_hash)
            .bind(micros(Timestamp::now()))
            .execute(&mut *tx)
            .await?;
            record!(
                tx,
                permit,
                "user.update",
                "user",
                name.as_str(),
                json!({
                    "display_name": update.display_name,
                    "role": update.role.map(Role::as_str),
                    "organization": update.organization.as_ref().map(|o| o.as_ref().map(Uscc::as_str)),
                    "password_changed": update.password_hash.is_some(),
                })
            );
        });
        self.user(name).await
    }

    /// Deactivates (or reactivates) the user `seen`; their API keys stop working at once because
    /// authentication checks the owner's state on every request. Like [`Store::update_user`], it
    /// applies only while the user's role and organization are still those of `seen`, against
    /// which the caller's permission was checked ([`StoreError::Conflict`] otherwise).
    pub async fn set_user_active(
        &self,
        permit: &Permit,
        seen: &User,
        active: bool,
    ) -> Result<User> {
        let name = &seen.name;
        write_tx!(self, |tx| {
            if !lock_user_as_seen!(tx, seen) {
                return Err(user_not_as_seen!(&mut *tx, name));
            }
            sqlx::query("UPDATE users SET active = $2, updated_at = $3 WHERE name = $1")
                .bind(name.as_str())
                .bind(active)
                .bind(micros(Timestamp::now()))
                .execute(&mut *tx)
                .await?;
            let action = if active {
                "user.reactivate"
            } else {
                "user.deactivate"
            };
            record!(tx, permit, action, "user", name.as_str(), json!({}));
        });
        self.user(name).await
    }

    pub async fn list_users(&self, filter: &UserFilter, page: &PageRequest) -> Result<Page<User>> {
        let sql = concat!(
            "SELECT ",
            user_columns!(),
            " FROM users
             WHERE name > $1
               AND ($2 IS NULL OR organization = $2)
               AND ($3 IS NULL OR role = $3)
               AND ($4 IS NULL OR active = $4)
             ORDER BY name LIMIT $5"
        );
        let rows: Vec<UserRow> = read_pool!(self, |pool| {
            sqlx::query_as(sql)
                .bind(page.after.as_deref().unwrap_or(""))
                .bind(filter.organization.as_ref().map(Uscc::as_str))
                .bind(filter.role.map(Role::as_str))
                .bind(filter.active)
                .bind(page.fetch_limit())
                .fetch_all(pool)
                .await?
        });
        let users = rows
            .into_iter()
            .map(UserRow::into_user)
            .collect::<Result<Vec<_>>>()?;
        Ok(page.page(users, |user| user.name.to_string()))
    }

    /// Whether any user exists; the server bootstraps the first platform admin when none does.
    pub async fn has_users(&self) -> Result<bool> {
        let count: i64 = read_pool!(self, |pool| {
            sqlx::query_scalar("SELECT COUNT(*) FROM users")
                .fetch_one(pool)
                .await?
        });
        Ok(count > 0)
    }
}

/// Moves the organization's resources to the end of the catalog's change sequence, so that the
/// search index, which shows each resource with its provider's name and level, takes them again
/// after the provider changed. Their versions stay: the resources themselves did not change.
macro_rules! reindex_resources_of {
    ($tx:expr, $code:expr) => {{
        let codes: Vec<String> =
            sqlx::query_scalar("SELECT code FROM resources WHERE provider = $1 ORDER BY code")
                .bind($code.as_str())
                .fetch_all(&mut *$tx)
                .await?;
        if !codes.is_empty() {
            let last: i64 = sqlx::query_scalar(
                "UPDATE catalog_sequence SET last = last + $1 WHERE id = 1 RETURNING last",
            )
            .bind(codes.len() as i64)
            .fetch_one(&mut *$tx)
            .await?;
            let first = last - codes.len() as i64 + 1;
            for (seq, resource) in (first..).zip(&codes) {
                sqlx::query("UPDATE resources SET seq = $1 WHERE code = $2")
                    .bind(seq)
                    .bind(resource)
                    .execute(&mut *$tx)
                    .await?;
            }
        }
    }};
}
use reindex_resources_of;
