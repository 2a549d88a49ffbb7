use civitas_store::{AuditFilter, PageRequest, Store};

use crate::{admin, conformance, new_org, uscc};

conformance!(changes_are_audited_in_order, audit_outbox_ships_once);

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
        .mark_audit_events_shipped(&[(pending[0].id, 7)])
        .await
        .unwrap();
    let pending_after = store.unshipped_audit_events(10).await.unwrap();
    assert_eq!(pending_after.len(), 1);
    assert_eq!(pending_after[0].id, pending[1].id);
}
