-- Access: applications for resources, the grants approvals create, and platform policies.

CREATE TABLE applications (
    id                     TEXT PRIMARY KEY,
    consumer_organization  TEXT NOT NULL,
    consumer_system        TEXT NOT NULL,
    resource               TEXT NOT NULL REFERENCES resources (code),
    -- The resource's provider when the application was made: whose officers review it.
    provider               TEXT NOT NULL,
    items                  TEXT NOT NULL,
    purpose                TEXT NOT NULL,
    legal_basis            TEXT NOT NULL,
    valid_days             BIGINT NOT NULL,
    expected_calls_per_day BIGINT,
    state                  TEXT NOT NULL,
    applicant              TEXT NOT NULL,
    decided_by             TEXT,
    decided_at             BIGINT,
    reason                 TEXT,
    grant_id               TEXT,
    created_at             BIGINT NOT NULL,
    updated_at             BIGINT NOT NULL
);
CREATE INDEX applications_queue ON applications (provider, state, id);
CREATE INDEX applications_consumer ON applications (consumer_organization, consumer_system, id);

CREATE TABLE grants (
    id                     TEXT PRIMARY KEY,
    application            TEXT,
    consumer_organization  TEXT NOT NULL,
    consumer_system        TEXT NOT NULL,
    resource               TEXT NOT NULL REFERENCES resources (code),
    provider               TEXT NOT NULL,
    -- JSON array of {"code", "plaintext"}.
    items                  TEXT NOT NULL,
    valid_from             BIGINT NOT NULL,
    valid_until            BIGINT NOT NULL,
    calls_per_day          BIGINT,
    requests_per_second    BIGINT,
    revoked_at             BIGINT,
    revoked_by             TEXT,
    revoke_reason          TEXT,
    created_at             BIGINT NOT NULL,
    -- Position of the grant's latest change in the access change sequence, which the gateway
    -- follows to keep its in-memory grants current.
    seq                    BIGINT NOT NULL UNIQUE
);
CREATE INDEX grants_consumer ON grants (consumer_organization, consumer_system, id);
CREATE INDEX grants_resource ON grants (resource, id);

CREATE TABLE platform_policies (
    id          TEXT PRIMARY KEY,
    description TEXT NOT NULL,
    text        TEXT NOT NULL,
    active      BOOLEAN NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    seq         BIGINT NOT NULL UNIQUE
);

-- One row: the last number of the access change sequence (grants and platform policies).
CREATE TABLE access_sequence (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    last BIGINT NOT NULL
);
INSERT INTO access_sequence (id, last) VALUES (1, 0);
