-- The store's indexes derived from the ledger (the personal-data access index and the scenario
-- runs) share one position: the first ledger index they have not read yet.
ALTER TABLE subject_index_state RENAME TO ledger_index_state;
