-- The personal-data access index keeps only which exchange (its ledger index) delivered data
-- about which person (the keyed hash of the ID number, 32 bytes). When, to which system and
-- under which grant are read from the exchange's ledger record, which holds them anyway. Each
-- row kept copies of them in two B-trees; a busy gateway indexes every call it makes.
CREATE TABLE subject_deliveries (
    subject       BYTEA NOT NULL,
    ledger_index  BIGINT NOT NULL,
    PRIMARY KEY (subject, ledger_index)
);
INSERT INTO subject_deliveries (subject, ledger_index)
    SELECT decode(subject, 'hex'), ledger_index FROM subject_access;
DROP TABLE subject_access;
