-- The ledger the store's derived indexes come from: the `ledger-id` of the first node that
-- started on the store (no row until one has). Their position and every ledger index they hold
-- name records of that one ledger, so a node on another ledger refuses to start rather than
-- read, cite or rewind against the wrong one. A store from before ledgers had ids adopts the
-- ledger of the first node that starts on it, the only ledger it can have been reading.
CREATE TABLE IF NOT EXISTS ledger_index_owner (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    ledger_id  TEXT NOT NULL
);
