-- The catalog: current resources, every version of each, and the change sequence that the search
-- index follows.

CREATE TABLE resources (
    code            TEXT PRIMARY KEY,
    -- Position of the resource's latest change in the catalog's change sequence; the search
    -- index records how far it has caught up.
    seq             BIGINT NOT NULL UNIQUE,
    version         BIGINT NOT NULL,
    kind            TEXT NOT NULL,
    classification  TEXT NOT NULL,
    provider        TEXT NOT NULL REFERENCES organizations (code),
    provider_system TEXT,
    sharing_type    TEXT NOT NULL,
    open_type       TEXT NOT NULL,
    origin_node     TEXT,
    name            TEXT NOT NULL,
    active          BOOLEAN NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    -- The resource draft as JSON: the whole of what the data officer said.
    document        TEXT NOT NULL
);
CREATE INDEX resources_provider ON resources (provider, code);
CREATE INDEX resources_updated ON resources (updated_at, code);

CREATE TABLE resource_versions (
    code        TEXT NOT NULL,
    version     BIGINT NOT NULL,
    active      BOOLEAN NOT NULL,
    changed_at  BIGINT NOT NULL,
    changed_by  TEXT NOT NULL,
    document    TEXT NOT NULL,
    PRIMARY KEY (code, version)
);

-- One row: the last number handed out in the catalog's change sequence. Every catalog write
-- updates it first, which also serializes catalog writers, so sequence order is commit order.
CREATE TABLE catalog_sequence (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    last BIGINT NOT NULL
);
INSERT INTO catalog_sequence (id, last) VALUES (1, 0);
