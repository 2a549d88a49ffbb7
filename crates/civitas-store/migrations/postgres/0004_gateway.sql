-- The exchange gateway: services on interface resources, system client certificates, daily grant
-- usage, and the personal-data access index.

CREATE TABLE services (
    provider     TEXT NOT NULL,
    system       TEXT NOT NULL,
    code         TEXT NOT NULL,
    resource     TEXT NOT NULL REFERENCES resources (code),
    upstream     TEXT NOT NULL,
    -- JSON arrays: allowed methods, allowed path patterns, and field mappings
    -- ({"item": item code, "path": JSON path}).
    methods      TEXT NOT NULL,
    paths        TEXT NOT NULL,
    fields       TEXT NOT NULL,
    timeout_ms   BIGINT NOT NULL,
    active       BOOLEAN NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    -- Position in the access change sequence, which the gateway follows.
    seq          BIGINT NOT NULL UNIQUE,
    PRIMARY KEY (provider, system, code)
);
CREATE INDEX services_resource ON services (resource);

CREATE TABLE client_certificates (
    serial        TEXT PRIMARY KEY,
    organization  TEXT NOT NULL,
    system        TEXT NOT NULL,
    not_after     BIGINT NOT NULL,
    created_at    BIGINT NOT NULL,
    created_by    TEXT NOT NULL,
    revoked_at    BIGINT,
    seq           BIGINT NOT NULL UNIQUE
);
CREATE INDEX client_certificates_system ON client_certificates (organization, system);

-- Calls per grant per day (in the node's time zone), for quotas and usage reports.
CREATE TABLE grant_usage (
    grant_id  TEXT NOT NULL,
    day       TEXT NOT NULL,
    calls     BIGINT NOT NULL,
    denied    BIGINT NOT NULL,
    bytes     BIGINT NOT NULL,
    PRIMARY KEY (grant_id, day)
);

-- Which exchange delivered data about which person: keyed hashes (HMAC with a node secret) of
-- citizen ID numbers, never the numbers. Derived from the ledger's exchange records.
CREATE TABLE subject_access (
    subject        TEXT NOT NULL,
    ledger_index   BIGINT NOT NULL,
    at             BIGINT NOT NULL,
    consumer       TEXT NOT NULL,
    provider       TEXT NOT NULL,
    service        TEXT NOT NULL,
    resource       TEXT NOT NULL,
    grant_id       TEXT,
    PRIMARY KEY (subject, ledger_index)
);

-- How far the subject index has read the ledger.
CREATE TABLE subject_index_state (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    next  BIGINT NOT NULL
);
INSERT INTO subject_index_state (id, next) VALUES (1, 0);

-- The camera of a video resource, so that the gateway finds the resource of a play request.
ALTER TABLE resources ADD COLUMN device TEXT;
CREATE INDEX resources_device ON resources (device);
