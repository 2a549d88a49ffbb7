-- The registry: organizations, systems, users, API keys, and the audit outbox.
-- Timestamps are Unix microseconds (BIGINT) on both backends.

CREATE TABLE organizations (
    code        TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    name_en     TEXT,
    level       TEXT NOT NULL,
    region      TEXT NOT NULL,
    parent      TEXT REFERENCES organizations (code),
    active      BOOLEAN NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX organizations_level ON organizations (level, code);
CREATE INDEX organizations_region ON organizations (region, code);
CREATE INDEX organizations_parent ON organizations (parent, code);

CREATE TABLE systems (
    organization TEXT NOT NULL REFERENCES organizations (code),
    code         TEXT NOT NULL,
    name         TEXT NOT NULL,
    description  TEXT NOT NULL,
    consumes     BOOLEAN NOT NULL,
    provides     BOOLEAN NOT NULL,
    active       BOOLEAN NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (organization, code)
);

CREATE TABLE users (
    name          TEXT PRIMARY KEY,
    display_name  TEXT NOT NULL,
    role          TEXT NOT NULL,
    organization  TEXT REFERENCES organizations (code),
    password_hash TEXT,
    active        BOOLEAN NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX users_organization ON users (organization, name);

CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY,
    hash          TEXT NOT NULL UNIQUE,
    prefix        TEXT NOT NULL,
    owner_kind    TEXT NOT NULL,
    user_name     TEXT REFERENCES users (name),
    organization  TEXT REFERENCES organizations (code),
    system_code   TEXT,
    label         TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    created_by    TEXT NOT NULL,
    expires_at    BIGINT,
    last_used_at  BIGINT,
    revoked_at    BIGINT
);
CREATE INDEX api_keys_user ON api_keys (user_name);
CREATE INDEX api_keys_system ON api_keys (organization, system_code);

-- Every change made through the API, written in the same transaction as the change. Rows whose
-- ledger_index is NULL have not reached the ledger yet (an outbox).
CREATE TABLE audit_events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    at           BIGINT NOT NULL,
    actor        TEXT NOT NULL,
    action       TEXT NOT NULL,
    object_kind  TEXT NOT NULL,
    object_id    TEXT NOT NULL,
    details      TEXT NOT NULL,
    ledger_index BIGINT
);
CREATE INDEX audit_events_object ON audit_events (object_kind, object_id, id);
CREATE INDEX audit_events_unshipped ON audit_events (id) WHERE ledger_index IS NULL;
