use civitas_core::{
    Code, RegionCode,
    registry::{KeyOwner, Level, Role, UserName},
};
use civitas_store::{
    OrganizationFilter, OrganizationUpdate, PageRequest, Store, StoreError, SystemFilter,
    SystemUpdate, UserFilter, UserUpdate,
};
use jiff::Timestamp;

use crate::{admin, conformance, new_org, new_system, new_user, uscc};

conformance!(
    organizations_round_trip,
    organization_rules,
    organization_listing_pages_and_filters,
    systems_round_trip,
    users_round_trip,
    user_updates_apply_to_the_user_as_read,
    user_activation_applies_to_the_user_as_read,
    users_of_a_deactivated_organization,
);

async fn organizations_round_trip(store: Store) {
    let created = store
        .create_organization(&admin(), &new_org(1, None))
        .await
        .unwrap();
    assert_eq!(created.code, uscc(1));
    assert!(created.active);
    assert_eq!(store.organization(&uscc(1)).await.unwrap(), created);

    let updated = store
        .update_organization(
            &admin(),
            &uscc(1),
            &OrganizationUpdate {
                name: Some("南京市数据局".into()),
                name_en: Some(None),
                level: Some(Level::District),
                region: Some(RegionCode::parse("320102").unwrap()),
                parent: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.name, "南京市数据局");
    assert_eq!(updated.name_en, None);
    assert_eq!(updated.level, Level::District);
    assert_eq!(updated.region.as_str(), "320102");
    assert!(updated.updated_at >= created.updated_at);

    let deactivated = store
        .set_organization_active(&admin(), &uscc(1), false)
        .await
        .unwrap();
    assert!(!deactivated.active);
    // Never deleted: still readable.
    assert!(!store.organization(&uscc(1)).await.unwrap().active);
}

async fn organization_rules(store: Store) {
    store
        .create_organization(&admin(), &new_org(1, None))
        .await
        .unwrap();
    let duplicate = store
        .create_organization(&admin(), &new_org(1, None))
        .await
        .unwrap_err();
    assert!(
        matches!(duplicate, StoreError::Duplicate { .. }),
        "{duplicate}"
    );

    let unknown_parent = store
        .create_organization(&admin(), &new_org(2, Some(99)))
        .await
        .unwrap_err();
    assert!(
        matches!(&unknown_parent, StoreError::Invalid { field, .. } if field == "parent"),
        "{unknown_parent}"
    );

    store
        .create_organization(&admin(), &new_org(2, Some(1)))
        .await
        .unwrap();
    store
        .create_organization(&admin(), &new_org(3, Some(2)))
        .await
        .unwrap();
    // 1 → 2 → 3; making 3 the parent of 1 closes a cycle, and so does making 1 its own parent.
    for (child, parent) in [(1, 3), (1, 1)] {
        let cycle = store
            .update_organization(
                &admin(),
                &uscc(child),
                &OrganizationUpdate {
                    parent: Some(Some(uscc(parent))),
                    ..Default::default()
                },
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&cycle, StoreError::Invalid { field, message } if field == "parent" && message.contains("cycle")),
            "{cycle}"
        );
    }
    let missing = store
        .update_organization(&admin(), &uscc(77), &OrganizationUpdate::default())
        .await
        .unwrap_err();
    assert!(matches!(missing, StoreError::NotFound { .. }));
    // Nothing half-written: 1 still has no parent.
    assert_eq!(store.organization(&uscc(1)).await.unwrap().parent, None);
}

async fn organization_listing_pages_and_filters(store: Store) {
    store
        .create_organization(&admin(), &new_org(1, None))
        .await
        .unwrap();
    for n in 2..=8 {
        let mut org = new_org(n, Some(1));
        if n % 2 == 0 {
            org.level = Level::District;
            org.region = RegionCode::parse("320104").unwrap();
        }
        store.create_organization(&admin(), &org).await.unwrap();
    }
    let mut seen = Vec::new();
    let mut page = PageRequest {
        limit: 3,
        after: None,
    };
    loop {
        let result = store
            .list_organizations(&OrganizationFilter::default(), &page)
            .await
            .unwrap();
        assert!(result.items.len() <= 3);
        seen.extend(result.items.iter().map(|o| o.code.clone()));
        match result.next_cursor {
            Some(cursor) => page.after = Some(cursor),
            None => break,
        }
    }
    let mut expected: Vec<_> = (1..=8).map(uscc).collect();
    expected.sort();
    assert_eq!(seen, expected);

    let by_level = OrganizationFilter {
        level: Some(Level::District),
        ..Default::default()
    };
    let districts = store
        .list_organizations(
            &by_level,
            &PageRequest {
                limit: 100,
                after: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(districts.items.len(), 4);
    let by_region = OrganizationFilter {
        region: Some(RegionCode::parse("320104").unwrap()),
        ..Default::default()
    };
    assert_eq!(
        store
            .list_organizations(
                &by_region,
                &PageRequest {
                    limit: 100,
                    after: None
                }
            )
            .await
            .unwrap()
            .items
            .len(),
        4
    );
    let by_parent = OrganizationFilter {
        parent: Some(uscc(1)),
        ..Default::default()
    };
    assert_eq!(
        store
            .list_organizations(
                &by_parent,
                &PageRequest {
                    limit: 100,
                    after: None
                }
            )
            .await
            .unwrap()
            .items
            .len(),
        7
    );
    store
        .set_organization_active(&admin(), &uscc(2), false)
        .await
        .unwrap();
    let active = OrganizationFilter {
        active: Some(true),
        ..Default::default()
    };
    assert_eq!(
        store
            .list_organizations(
                &active,
                &PageRequest {
                    limit: 100,
                    after: None
                }
            )
            .await
            .unwrap()
            .items
            .len(),
        7
    );
}

async fn systems_round_trip(store: Store) {
    store
        .create_organization(&admin(), &new_org(1, None))
        .await
        .unwrap();
    let created = store
        .create_system(&admin(), &uscc(1), &new_system("portal", true))
        .await
        .unwrap();
    assert!(created.consumes && !created.provides);
    store
        .create_system(&admin(), &uscc(1), &new_system("registry", false))
        .await
        .unwrap();
    let duplicate = store
        .create_system(&admin(), &uscc(1), &new_system("portal", true))
        .await
        .unwrap_err();
    assert!(matches!(duplicate, StoreError::Duplicate { .. }));
    let no_org = store
        .create_system(&admin(), &uscc(9), &new_system("x", true))
        .await
        .unwrap_err();
    assert!(
        matches!(
            no_org,
            StoreError::NotFound {
                kind: "organization",
                ..
            }
        ),
        "{no_org}"
    );

    let updated = store
        .update_system(
            &admin(),
            &uscc(1),
            &Code::parse("portal").unwrap(),
            &SystemUpdate {
                provides: Some(true),
                name: Some("门户".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(updated.consumes && updated.provides);
    assert_eq!(updated.name, "门户");

    let providers = SystemFilter {
        provides: Some(true),
        ..Default::default()
    };
    let listed = store
        .list_systems(
            &uscc(1),
            &providers,
            &PageRequest {
                limit: 10,
                after: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 2);
    let consumers = SystemFilter {
        consumes: Some(true),
        ..Default::default()
    };
    let listed = store
        .list_systems(
            &uscc(1),
            &consumers,
            &PageRequest {
                limit: 10,
                after: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);

    store
        .set_system_active(&admin(), &uscc(1), &Code::parse("portal").unwrap(), false)
        .await
        .unwrap();
    assert!(
        !store
            .system(&uscc(1), &Code::parse("portal").unwrap())
            .await
            .unwrap()
            .active
    );

    store
        .set_organization_active(&admin(), &uscc(1), false)
        .await
        .unwrap();
    let inactive_org = store
        .create_system(&admin(), &uscc(1), &new_system("late", true))
        .await
        .unwrap_err();
    assert!(
        matches!(inactive_org, StoreError::Conflict(_)),
        "{inactive_org}"
    );
}

async fn users_round_trip(store: Store) {
    store
        .create_organization(&admin(), &new_org(1, None))
        .await
        .unwrap();
    let officer = store
        .create_user(&admin(), &new_user("officer", Role::DataOfficer, Some(1)))
        .await
        .unwrap();
    assert_eq!(officer.organization, Some(uscc(1)));
    store
        .create_user(&admin(), &new_user("root", Role::PlatformAdmin, None))
        .await
        .unwrap();
    assert!(store.has_users().await.unwrap());

    let unscoped = store
        .create_user(&admin(), &new_user("lost", Role::Developer, None))
        .await
        .unwrap_err();
    assert!(
        matches!(&unscoped, StoreError::Invalid { field, .. } if field == "organization"),
        "{unscoped}"
    );
    let scoped_admin = store
        .create_user(&admin(), &new_user("odd", Role::PlatformAdmin, Some(1)))
        .await
        .unwrap_err();
    assert!(matches!(scoped_admin, StoreError::Invalid { .. }));
    let duplicate = store
        .create_user(&admin(), &new_user("officer", Role::Developer, Some(1)))
        .await
        .unwrap_err();
    assert!(matches!(duplicate, StoreError::Duplicate { .. }));

    let name = UserName::parse("officer").unwrap();
    let promoted = store
        .update_user(
            &admin(),
            &officer,
            &UserUpdate {
                role: Some(Role::OrgAdmin),
                password_hash: Some("$argon2id$x".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(promoted.role, Role::OrgAdmin);
    assert_eq!(
        store.password_hash(&name).await.unwrap().as_deref(),
        Some("$argon2id$x")
    );
    let bad = store
        .update_user(
            &admin(),
            &promoted,
            &UserUpdate {
                role: Some(Role::PlatformAdmin),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(bad, StoreError::Invalid { .. }), "{bad}");

    let in_org = UserFilter {
        organization: Some(uscc(1)),
        ..Default::default()
    };
    assert_eq!(
        store
            .list_users(
                &in_org,
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
    store
        .set_user_active(&admin(), &promoted, false)
        .await
        .unwrap();
    assert_eq!(
        store.password_hash(&name).await.unwrap(),
        None,
        "inactive users cannot sign in"
    );
}

/// The API checks the caller's permission against the user as it read them; an update applies
/// only while the user is still so, and writes only the fields it names. A display name edited
/// from a stale read must neither restore a role changed since nor slip past the check.
async fn user_updates_apply_to_the_user_as_read(store: Store) {
    for n in [1, 2] {
        store
            .create_organization(&admin(), &new_org(n, None))
            .await
            .unwrap();
    }
    let name = UserName::parse("dev").unwrap();
    let read = store
        .create_user(&admin(), &new_user("dev", Role::OrgAdmin, Some(1)))
        .await
        .unwrap();

    // Demoted after the read.
    store
        .update_user(
            &admin(),
            &read,
            &UserUpdate {
                role: Some(Role::Developer),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let stale = store
        .update_user(
            &admin(),
            &read,
            &UserUpdate {
                display_name: Some("Renamed".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(stale, StoreError::Conflict(_)), "{stale}");
    let now = store.user(&name).await.unwrap();
    assert_eq!(
        (now.role, now.display_name.as_str()),
        (Role::Developer, "DEV"),
        "a refused update writes nothing"
    );

    // Read again, the same edit applies and leaves the role and organization as they are.
    let renamed = store
        .update_user(
            &admin(),
            &now,
            &UserUpdate {
                display_name: Some("Renamed".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (
            renamed.role,
            renamed.organization.clone(),
            renamed.display_name.as_str()
        ),
        (Role::Developer, Some(uscc(1)), "Renamed")
    );

    // Moved to another organization after the read: as stale as a changed role.
    store
        .update_user(
            &admin(),
            &renamed,
            &UserUpdate {
                organization: Some(Some(uscc(2))),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let stale = store
        .update_user(
            &admin(),
            &renamed,
            &UserUpdate {
                password_hash: Some("$argon2id$y".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(stale, StoreError::Conflict(_)), "{stale}");
    assert_eq!(store.password_hash(&name).await.unwrap(), None);
    assert_eq!(store.user(&name).await.unwrap().organization, Some(uscc(2)));

    // A platform admin, who has no organization, is matched as such.
    let root = store
        .create_user(&admin(), &new_user("root", Role::PlatformAdmin, None))
        .await
        .unwrap();
    let root = store
        .update_user(
            &admin(),
            &root,
            &UserUpdate {
                display_name: Some("Root".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (root.role, root.organization, root.display_name.as_str()),
        (Role::PlatformAdmin, None, "Root")
    );

    let mut ghost = read.clone();
    ghost.name = UserName::parse("ghost").unwrap();
    let missing = store
        .update_user(&admin(), &ghost, &UserUpdate::default())
        .await
        .unwrap_err();
    assert!(matches!(missing, StoreError::NotFound { .. }), "{missing}");
}

/// Deactivating and reactivating a user apply, like updates, only while the user's role and
/// organization are those the caller's permission was checked against.
async fn user_activation_applies_to_the_user_as_read(store: Store) {
    for n in [1, 2] {
        store
            .create_organization(&admin(), &new_org(n, None))
            .await
            .unwrap();
    }
    let name = UserName::parse("dev").unwrap();
    let read = store
        .create_user(&admin(), &new_user("dev", Role::OrgAdmin, Some(1)))
        .await
        .unwrap();

    // Demoted after the read.
    let demoted = store
        .update_user(
            &admin(),
            &read,
            &UserUpdate {
                role: Some(Role::Developer),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let stale = store
        .set_user_active(&admin(), &read, false)
        .await
        .unwrap_err();
    assert!(matches!(stale, StoreError::Conflict(_)), "{stale}");
    assert!(
        store.user(&name).await.unwrap().active,
        "a refused deactivation changes nothing"
    );

    // Moved to another organization after the read.
    let moved = store
        .update_user(
            &admin(),
            &demoted,
            &UserUpdate {
                organization: Some(Some(uscc(2))),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let stale = store
        .set_user_active(&admin(), &demoted, false)
        .await
        .unwrap_err();
    assert!(matches!(stale, StoreError::Conflict(_)), "{stale}");
    assert!(store.user(&name).await.unwrap().active);

    // Read again, it applies; reactivation is checked the same way.
    let deactivated = store
        .set_user_active(&admin(), &moved, false)
        .await
        .unwrap();
    assert!(!deactivated.active);
    let stale = store
        .set_user_active(&admin(), &read, true)
        .await
        .unwrap_err();
    assert!(matches!(stale, StoreError::Conflict(_)), "{stale}");
    assert!(!store.user(&name).await.unwrap().active);
    let reactivated = store
        .set_user_active(&admin(), &deactivated, true)
        .await
        .unwrap();
    assert_eq!(
        (
            reactivated.active,
            reactivated.role,
            reactivated.organization
        ),
        (true, Role::Developer, Some(uscc(2)))
    );

    let mut ghost = read.clone();
    ghost.name = UserName::parse("ghost").unwrap();
    let missing = store
        .set_user_active(&admin(), &ghost, false)
        .await
        .unwrap_err();
    assert!(matches!(missing, StoreError::NotFound { .. }), "{missing}");
}

/// A deactivated organization's users neither sign in nor use their keys, and no user is made in
/// it or moved into it; reactivated, its users sign in and use their keys again.
async fn users_of_a_deactivated_organization(store: Store) {
    for n in [1, 2] {
        store
            .create_organization(&admin(), &new_org(n, None))
            .await
            .unwrap();
    }
    let name = UserName::parse("dev").unwrap();
    let mut dev = new_user("dev", Role::Developer, Some(1));
    dev.password_hash = Some("$argon2id$dev".into());
    store.create_user(&admin(), &dev).await.unwrap();
    let mut root = new_user("root", Role::PlatformAdmin, None);
    root.password_hash = Some("$argon2id$root".into());
    store.create_user(&admin(), &root).await.unwrap();
    let other = store
        .create_user(&admin(), &new_user("other", Role::Developer, Some(2)))
        .await
        .unwrap();
    store
        .create_api_key(
            &admin(),
            &crate::keys::new_key("d1", KeyOwner::User { name: name.clone() }),
            None,
        )
        .await
        .unwrap();
    let now = Timestamp::now();
    assert!(
        store
            .authenticate("hash-of-d1", now)
            .await
            .unwrap()
            .is_some()
    );

    store
        .set_organization_active(&admin(), &uscc(1), false)
        .await
        .unwrap();
    assert_eq!(
        store.password_hash(&name).await.unwrap(),
        None,
        "a deactivated organization's users cannot sign in"
    );
    assert!(
        store
            .authenticate("hash-of-d1", now)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store
            .password_hash(&UserName::parse("root").unwrap())
            .await
            .unwrap()
            .as_deref(),
        Some("$argon2id$root"),
        "a platform admin belongs to no organization"
    );

    let created = store
        .create_user(&admin(), &new_user("late", Role::Developer, Some(1)))
        .await
        .unwrap_err();
    assert!(
        matches!(&created, StoreError::Invalid { field, .. } if field == "organization"),
        "{created}"
    );
    let moved = store
        .update_user(
            &admin(),
            &other,
            &UserUpdate {
                organization: Some(Some(uscc(1))),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&moved, StoreError::Invalid { field, .. } if field == "organization"),
        "{moved}"
    );
    assert_eq!(
        store.user(&other.name).await.unwrap().organization,
        Some(uscc(2))
    );

    store
        .set_organization_active(&admin(), &uscc(1), true)
        .await
        .unwrap();
    assert_eq!(
        store.password_hash(&name).await.unwrap().as_deref(),
        Some("$argon2id$dev")
    );
    assert!(
        store
            .authenticate("hash-of-d1", now)
            .await
            .unwrap()
            .is_some()
    );
}

/// On PostgreSQL a user or system is added to an organization only while it stays active: a
/// deactivation that has not committed yet when the addition checks the organization is waited
/// for, and then refuses it. (A foreign key's lock alone lets the deactivation commit between the
/// check and the insert, and leaves a user or system in a deactivated organization.) SQLite writes
/// one at a time, so only PostgreSQL can interleave them.
#[tokio::test]
async fn an_addition_to_an_organization_waits_for_its_deactivation() {
    let Some(url) = civitas_store::testing::fresh_postgres_database().await else {
        return;
    };
    let store = Store::connect(&url).await.unwrap();
    store
        .create_organization(&admin(), &new_org(1, None))
        .await
        .unwrap();
    let civitas_store::StoreUrl::Postgres(raw_url) = &url else {
        unreachable!("a PostgreSQL url");
    };
    let pool = sqlx::PgPool::connect(raw_url).await.unwrap();
    for adding_a_user in [true, false] {
        // Another writer deactivates the organization and has not committed yet.
        let mut deactivating = pool.begin().await.unwrap();
        sqlx::query("UPDATE organizations SET active = false WHERE code = $1")
            .bind(uscc(1).as_str())
            .execute(&mut *deactivating)
            .await
            .unwrap();
        let adding = {
            let store = store.clone();
            tokio::spawn(async move {
                if adding_a_user {
                    store
                        .create_user(&admin(), &new_user("late", Role::Developer, Some(1)))
                        .await
                        .map(|_| ())
                } else {
                    store
                        .create_system(&admin(), &uscc(1), &new_system("late", true))
                        .await
                        .map(|_| ())
                }
            })
        };
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(
            !adding.is_finished(),
            "the addition waits for the deactivation"
        );
        deactivating.commit().await.unwrap();
        let error = adding.await.unwrap().unwrap_err();
        assert!(error.to_string().contains("deactivated"), "{error}");
        sqlx::query("UPDATE organizations SET active = true WHERE code = $1")
            .bind(uscc(1).as_str())
            .execute(&pool)
            .await
            .unwrap();
    }
    assert!(store.user(&UserName::parse("late").unwrap()).await.is_err());
}
