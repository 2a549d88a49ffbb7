-- Application scenarios: every published version of each definition, and every run.

CREATE TABLE scenarios (
    code          TEXT NOT NULL,
    version       BIGINT NOT NULL,
    name          TEXT NOT NULL,
    -- yaml or json: the definition is kept exactly as published.
    format        TEXT NOT NULL,
    definition    TEXT NOT NULL,
    consumer      TEXT NOT NULL,
    front_end     TEXT NOT NULL,
    published_by  TEXT NOT NULL,
    published_at  BIGINT NOT NULL,
    PRIMARY KEY (code, version)
);

CREATE TABLE scenario_runs (
    id            TEXT PRIMARY KEY,
    scenario      TEXT NOT NULL,
    version       BIGINT NOT NULL,
    -- Keyed hash of the citizen's identifier, never the identifier itself.
    subject       TEXT NOT NULL,
    consent       TEXT NOT NULL,
    outcome       TEXT NOT NULL,
    -- The run's outcome, explanation and steps as JSON.
    result        TEXT NOT NULL,
    ledger_index  BIGINT NOT NULL,
    at            BIGINT NOT NULL
);
CREATE INDEX scenario_runs_subject ON scenario_runs (subject, at);
CREATE INDEX scenario_runs_scenario ON scenario_runs (scenario, at);
