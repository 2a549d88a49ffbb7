//! Published scenario definitions (every version kept) and their runs.

use civitas_core::authz::Permit;
use jiff::Timestamp;
use serde_json::json;

use crate::{
    Page, PageRequest, Result, Store, StoreError, audit::record, micros, read_pool, timestamp,
    write_tx,
};

/// One published version of a scenario definition.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ScenarioVersion {
    pub code: String,
    pub version: u32,
    pub name: String,
    /// `yaml` or `json`.
    pub format: String,
    pub definition: String,
    /// `{org}/{system}` of the scenario's consumer system and front end.
    pub consumer: String,
    pub front_end: String,
    pub published_by: String,
    pub published_at: Timestamp,
}

/// A recorded run, as the store indexes it from the run's ledger record.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ScenarioRun {
    pub id: String,
    pub scenario: String,
    pub version: u32,
    pub subject: String,
    pub consent: String,
    pub outcome: String,
    pub result: serde_json::Value,
    pub ledger_index: u64,
    pub at: Timestamp,
}

#[derive(sqlx::FromRow)]
struct VersionRow {
    code: String,
    version: i64,
    name: String,
    format: String,
    definition: String,
    consumer: String,
    front_end: String,
    published_by: String,
    published_at: i64,
}

impl VersionRow {
    fn into_version(self) -> Result<ScenarioVersion> {
        Ok(ScenarioVersion {
            code: self.code,
            version: self.version as u32,
            name: self.name,
            format: self.format,
            definition: self.definition,
            consumer: self.consumer,
            front_end: self.front_end,
            published_by: self.published_by,
            published_at: timestamp(self.published_at)?,
        })
    }
}

#[derive(sqlx::FromRow)]
struct RunRow {
    id: String,
    scenario: String,
    version: i64,
    subject: String,
    consent: String,
    outcome: String,
    result: String,
    ledger_index: i64,
    at: i64,
}

impl RunRow {
    fn into_run(self) -> Result<ScenarioRun> {
        Ok(ScenarioRun {
            id: self.id,
            scenario: self.scenario,
            version: self.version as u32,
            subject: self.subject,
            consent: self.consent,
            outcome: self.outcome,
            result: serde_json::from_str(&self.result).map_err(StoreError::corrupt)?,
            ledger_index: self.ledger_index as u64,
            at: timestamp(self.at)?,
        })
    }
}

macro_rules! version_columns {
    () => {
        "code, version, name, format, definition, consumer, front_end, published_by, published_at"
    };
}

macro_rules! run_columns {
    () => {
        "id, scenario, version, subject, consent, outcome, result, ledger_index, at"
    };
}

/// What a publication stores; the caller has validated the definition.
#[derive(Debug, Clone)]
pub struct NewScenarioVersion {
    pub code: String,
    pub name: String,
    pub format: String,
    pub definition: String,
    pub consumer: String,
    pub front_end: String,
}

impl Store {
    /// Publishes a new version of a scenario: the next version number, kept forever.
    pub async fn publish_scenario(
        &self,
        permit: &Permit,
        new: &NewScenarioVersion,
    ) -> Result<ScenarioVersion> {
        let version = write_tx!(self, |tx| {
            // A code belongs to the organization of its first version's consumer system; the
            // API checks this too, and this check holds when two first publications race.
            let first: Option<String> = sqlx::query_scalar(
                "SELECT consumer FROM scenarios WHERE code = $1 AND version = 1",
            )
            .bind(&new.code)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(first) = first {
                let organization =
                    |consumer: &str| consumer.split('/').next().unwrap_or("").to_owned();
                if organization(&first) != organization(&new.consumer) {
                    return Err(StoreError::Conflict(format!(
                        "scenario {} belongs to organization {}, whose system consumed its first \
                         version; a new version keeps a consumer system of it",
                        new.code,
                        organization(&first)
                    )));
                }
            }
            let latest: Option<i64> =
                sqlx::query_scalar("SELECT MAX(version) FROM scenarios WHERE code = $1")
                    .bind(&new.code)
                    .fetch_one(&mut *tx)
                    .await?;
            let version = latest.unwrap_or(0) + 1;
            sqlx::query(
                "INSERT INTO scenarios (code, version, name, format, definition, consumer, front_end, published_by, published_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(&new.code)
            .bind(version)
            .bind(&new.name)
            .bind(&new.format)
            .bind(&new.definition)
            .bind(&new.consumer)
            .bind(&new.front_end)
            .bind(permit.actor())
            .bind(micros(Timestamp::now()))
            .execute(&mut *tx)
            .await?;
            record!(
                tx,
                permit,
                "scenario.publish",
                "scenario",
                &new.code,
                json!({ "version": version, "consumer": new.consumer, "front_end": new.front_end })
            );
            version
        });
        self.scenario_version(&new.code, Some(version as u32)).await
    }

    /// A version of a scenario, or its latest when `version` is `None`.
    pub async fn scenario_version(
        &self,
        code: &str,
        version: Option<u32>,
    ) -> Result<ScenarioVersion> {
        let sql = concat!(
            "SELECT ",
            version_columns!(),
            " FROM scenarios WHERE code = $1 AND ($2 IS NULL OR version = $2) ORDER BY version DESC LIMIT 1"
        );
        let row: Option<VersionRow> = read_pool!(self, |pool| {
            sqlx::query_as(sql)
                .bind(code)
                .bind(version.map(i64::from))
                .fetch_optional(pool)
                .await?
        });
        row.ok_or_else(|| StoreError::NotFound {
            kind: "scenario",
            id: match version {
                Some(version) => format!("{code} version {version}"),
                None => code.to_owned(),
            },
        })?
        .into_version()
    }

    /// Every version of a scenario, oldest first.
    pub async fn scenario_versions(&self, code: &str) -> Result<Vec<ScenarioVersion>> {
        let sql = concat!(
            "SELECT ",
            version_columns!(),
            " FROM scenarios WHERE code = $1 ORDER BY version"
        );
        let rows: Vec<VersionRow> = read_pool!(self, |pool| sqlx::query_as(sql)
            .bind(code)
            .fetch_all(pool)
            .await?);
        rows.into_iter().map(VersionRow::into_version).collect()
    }

    /// The latest version of every scenario.
    pub async fn latest_scenarios(&self) -> Result<Vec<ScenarioVersion>> {
        let sql = concat!(
            "SELECT ",
            version_columns!(),
            " FROM scenarios s WHERE version = (SELECT MAX(version) FROM scenarios t WHERE t.code = s.code) ORDER BY code"
        );
        let rows: Vec<VersionRow> =
            read_pool!(self, |pool| sqlx::query_as(sql).fetch_all(pool).await?);
        rows.into_iter().map(VersionRow::into_version).collect()
    }

    /// The runs about one subject (a keyed hash), newest first (runs recorded in the same
    /// microsecond by id, descending); with `front_end` (`{org}/{system}`), only runs of scenario
    /// versions whose front end that system is. The cursor is the last run's time and id.
    pub async fn scenario_runs_of(
        &self,
        subject: &str,
        front_end: Option<&str>,
        page: &PageRequest,
    ) -> Result<Page<ScenarioRun>> {
        let (before_at, before_id) = match page.after.as_deref() {
            None => (i64::MAX, String::new()),
            Some(cursor) => cursor
                .split_once('.')
                .and_then(|(at, id)| Some((at.parse().ok()?, id.to_owned())))
                .ok_or_else(|| StoreError::invalid("cursor", "not a cursor of this listing"))?,
        };
        // `at <= $3` repeats what the keyset condition implies, so that PostgreSQL, like SQLite,
        // starts its scan of the `(subject, at)` index at the cursor, not at the newest run.
        let sql = concat!(
            "SELECT ",
            run_columns!(),
            " FROM scenario_runs WHERE subject = $1",
            " AND ($2 IS NULL OR EXISTS (SELECT 1 FROM scenarios s",
            " WHERE s.code = scenario_runs.scenario AND s.version = scenario_runs.version",
            " AND s.front_end = $2))",
            " AND at <= $3 AND (at < $3 OR (at = $3 AND id < $4))",
            " ORDER BY at DESC, id DESC LIMIT $5"
        );
        let rows: Vec<RunRow> = read_pool!(self, |pool| {
            sqlx::query_as(sql)
                .bind(subject)
                .bind(front_end)
                .bind(before_at)
                .bind(&before_id)
                .bind(page.fetch_limit())
                .fetch_all(pool)
                .await?
        });
        let runs = rows
            .into_iter()
            .map(RunRow::into_run)
            .collect::<Result<Vec<_>>>()?;
        Ok(page.page(runs, |run| format!("{}.{}", micros(run.at), run.id)))
    }

    pub async fn scenario_run(&self, id: &str) -> Result<ScenarioRun> {
        let sql = concat!(
            "SELECT ",
            run_columns!(),
            " FROM scenario_runs WHERE id = $1"
        );
        let row: Option<RunRow> = read_pool!(self, |pool| sqlx::query_as(sql)
            .bind(id)
            .fetch_optional(pool)
            .await?);
        row.ok_or_else(|| StoreError::NotFound {
            kind: "scenario run",
            id: id.to_owned(),
        })?
        .into_run()
    }
}
