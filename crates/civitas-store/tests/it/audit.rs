use civitas_store::{AuditFilter, PageRequest, Store, StoreError};

use crate::{LEDGER, admin, conformance, new_org, uscc};

conformance!(
    changes_are_audited_in_order,
    audit_outbox_ships_once,
    events_about_several_objects_page_oldest_first
);

async fn changes_are_audited_in_order(store: Store) {
    store
        .create_organization(&admin(), &new_org(1, None))
        .await
        .unwrap();
    store
        .set_organization_active(&admin(), &uscc(1), false)
        .await
        .unwrap();
    // A failed change leaves no audit record behind.
    store
        .create_organization(&admin(), &new_org(1, None))
        .await
        .unwrap_err();

    let filter = AuditFilter {
        object_id: Some(uscc(1).to_string()),
        ..Default::default()
    };
    let events = store
        .list_audit_events(
            &filter,
            &PageRequest {
                limit: 10,
                after: None,
            },
        )
        .await
        .unwrap();
    let actions: Vec<_> = events.items.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["organization.deactivate", "organization.create"]);
    assert!(events.items.iter().all(|e| e.actor == "civitas:test"));
    assert_eq!(events.items[1].details["name"], "南京市测试局1");

    let first_page = store
        .list_audit_events(
            &filter,
            &PageRequest {
                limit: 1,
                after: None,
            },
        )
        .await
        .unwrap();
    let second_page = store
        .list_audit_events(
            &filter,
            &PageRequest {
                limit: 1,
                after: first_page.next_cursor.clone(),
            },
        )
        .await
        .unwrap();
    assert_eq!(second_page.items[0].action, "organization.create");
    assert_eq!(second_page.next_cursor, None);
}

async fn audit_outbox_ships_once(store: Store) {
    store
        .create_organization(&admin(), &new_org(1, None))
        .await
        .unwrap();
    store
        .create_organization(&admin(), &new_org(2, None))
        .await
        .unwrap();
    let pending = store.unshipped_audit_events(10).await.unwrap();
    assert_eq!(pending.len(), 2);
    assert!(pending[0].id < pending[1].id);
    store
        .mark_audit_events_shipped(LEDGER, &[(pending[0].id, 7)])
        .await
        .unwrap();
    let pending_after = store.unshipped_audit_events(10).await.unwrap();
    assert_eq!(pending_after.len(), 1);
    assert_eq!(pending_after[0].id, pending[1].id);

    // The ledger's reader notes where events landed that were appended but not marked (a node
    // stopped in between), keeping the first place of an event appended twice.
    store
        .add_ledger_index(
            LEDGER,
            &[],
            &[],
            &[(pending[1].id, 9), (pending[0].id, 8)],
            10,
        )
        .await
        .unwrap();
    store
        .add_ledger_index(LEDGER, &[], &[], &[(pending[1].id, 12)], 13)
        .await
        .unwrap();
    assert!(store.unshipped_audit_events(10).await.unwrap().is_empty());
    let places: Vec<_> = store
        .list_audit_events(
            &AuditFilter::default(),
            &PageRequest {
                limit: 10,
                after: None,
            },
        )
        .await
        .unwrap()
        .items
        .iter()
        .map(|event| (event.id, event.ledger_index))
        .collect();
    assert_eq!(
        places,
        [(pending[1].id, Some(9)), (pending[0].id, Some(7))],
        "newest first, each at its first place"
    );
}

/// The events about any of several objects, in one sequence: every event exactly once, in the
/// order they happened, whatever the page size.
async fn events_about_several_objects_page_oldest_first(store: Store) {
    for n in 1..=3 {
        store
            .create_organization(&admin(), &new_org(n, None))
            .await
            .unwrap();
    }
    for active in [false, true, false] {
        for n in [2, 1] {
            store
                .set_organization_active(&admin(), &uscc(n), active)
                .await
                .unwrap();
        }
    }
    let (one, two, three) = (
        uscc(1).to_string(),
        uscc(2).to_string(),
        uscc(3).to_string(),
    );
    let objects = [
        ("organization", one.as_str()),
        ("organization", two.as_str()),
        // The kind must match as well as the id.
        ("system", three.as_str()),
    ];
    let everything = store
        .list_audit_events(
            &AuditFilter {
                object_kind: Some("organization".to_owned()),
                ..Default::default()
            },
            &PageRequest {
                limit: 100,
                after: None,
            },
        )
        .await
        .unwrap();
    let mut expected: Vec<(i64, String)> = everything
        .items
        .iter()
        .filter(|event| event.object_id != three)
        .map(|event| (event.id, event.object_id.clone()))
        .collect();
    expected.reverse();
    assert_eq!(expected.len(), 8);

    for limit in 1..=9 {
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = store
                .audit_events_about(&objects, &PageRequest { limit, after })
                .await
                .unwrap();
            assert!(page.items.len() <= limit as usize);
            seen.extend(
                page.items
                    .iter()
                    .map(|event| (event.id, event.object_id.clone())),
            );
            match page.next_cursor {
                Some(cursor) => after = Some(cursor),
                None => break,
            }
        }
        assert_eq!(seen, expected, "limit {limit}");
    }

    let first = PageRequest {
        limit: 10,
        after: None,
    };
    let only_three = store
        .audit_events_about(&[("organization", three.as_str())], &first)
        .await
        .unwrap();
    assert_eq!(only_three.items.len(), 1);
    assert!(
        store
            .audit_events_about(&[], &first)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    for cursor in ["seven", "-1", "1.5"] {
        let error = store
            .audit_events_about(
                &objects,
                &PageRequest {
                    limit: 10,
                    after: Some(cursor.to_owned()),
                },
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&error, StoreError::Invalid { field, .. } if field == "cursor"),
            "{cursor}: {error}"
        );
    }
}
