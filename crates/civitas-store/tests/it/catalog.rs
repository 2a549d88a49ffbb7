use civitas_core::{
    Code,
    catalog::{
        ClassificationCode, DataType, InformationItem, OpenType, ResourceCode, ResourceDraft,
        ResourceKind, Sensitivity, Sharing, SharingType, UpdateCycle,
    },
};
use civitas_store::{NewSystem, PageRequest, ResourceFilter, Store, StoreError, WriteMode};

use crate::{admin, conformance, new_org, uscc};

conformance!(
    resources_keep_every_version,
    bulk_upsert_is_idempotent_and_partial,
    change_sequence_follows_writes,
    filters_take_lists_of_providers_and_classifications
);

pub fn draft(n: u32, provider: u32) -> ResourceDraft {
    ResourceDraft {
        code: ResourceCode::parse(&format!("320100-B01-{n:06}")).unwrap(),
        kind: ResourceKind::Dataset,
        classification: ClassificationCode::parse("B01").unwrap(),
        name: format!("住房公积金缴存信息{n}"),
        name_en: Some(format!("Housing fund deposits {n}")),
        provider: uscc(provider),
        provider_system: None,
        summary: "每月缴存明细".into(),
        format: "json".into(),
        items: vec![InformationItem {
            code: "id_number".into(),
            name: "公民身份号码".into(),
            data_type: DataType::String,
            sensitivity: Sensitivity::Personal,
            mask: None,
        }],
        sharing: Sharing {
            sharing_type: SharingType::Unconditional,
            conditions: None,
            method: None,
        },
        open_type: OpenType::Closed,
        update_cycle: UpdateCycle::Monthly,
        published_on: None,
        related: vec![],
        tags: vec!["公积金".into()],
        origin_node: None,
        device: None,
    }
}

async fn resources_keep_every_version(store: Store) {
    store
        .create_organization(&admin(), &new_org(1, None))
        .await
        .unwrap();
    let (outcome, written) = store
        .write_resources(&admin(), &[draft(1, 1)], WriteMode::Create)
        .await
        .unwrap();
    assert_eq!((outcome.created, written[0].version), (1, 1));
    let duplicate = store
        .write_resources(&admin(), &[draft(1, 1)], WriteMode::Create)
        .await
        .unwrap_err();
    assert!(
        matches!(duplicate, StoreError::Duplicate { .. }),
        "{duplicate}"
    );

    let mut changed = draft(1, 1);
    changed.name = "住房公积金缴存明细".into();
    let editor = civitas_core::authz::Permit::internal("civitas:editor");
    let (_, written) = store
        .write_resources(&editor, &[changed.clone()], WriteMode::Update)
        .await
        .unwrap();
    assert_eq!(written[0].version, 2);
    let missing = store
        .write_resources(&admin(), &[draft(2, 1)], WriteMode::Update)
        .await
        .unwrap_err();
    assert!(matches!(missing, StoreError::NotFound { .. }));

    let code = draft(1, 1).code;
    let deactivated = store
        .set_resource_active(&admin(), &code, false)
        .await
        .unwrap();
    assert_eq!((deactivated.version, deactivated.active), (3, false));
    let again = store
        .set_resource_active(&admin(), &code, false)
        .await
        .unwrap_err();
    assert!(matches!(again, StoreError::Conflict(_)));

    let history = store.resource_history(&code).await.unwrap();
    let summary: Vec<_> = history
        .iter()
        .map(|v| (v.version, v.active, v.draft.name.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            (1, true, "住房公积金缴存信息1"),
            (2, true, "住房公积金缴存明细"),
            (3, false, "住房公积金缴存明细")
        ]
    );
    let actors: Vec<_> = history.iter().map(|v| v.changed_by.as_str()).collect();
    assert_eq!(actors, ["civitas:test", "civitas:editor", "civitas:test"]);
    assert!(history[0].changed_at < history[1].changed_at);
    assert!(history[1].changed_at < history[2].changed_at);
    let current = store.resource(&code).await.unwrap();
    assert_eq!(current.draft, changed);
    assert!(current.created_at < current.updated_at);
}

async fn bulk_upsert_is_idempotent_and_partial(store: Store) {
    store
        .create_organization(&admin(), &new_org(1, None))
        .await
        .unwrap();
    store
        .create_system(
            &admin(),
            &uscc(1),
            &NewSystem {
                code: Code::parse("api").unwrap(),
                name: "接口".into(),
                description: String::new(),
                consumes: false,
                provides: true,
            },
        )
        .await
        .unwrap();
    let mut batch: Vec<_> = (1..=1200).map(|n| draft(n, 1)).collect();
    batch[10].provider = uscc(9); // unknown provider: rejected, the rest written
    batch[20].kind = ResourceKind::Interface;
    batch[20].provider_system = Some(Code::parse("nope").unwrap());
    batch[30].kind = ResourceKind::Interface;
    batch[30].provider_system = Some(Code::parse("api").unwrap());
    let (outcome, _) = store
        .write_resources(&admin(), &batch, WriteMode::Upsert)
        .await
        .unwrap();
    assert_eq!(
        (outcome.created, outcome.updated, outcome.unchanged),
        (1198, 0, 0)
    );
    let rejected: Vec<_> = outcome
        .rejected
        .iter()
        .map(|(index, error)| (*index, error.to_string()))
        .collect();
    assert_eq!(rejected.len(), 2);
    assert_eq!(rejected[0].0, 10);
    assert!(rejected[0].1.starts_with("provider:"), "{}", rejected[0].1);
    assert!(
        rejected[1].1.starts_with("provider_system:"),
        "{}",
        rejected[1].1
    );

    batch[10].provider = uscc(1);
    batch[20].provider_system = Some(Code::parse("api").unwrap());
    batch[40].summary = "changed".into();
    let (outcome, written) = store
        .write_resources(&admin(), &batch, WriteMode::Upsert)
        .await
        .unwrap();
    assert_eq!(
        (outcome.created, outcome.updated, outcome.unchanged),
        (2, 1, 1197)
    );
    assert_eq!(written.len(), 3);
    let count = store
        .count_resources(&ResourceFilter::default())
        .await
        .unwrap();
    assert_eq!(count, 1200);
    let interfaces = ResourceFilter {
        kind: Some(ResourceKind::Interface),
        ..Default::default()
    };
    assert_eq!(store.count_resources(&interfaces).await.unwrap(), 2);
    let page = store
        .list_resources(
            &ResourceFilter::default(),
            &PageRequest {
                limit: 500,
                after: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(page.items.len(), 500);
    assert!(page.next_cursor.is_some());
    assert_eq!(store.active_resource_codes().await.unwrap().len(), 1200);

    let twice = store
        .write_resources(&admin(), &[draft(5, 1), draft(5, 1)], WriteMode::Upsert)
        .await
        .unwrap_err();
    assert!(matches!(twice, StoreError::Invalid { .. }));
}

async fn change_sequence_follows_writes(store: Store) {
    store
        .create_organization(&admin(), &new_org(1, None))
        .await
        .unwrap();
    assert_eq!(store.catalog_sequence().await.unwrap(), 0);
    let (outcome, _) = store
        .write_resources(&admin(), &[draft(1, 1), draft(2, 1)], WriteMode::Create)
        .await
        .unwrap();
    assert_eq!(outcome.first_seq, Some(1));
    let mut changed = draft(1, 1);
    changed.tags.push("缴存".into());
    // Written rows are numbered in order; an unchanged one takes no number.
    let (outcome, written) = store
        .write_resources(&admin(), &[draft(2, 1), changed], WriteMode::Upsert)
        .await
        .unwrap();
    assert_eq!((outcome.unchanged, outcome.first_seq), (1, Some(3)));
    assert_eq!(written[0].draft.code, draft(1, 1).code);
    let (outcome, _) = store
        .write_resources(&admin(), &[draft(2, 1)], WriteMode::Upsert)
        .await
        .unwrap();
    assert_eq!(outcome.first_seq, None);
    assert_eq!(store.catalog_sequence().await.unwrap(), 3);
    let all = store.resource_changes(0, 100).await.unwrap();
    // Resource 1 changed last, so it comes after resource 2 and appears once.
    let order: Vec<_> = all
        .iter()
        .map(|(seq, r)| (*seq, r.draft.code.to_string()))
        .collect();
    assert_eq!(
        order,
        [
            (2, "320100-B01-000002".to_owned()),
            (3, "320100-B01-000001".to_owned())
        ]
    );
    let tail = store.resource_changes(2, 100).await.unwrap();
    assert_eq!(tail.len(), 1);
    store
        .set_resource_active(&admin(), &draft(2, 1).code, false)
        .await
        .unwrap();
    let tail = store.resource_changes(3, 100).await.unwrap();
    assert_eq!((tail[0].0, tail[0].1.active), (4, false));
}

/// CKAN's harvester asks for datasets of any of some organizations, or of none of them (and the
/// same of groups, the classifications): lists in the filter, alone and beside the other
/// conditions, in all three queries that take a filter.
async fn filters_take_lists_of_providers_and_classifications(store: Store) {
    for n in 1..=3 {
        store
            .create_organization(&admin(), &new_org(n, None))
            .await
            .unwrap();
    }
    // Provider 1: 1 to 4; provider 2: 5 to 7; provider 3: 8 and 9. Classification T03: 2, 5, 8;
    // open: 3, 6, 9.
    let batch: Vec<_> = (1..=9)
        .map(|n| {
            let provider = match n {
                1..=4 => 1,
                5..=7 => 2,
                _ => 3,
            };
            let mut draft = draft(n, provider);
            if n % 3 == 2 {
                draft.classification = ClassificationCode::parse("T03").unwrap();
            }
            if n % 3 == 0 {
                draft.open_type = OpenType::Open;
            }
            draft
        })
        .collect();
    let (outcome, _) = store
        .write_resources(&admin(), &batch, WriteMode::Create)
        .await
        .unwrap();
    assert_eq!(outcome.created, 9, "{:?}", outcome.rejected);
    let t03 = || ClassificationCode::parse("T03").unwrap();
    let cases: Vec<(ResourceFilter, Vec<u32>)> = vec![
        (ResourceFilter::default(), (1..=9).collect()),
        (
            ResourceFilter {
                providers: vec![uscc(1), uscc(3)],
                ..Default::default()
            },
            vec![1, 2, 3, 4, 8, 9],
        ),
        (
            ResourceFilter {
                excluded_providers: vec![uscc(1), uscc(3)],
                ..Default::default()
            },
            vec![5, 6, 7],
        ),
        (
            ResourceFilter {
                providers: vec![uscc(1), uscc(2)],
                excluded_providers: vec![uscc(2)],
                ..Default::default()
            },
            vec![1, 2, 3, 4],
        ),
        (
            ResourceFilter {
                classifications: vec![t03()],
                ..Default::default()
            },
            vec![2, 5, 8],
        ),
        (
            ResourceFilter {
                excluded_classifications: vec![t03()],
                excluded_providers: vec![uscc(2)],
                ..Default::default()
            },
            vec![1, 3, 4, 9],
        ),
        // Every list and every other condition at once: the parameters after the lists are
        // numbered on from them.
        (
            ResourceFilter {
                providers: vec![uscc(1), uscc(2), uscc(3)],
                excluded_providers: vec![uscc(3)],
                classifications: vec![ClassificationCode::parse("B01").unwrap()],
                excluded_classifications: vec![t03()],
                kind: Some(ResourceKind::Dataset),
                active: Some(true),
                modified_since: Some(jiff::Timestamp::UNIX_EPOCH),
                open_type: Some(OpenType::Open),
            },
            vec![3, 6],
        ),
    ];
    let code = |n: &u32| format!("320100-B01-{n:06}");
    for (filter, expected) in cases {
        let expected: Vec<String> = expected.iter().map(code).collect();
        let count = store.count_resources(&filter).await.unwrap();
        assert_eq!(count, expected.len() as u64, "{filter:?}");
        let at_offset: Vec<String> = store
            .resources_at_offset(&filter, 1, 100)
            .await
            .unwrap()
            .iter()
            .map(|resource| resource.draft.code.to_string())
            .collect();
        assert_eq!(at_offset, expected[1.min(expected.len())..], "{filter:?}");
        let page = store
            .list_resources(
                &filter,
                &PageRequest {
                    limit: 2,
                    after: expected.first().cloned(),
                },
            )
            .await
            .unwrap();
        let listed: Vec<String> = page
            .items
            .iter()
            .map(|resource| resource.draft.code.to_string())
            .collect();
        let end = expected.len().min(3);
        assert_eq!(listed, expected[1.min(expected.len())..end], "{filter:?}");
    }
}
