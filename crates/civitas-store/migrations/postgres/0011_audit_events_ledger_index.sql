-- Where audit events landed in the ledger, searchable by place: when a node starts on a ledger
-- shorter than the store remembers (records cut by a salvage, or restored from an older backup),
-- the events noted at the lost places go back to the outbox, and the node looks for them on
-- every start. Audit events are written at the rate people change things, so the index costs
-- little.
CREATE INDEX IF NOT EXISTS audit_events_ledger_index ON audit_events (ledger_index);
