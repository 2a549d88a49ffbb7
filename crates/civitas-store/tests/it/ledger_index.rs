use civitas_store::{
    AuditFilter, LedgerIndexFacts, LedgerIndexHandover, LedgerIndexOwner, LedgerIndexRewind,
    PageRequest, ScenarioRun, Store, StoreError, SubjectDelivery,
};
use jiff::Timestamp;

use crate::{LEDGER, OTHER_LEDGER, admin, conformance, new_org};

conformance!(
    a_shorter_ledger_rewinds_what_was_derived_from_the_lost_records,
    a_store_records_the_ledger_its_indexes_come_from,
    a_store_from_before_ledger_ids_adopts_the_ledger_it_was_reading,
    a_store_is_handed_over_to_another_ledger_only_from_the_one_it_records,
    a_store_from_before_ledger_ids_is_handed_over_by_naming_none,
);

fn delivery(subject: u8, ledger_index: u64) -> SubjectDelivery {
    SubjectDelivery {
        subject: [subject; 32],
        ledger_index,
    }
}

fn run(id: &str, ledger_index: u64) -> ScenarioRun {
    ScenarioRun {
        id: id.to_owned(),
        scenario: "a".to_owned(),
        version: 1,
        subject: "s1".to_owned(),
        consent: format!("consent-{id}"),
        outcome: "approve".to_owned(),
        result: serde_json::json!({ "outcome": "approve" }),
        ledger_index,
        at: Timestamp::from_microsecond(1_000 + ledger_index as i64).unwrap(),
    }
}

const ALL: PageRequest = PageRequest {
    limit: 100,
    after: None,
};

async fn deliveries(store: &Store, subject: u8) -> Vec<u64> {
    store
        .subject_deliveries(&[subject; 32], &ALL)
        .await
        .unwrap()
        .items
}

/// The ids of the audit events waiting in the outbox, oldest first.
async fn outbox(store: &Store) -> Vec<i64> {
    store
        .unshipped_audit_events(10)
        .await
        .unwrap()
        .iter()
        .map(|event| event.id)
        .collect()
}

/// Makes `count` audited changes (new organizations) and returns their audit events' ids, which
/// wait in the outbox, oldest first.
async fn audited_changes(store: &Store, count: u32) -> Vec<i64> {
    for n in 1..=count {
        store
            .create_organization(&admin(), &new_org(n, None))
            .await
            .unwrap();
    }
    let events = outbox(store).await;
    assert_eq!(events.len(), count as usize);
    events
}

/// Where each audit event landed, oldest event first.
async fn places(store: &Store) -> Vec<(i64, Option<u64>)> {
    let mut events: Vec<_> = store
        .list_audit_events(&AuditFilter::default(), &ALL)
        .await
        .unwrap()
        .items
        .iter()
        .map(|event| (event.id, event.ledger_index))
        .collect();
    events.reverse();
    events
}

/// The ledger comes back with 8 records where the store had read 10 and shipping had noted an
/// event at 12: what came from indexes 8 and beyond is forgotten, the events there return to the
/// outbox in their order, and what came from the first 8 records stays.
async fn a_shorter_ledger_rewinds_what_was_derived_from_the_lost_records(store: Store) {
    assert_eq!(
        store.claim_ledger_index(LEDGER, 0).await.unwrap(),
        LedgerIndexOwner::Adopted { derived: false }
    );
    let events = audited_changes(&store, 4).await;
    store
        .add_ledger_index(
            LEDGER,
            &[
                delivery(1, 3),
                delivery(2, 7),
                delivery(1, 8),
                delivery(2, 9),
            ],
            &[run("r1", 4), run("r2", 9)],
            &[(events[0], 2), (events[1], 5), (events[2], 8)],
            10,
        )
        .await
        .unwrap();
    // Shipping notes where an event landed before the ledger's reader gets there.
    store
        .mark_audit_events_shipped(LEDGER, &[(events[3], 12)])
        .await
        .unwrap();

    let rewind = store.rewind_ledger_index(LEDGER, 8).await.unwrap();
    assert_eq!(
        rewind,
        LedgerIndexRewind {
            indexed_to: 10,
            ledger_size: 8,
            subject_deliveries: 2,
            scenario_runs: 1,
            audit_events: 2,
        }
    );
    assert!(rewind.rewound());
    assert_eq!(store.ledger_index_next().await.unwrap(), 8);
    assert_eq!(deliveries(&store, 1).await, [3]);
    assert_eq!(deliveries(&store, 2).await, [7]);
    assert_eq!(store.scenario_run("r1").await.unwrap().ledger_index, 4);
    assert!(matches!(
        store.scenario_run("r2").await,
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(
        places(&store).await,
        [
            (events[0], Some(2)),
            (events[1], Some(5)),
            (events[2], None),
            (events[3], None),
        ]
    );
    let outbox = outbox(&store).await;
    assert_eq!(outbox, events[2..], "the outbox holds them oldest first");

    // Nothing more to undo at the same size.
    let again = store.rewind_ledger_index(LEDGER, 8).await.unwrap();
    assert_eq!(
        (
            again.indexed_to,
            again.subject_deliveries,
            again.scenario_runs,
            again.audit_events
        ),
        (8, 0, 0, 0)
    );
    assert!(!again.rewound());

    // Reading the new records indexes them at the places they took.
    store
        .mark_audit_events_shipped(LEDGER, &[(events[2], 8), (events[3], 9)])
        .await
        .unwrap();
    store
        .add_ledger_index(LEDGER, &[delivery(1, 10)], &[run("r3", 11)], &[], 12)
        .await
        .unwrap();
    assert_eq!(store.ledger_index_next().await.unwrap(), 12);
    assert_eq!(deliveries(&store, 1).await, [3, 10]);
    assert_eq!(store.scenario_run("r3").await.unwrap().ledger_index, 11);

    // An event noted past a ledger that the reader has not passed returns to the outbox, and
    // the position stays where it was.
    store
        .mark_audit_events_shipped(LEDGER, &[(events[3], 14)])
        .await
        .unwrap();
    let rewind = store.rewind_ledger_index(LEDGER, 13).await.unwrap();
    assert_eq!(
        rewind,
        LedgerIndexRewind {
            indexed_to: 12,
            ledger_size: 13,
            subject_deliveries: 0,
            scenario_runs: 0,
            audit_events: 1,
        }
    );
    assert!(rewind.rewound());
    assert_eq!(store.ledger_index_next().await.unwrap(), 12);
    assert_eq!(deliveries(&store, 1).await, [3, 10]);
    assert_eq!(places(&store).await[3], (events[3], None));
}

/// What the store has derived: the position, the access index of subject 1, the runs and where
/// each audit event landed.
async fn derived(store: &Store) -> (u64, Vec<u64>, Vec<(i64, Option<u64>)>, bool) {
    (
        store.ledger_index_next().await.unwrap(),
        deliveries(store, 1).await,
        places(store).await,
        store.scenario_run("r1").await.is_ok(),
    )
}

/// A new store records the first ledger claimed and answers for it from then on; another
/// ledger, even an empty one, is told whose the indexes are, and can neither claim nor rewind
/// them.
async fn a_store_records_the_ledger_its_indexes_come_from(store: Store) {
    // Audit events waiting in the outbox come from no ledger.
    let event = audited_changes(&store, 1).await[0];
    assert_eq!(
        store.claim_ledger_index(LEDGER, 0).await.unwrap(),
        LedgerIndexOwner::Adopted { derived: false }
    );
    assert_eq!(
        store.claim_ledger_index(LEDGER, 0).await.unwrap(),
        LedgerIndexOwner::This
    );
    store
        .add_ledger_index(LEDGER, &[delivery(1, 1)], &[run("r1", 2)], &[(event, 0)], 3)
        .await
        .unwrap();
    assert_eq!(
        store.claim_ledger_index(LEDGER, 3).await.unwrap(),
        LedgerIndexOwner::This
    );
    let before = derived(&store).await;
    assert_eq!(before, (3, vec![1], vec![(event, Some(0))], true));

    for other_size in [0, 1, 3, 10] {
        assert_eq!(
            store
                .claim_ledger_index(OTHER_LEDGER, other_size)
                .await
                .unwrap(),
            LedgerIndexOwner::Other {
                recorded: Some(LEDGER.to_owned())
            }
        );
    }
    assert!(matches!(
        store.rewind_ledger_index(OTHER_LEDGER, 0).await,
        Err(StoreError::LedgerNotOwned { .. })
    ));
    assert_eq!(derived(&store).await, before);

    // The ledger's own rewind, after a salvage that cut every record, keeps it the store's.
    let rewind = store.rewind_ledger_index(LEDGER, 0).await.unwrap();
    assert_eq!(
        (
            rewind.subject_deliveries,
            rewind.scenario_runs,
            rewind.audit_events
        ),
        (1, 1, 1)
    );
    assert_eq!(
        store.claim_ledger_index(LEDGER, 0).await.unwrap(),
        LedgerIndexOwner::This
    );
    assert_eq!(
        store.claim_ledger_index(OTHER_LEDGER, 0).await.unwrap(),
        LedgerIndexOwner::Other {
            recorded: Some(LEDGER.to_owned())
        }
    );
}

/// A store from before ledgers had ids (its column empty, its indexes derived) adopts the
/// ledger of the first node that claims it, unless that ledger is empty and so cannot be the
/// one it read; until a ledger is adopted, none can rewind it.
async fn a_store_from_before_ledger_ids_adopts_the_ledger_it_was_reading(store: Store) {
    let events = audited_changes(&store, 2).await;
    // Shipping noted where the first event landed; the reader has not got there.
    store
        .mark_audit_events_shipped(LEDGER, &[(events[0], 0)])
        .await
        .unwrap();
    let before = derived(&store).await;
    assert_eq!(before.0, 0);
    assert_eq!(
        store.claim_ledger_index(OTHER_LEDGER, 0).await.unwrap(),
        LedgerIndexOwner::Other { recorded: None },
        "an event landed in a ledger, and an empty ledger cannot be it"
    );
    assert!(matches!(
        store.rewind_ledger_index(OTHER_LEDGER, 0).await,
        Err(StoreError::LedgerNotOwned { .. })
    ));
    assert_eq!(derived(&store).await, before);

    store
        .add_ledger_index(
            LEDGER,
            &[delivery(1, 1)],
            &[run("r1", 2)],
            &[(events[1], 3)],
            4,
        )
        .await
        .unwrap();
    let before = derived(&store).await;
    assert_eq!(
        store.claim_ledger_index(OTHER_LEDGER, 0).await.unwrap(),
        LedgerIndexOwner::Other { recorded: None }
    );
    assert_eq!(derived(&store).await, before);

    // A ledger with records is adopted, even one shorter than the position (after a salvage).
    assert_eq!(
        store.claim_ledger_index(LEDGER, 2).await.unwrap(),
        LedgerIndexOwner::Adopted { derived: true }
    );
    assert_eq!(derived(&store).await, before, "adopting changes no index");
    assert_eq!(
        store.claim_ledger_index(LEDGER, 2).await.unwrap(),
        LedgerIndexOwner::This
    );
    assert_eq!(
        store.claim_ledger_index(OTHER_LEDGER, 5).await.unwrap(),
        LedgerIndexOwner::Other {
            recorded: Some(LEDGER.to_owned())
        }
    );
    assert!(
        store
            .rewind_ledger_index(LEDGER, 2)
            .await
            .unwrap()
            .rewound()
    );
    assert_eq!(store.ledger_index_next().await.unwrap(), 2);
}

/// After its ledger is lost, a store is handed over to another ledger, but only by naming the
/// ledger it records: everything that cited the old ledger's records is deleted, every audit
/// event returns to the outbox in its order, the position goes back to 0, and the new ledger is
/// the store's from then on: a node still running on the old ledger can no longer read into it
/// or note where events landed. A store from before ledger ids, which records none, is handed
/// over by naming none.
async fn a_store_is_handed_over_to_another_ledger_only_from_the_one_it_records(store: Store) {
    assert_eq!(
        store.claim_ledger_index(LEDGER, 0).await.unwrap(),
        LedgerIndexOwner::Adopted { derived: false }
    );
    let events = audited_changes(&store, 3).await;
    store
        .add_ledger_index(
            LEDGER,
            &[delivery(1, 3), delivery(2, 7)],
            &[run("r1", 4), run("r2", 9)],
            &[(events[0], 2), (events[1], 5)],
            10,
        )
        .await
        .unwrap();
    let facts = LedgerIndexFacts {
        recorded_ledger_id: Some(LEDGER.to_owned()),
        indexed_to: 10,
        subject_deliveries: 2,
        scenario_runs: 2,
        audit_events_landed: 2,
        audit_events_waiting: 1,
    };
    assert_eq!(store.ledger_index_facts().await.unwrap(), facts);

    let before = derived(&store).await;
    for wrong in [None, Some(OTHER_LEDGER)] {
        assert!(
            matches!(
                store.hand_ledger_index_over(wrong, OTHER_LEDGER).await,
                Err(StoreError::Conflict(_))
            ),
            "handed over from {wrong:?}"
        );
        assert_eq!(derived(&store).await, before);
        assert_eq!(store.ledger_index_facts().await.unwrap(), facts);
    }

    assert_eq!(
        store
            .hand_ledger_index_over(Some(LEDGER), OTHER_LEDGER)
            .await
            .unwrap(),
        LedgerIndexHandover {
            indexed_to: 10,
            subject_deliveries: 2,
            scenario_runs: 2,
            audit_events: 2,
        }
    );
    assert_eq!(
        store.ledger_index_facts().await.unwrap(),
        LedgerIndexFacts {
            recorded_ledger_id: Some(OTHER_LEDGER.to_owned()),
            indexed_to: 0,
            subject_deliveries: 0,
            scenario_runs: 0,
            audit_events_landed: 0,
            audit_events_waiting: 3,
        }
    );
    assert_eq!(deliveries(&store, 2).await, Vec::<u64>::new());
    assert!(store.scenario_run("r2").await.is_err());
    let waiting = outbox(&store).await;
    assert_eq!(waiting, events, "every event waits, in its order");
    assert_eq!(
        store.claim_ledger_index(OTHER_LEDGER, 0).await.unwrap(),
        LedgerIndexOwner::This
    );
    assert_eq!(
        store.claim_ledger_index(LEDGER, 10).await.unwrap(),
        LedgerIndexOwner::Other {
            recorded: Some(OTHER_LEDGER.to_owned())
        }
    );
    // The node on the old ledger, still running, can no longer read into the store nor note
    // where its events landed, and is told so before it appends the outbox.
    let before = derived(&store).await;
    let refused = [
        store
            .add_ledger_index(LEDGER, &[delivery(1, 10)], &[], &[(events[0], 10)], 11)
            .await,
        store
            .mark_audit_events_shipped(LEDGER, &[(events[0], 10)])
            .await,
        store.check_ledger_index_owner(LEDGER).await,
    ];
    for refused in refused {
        match refused {
            Err(StoreError::LedgerNotOwned { recorded, ledger }) => {
                assert_eq!(
                    (recorded.as_deref(), ledger.as_str()),
                    (Some(OTHER_LEDGER), LEDGER)
                );
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(derived(&store).await, before);
    store.check_ledger_index_owner(OTHER_LEDGER).await.unwrap();
    // The new ledger's records are indexed from its start.
    store
        .add_ledger_index(
            OTHER_LEDGER,
            &[delivery(1, 0)],
            &[run("r1", 1)],
            &[(events[0], 2)],
            3,
        )
        .await
        .unwrap();
    assert_eq!(
        derived(&store).await,
        (
            3,
            vec![0],
            vec![(events[0], Some(2)), (events[1], None), (events[2], None)],
            true
        )
    );
}

/// A store from before ledger ids that derived indexes from a ledger now lost refuses an empty
/// ledger's claim, and is handed over to it by naming no recorded ledger.
async fn a_store_from_before_ledger_ids_is_handed_over_by_naming_none(store: Store) {
    let event = audited_changes(&store, 1).await[0];
    store
        .add_ledger_index(LEDGER, &[delivery(1, 1)], &[], &[(event, 0)], 2)
        .await
        .unwrap();
    assert_eq!(
        store.claim_ledger_index(OTHER_LEDGER, 0).await.unwrap(),
        LedgerIndexOwner::Other { recorded: None }
    );
    assert!(matches!(
        store
            .hand_ledger_index_over(Some(LEDGER), OTHER_LEDGER)
            .await,
        Err(StoreError::Conflict(_))
    ));
    let handover = store
        .hand_ledger_index_over(None, OTHER_LEDGER)
        .await
        .unwrap();
    assert_eq!((handover.indexed_to, handover.audit_events), (2, 1));
    assert_eq!(
        store.claim_ledger_index(OTHER_LEDGER, 0).await.unwrap(),
        LedgerIndexOwner::This
    );
    assert_eq!(
        derived(&store).await,
        (0, vec![], vec![(event, None)], false)
    );
}
