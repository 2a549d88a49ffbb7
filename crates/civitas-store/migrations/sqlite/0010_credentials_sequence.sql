-- One row: the last number of the credentials change sequence. Every change to what the gateway
-- must know of its callers (API keys issued or revoked, systems and organizations registered,
-- changed, deactivated or reactivated) takes the next number in its own transaction, so the
-- number only grows, in the order the changes commit. The timestamps it replaces as the gateway's
-- signal did not: a change committed later with an earlier time (a replica whose clock is
-- behind, or concurrent writers on PostgreSQL) went unseen.
CREATE TABLE IF NOT EXISTS credentials_sequence (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    last BIGINT NOT NULL
);
INSERT INTO credentials_sequence (id, last) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;
