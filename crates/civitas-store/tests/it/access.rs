use civitas_core::{
    Code,
    access::{ApplicationState, GrantedItem, SystemRef},
};
use civitas_store::{
    ApplicationFilter, GrantFilter, GrantTerms, NewApplication, NewSystem, PageRequest, Store,
    StoreError, WriteMode,
};
use jiff::{Timestamp, ToSpan};

use crate::{admin, catalog::draft, conformance, new_org, uscc};

conformance!(
    application_workflow,
    grants_follow_the_access_sequence,
    platform_policies
);

async fn setup(store: &Store) -> SystemRef {
    store
        .create_organization(&admin(), &new_org(1, None))
        .await
        .unwrap();
    store
        .create_organization(&admin(), &new_org(2, None))
        .await
        .unwrap();
    let system = NewSystem {
        code: Code::parse("portal").unwrap(),
        name: "门户".into(),
        description: String::new(),
        consumes: true,
        provides: false,
    };
    store
        .create_system(&admin(), &uscc(2), &system)
        .await
        .unwrap();
    store
        .write_resources(&admin(), &[draft(1, 1)], WriteMode::Create)
        .await
        .unwrap();
    SystemRef {
        organization: uscc(2),
        system: Code::parse("portal").unwrap(),
    }
}

fn application(id: &str, consumer: &SystemRef) -> NewApplication {
    NewApplication {
        id: id.into(),
        consumer: consumer.clone(),
        resource: draft(1, 1).code,
        provider: uscc(1),
        items: vec!["id_number".into()],
        purpose: "租房提取核验".into(),
        legal_basis: "《住房公积金管理条例》".into(),
        valid_days: 365,
        expected_calls_per_day: Some(1000),
        applicant: "dev".into(),
    }
}

fn terms(id: &str) -> GrantTerms {
    let now = Timestamp::now();
    GrantTerms {
        id: id.into(),
        items: vec![GrantedItem {
            code: "id_number".into(),
            plaintext: false,
        }],
        valid_from: now,
        valid_until: now + 24.hours(),
        calls_per_day: Some(500),
        requests_per_second: Some(10),
    }
}

async fn application_workflow(store: Store) {
    let consumer = setup(&store).await;
    let (pending, grant) = store
        .create_application(&admin(), &application("a1", &consumer), None)
        .await
        .unwrap();
    assert_eq!((pending.state, grant), (ApplicationState::Pending, None));
    let queue = ApplicationFilter {
        provider: Some(uscc(1)),
        state: Some(ApplicationState::Pending),
        ..Default::default()
    };
    assert_eq!(
        store
            .list_applications(
                &queue,
                &PageRequest {
                    limit: 10,
                    after: None
                }
            )
            .await
            .unwrap()
            .items
            .len(),
        1
    );

    let (approved, grant) = store
        .approve_application(&admin(), "a1", &terms("g1"), Some("ok"))
        .await
        .unwrap();
    assert_eq!(approved.state, ApplicationState::Approved);
    assert_eq!(approved.grant.as_deref(), Some("g1"));
    assert_eq!(grant.consumer, consumer);
    let twice = store
        .approve_application(&admin(), "a1", &terms("g2"), None)
        .await
        .unwrap_err();
    assert!(matches!(twice, StoreError::Conflict(_)), "{twice}");
    let reject_after = store
        .close_application(&admin(), "a1", ApplicationState::Rejected, "no")
        .await
        .unwrap_err();
    assert!(matches!(reject_after, StoreError::Conflict(_)));
    assert!(
        store.grant("g2").await.is_err(),
        "the failed approval created no grant"
    );

    store
        .create_application(&admin(), &application("a2", &consumer), None)
        .await
        .unwrap();
    let rejected = store
        .close_application(&admin(), "a2", ApplicationState::Rejected, "目的不明确")
        .await
        .unwrap();
    assert_eq!(
        (rejected.state, rejected.reason.as_deref()),
        (ApplicationState::Rejected, Some("目的不明确"))
    );
    store
        .create_application(&admin(), &application("a3", &consumer), None)
        .await
        .unwrap();
    let withdrawn = store
        .close_application(&admin(), "a3", ApplicationState::Withdrawn, "不再需要")
        .await
        .unwrap();
    assert_eq!(withdrawn.state, ApplicationState::Withdrawn);

    let (automatic, grant) = store
        .create_application(&admin(), &application("a4", &consumer), Some(&terms("g4")))
        .await
        .unwrap();
    assert_eq!(automatic.state, ApplicationState::Approved);
    assert_eq!(grant.unwrap().id, "g4");
    let duplicate = store
        .create_application(&admin(), &application("a4", &consumer), None)
        .await
        .unwrap_err();
    assert!(matches!(duplicate, StoreError::Duplicate { .. }));
    let unknown = SystemRef {
        organization: uscc(2),
        system: Code::parse("ghost").unwrap(),
    };
    let error = store
        .create_application(&admin(), &application("a5", &unknown), None)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, StoreError::Invalid { field, .. } if field == "consumer"),
        "{error}"
    );

    let mine = ApplicationFilter {
        consumer_organization: Some(uscc(2)),
        ..Default::default()
    };
    assert_eq!(
        store
            .list_applications(
                &mine,
                &PageRequest {
                    limit: 10,
                    after: None
                }
            )
            .await
            .unwrap()
            .items
            .len(),
        4
    );
}

async fn grants_follow_the_access_sequence(store: Store) {
    let consumer = setup(&store).await;
    assert_eq!(store.access_sequence().await.unwrap(), 0);
    store
        .create_application(&admin(), &application("a1", &consumer), Some(&terms("g1")))
        .await
        .unwrap();
    store
        .create_application(&admin(), &application("a2", &consumer), Some(&terms("g2")))
        .await
        .unwrap();
    let all = store.grant_changes(0, 100).await.unwrap();
    assert_eq!(
        all.iter()
            .map(|(seq, g)| (*seq, g.id.as_str()))
            .collect::<Vec<_>>(),
        [(1, "g1"), (2, "g2")]
    );

    let revoked = store
        .revoke_grant(&admin(), "g1", "数据用途变更")
        .await
        .unwrap();
    assert!(revoked.revoked_at.is_some());
    assert!(!revoked.is_valid_at(Timestamp::now()));
    let again = store.revoke_grant(&admin(), "g1", "x").await.unwrap_err();
    assert!(matches!(again, StoreError::Conflict(_)));
    let tail = store.grant_changes(2, 100).await.unwrap();
    assert_eq!((tail.len(), tail[0].0, tail[0].1.id.as_str()), (1, 3, "g1"));

    let valid = GrantFilter {
        valid_at: Some(Timestamp::now()),
        ..Default::default()
    };
    let page = store
        .list_grants(
            &valid,
            &PageRequest {
                limit: 10,
                after: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        page.items.iter().map(|g| g.id.as_str()).collect::<Vec<_>>(),
        ["g2"]
    );
    let by_resource = GrantFilter {
        resource: Some(draft(1, 1).code),
        ..Default::default()
    };
    assert_eq!(
        store
            .list_grants(
                &by_resource,
                &PageRequest {
                    limit: 10,
                    after: None
                }
            )
            .await
            .unwrap()
            .items
            .len(),
        2
    );
}

async fn platform_policies(store: Store) {
    let id = Code::parse("no-personal-outside-city").unwrap();
    let (policy, created) = store
        .put_policy(
            &admin(),
            &id,
            "个人信息不出城",
            "forbid(principal, action, resource);",
            true,
        )
        .await
        .unwrap();
    assert!(created && policy.active);
    let (policy, created) = store
        .put_policy(
            &admin(),
            &id,
            "个人信息不出城",
            "forbid(principal, action, resource) when { true };",
            false,
        )
        .await
        .unwrap();
    assert!(!created && !policy.active);
    assert!(policy.text.contains("when"));
    assert_eq!(store.policies().await.unwrap().len(), 1);
    assert_eq!(store.access_sequence().await.unwrap(), 2);
}
