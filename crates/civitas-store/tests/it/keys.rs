use civitas_core::{
    Code,
    registry::{KeyOwner, Principal, Role, UserName},
};
use civitas_store::{NewApiKey, PageRequest, Store, StoreError, StoreUrl, UserUpdate};
use jiff::{Timestamp, ToSpan};

use crate::{admin, conformance, new_org, new_system, new_user, uscc};

conformance!(
    keys_authenticate_until_revoked,
    keys_follow_their_owner,
    user_keys_are_issued_and_revoked_for_the_user_as_read,
);

pub(crate) fn new_key(id: &str, owner: KeyOwner) -> NewApiKey {
    NewApiKey {
        id: id.into(),
        hash: format!("hash-of-{id}"),
        prefix: format!("cvk_{id}"),
        owner,
        label: format!("key {id}"),
        expires_at: None,
    }
}

async fn keys_authenticate_until_revoked(store: Store) {
    store
        .create_organization(&admin(), &new_org(1, None))
        .await
        .unwrap();
    store
        .create_user(&admin(), &new_user("dev", Role::Developer, Some(1)))
        .await
        .unwrap();
    let owner = KeyOwner::User {
        name: UserName::parse("dev").unwrap(),
    };
    let key = store
        .create_api_key(&admin(), &new_key("k1", owner.clone()), None)
        .await
        .unwrap();
    assert_eq!(key.created_by, "civitas:test");
    let now = Timestamp::now();
    let caller = store
        .authenticate("hash-of-k1", now)
        .await
        .unwrap()
        .expect("a valid key");
    assert_eq!(
        caller.principal,
        Principal::User {
            name: UserName::parse("dev").unwrap(),
            role: Role::Developer,
            organization: Some(uscc(1))
        }
    );
    assert!(
        store
            .authenticate("hash-of-nothing", now)
            .await
            .unwrap()
            .is_none()
    );

    store.touch_api_key("k1", now).await.unwrap();
    assert!(store.api_key("k1").await.unwrap().last_used_at.is_some());

    let listed = store
        .list_api_keys(
            Some(&owner),
            None,
            &PageRequest {
                limit: 10,
                after: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    let by_org = store
        .list_api_keys(
            None,
            Some(&uscc(1)),
            &PageRequest {
                limit: 10,
                after: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(by_org.items.len(), 1);

    let revoked = store.revoke_api_key(&admin(), "k1", None).await.unwrap();
    assert!(revoked.revoked_at.is_some());
    assert!(
        store
            .authenticate("hash-of-k1", now)
            .await
            .unwrap()
            .is_none()
    );
    let again = store
        .revoke_api_key(&admin(), "k1", None)
        .await
        .unwrap_err();
    assert!(matches!(again, StoreError::Conflict(_)));

    let mut expiring = new_key("k2", owner);
    expiring.expires_at = Some(now + 1.hour());
    store
        .create_api_key(&admin(), &expiring, None)
        .await
        .unwrap();
    assert!(
        store
            .authenticate("hash-of-k2", now)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .authenticate("hash-of-k2", now + 2.hours())
            .await
            .unwrap()
            .is_none()
    );
}

/// Another user's key is issued or revoked only while that user's role and organization are
/// those the caller's permission was checked against: an organization's admin must not issue a
/// key for a user moved meanwhile to another organization, or made an auditor.
async fn user_keys_are_issued_and_revoked_for_the_user_as_read(store: Store) {
    for n in [1, 2] {
        store
            .create_organization(&admin(), &new_org(n, None))
            .await
            .unwrap();
    }
    let name = UserName::parse("dev").unwrap();
    let owner = KeyOwner::User { name: name.clone() };
    let read = store
        .create_user(&admin(), &new_user("dev", Role::Developer, Some(1)))
        .await
        .unwrap();
    store
        .create_api_key(&admin(), &new_key("k1", owner.clone()), Some(&read))
        .await
        .unwrap();
    let fingerprint = store.credentials_fingerprint().await.unwrap();

    // Moved to another organization after the read.
    let moved = store
        .update_user(
            &admin(),
            &read,
            &UserUpdate {
                organization: Some(Some(uscc(2))),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let stale = store
        .create_api_key(&admin(), &new_key("k2", owner.clone()), Some(&read))
        .await
        .unwrap_err();
    assert!(matches!(stale, StoreError::Conflict(_)), "{stale}");
    let missing = store.api_key("k2").await.unwrap_err();
    assert!(
        matches!(missing, StoreError::NotFound { .. }),
        "a refused key is not issued: {missing}"
    );
    let stale = store
        .revoke_api_key(&admin(), "k1", Some(&read))
        .await
        .unwrap_err();
    assert!(matches!(stale, StoreError::Conflict(_)), "{stale}");
    assert_eq!(store.api_key("k1").await.unwrap().revoked_at, None);
    assert_eq!(
        store.credentials_fingerprint().await.unwrap(),
        fingerprint,
        "a refused change changes no credentials"
    );

    // Given another role after the read.
    let promoted = store
        .update_user(
            &admin(),
            &moved,
            &UserUpdate {
                role: Some(Role::OrgAdmin),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let stale = store
        .create_api_key(&admin(), &new_key("k2", owner.clone()), Some(&moved))
        .await
        .unwrap_err();
    assert!(matches!(stale, StoreError::Conflict(_)), "{stale}");
    assert!(store.api_key("k2").await.is_err());
    let stale = store
        .revoke_api_key(&admin(), "k1", Some(&moved))
        .await
        .unwrap_err();
    assert!(matches!(stale, StoreError::Conflict(_)), "{stale}");
    assert_eq!(store.api_key("k1").await.unwrap().revoked_at, None);

    // Read again, both apply.
    store
        .create_api_key(&admin(), &new_key("k2", owner.clone()), Some(&promoted))
        .await
        .unwrap();
    let revoked = store
        .revoke_api_key(&admin(), "k1", Some(&promoted))
        .await
        .unwrap();
    assert!(revoked.revoked_at.is_some());

    // The user checked must be the key's owner.
    let other = store
        .create_user(&admin(), &new_user("other", Role::Developer, Some(1)))
        .await
        .unwrap();
    let wrong = store
        .create_api_key(&admin(), &new_key("k3", owner.clone()), Some(&other))
        .await
        .unwrap_err();
    assert!(matches!(wrong, StoreError::Invalid { .. }), "{wrong}");
    let wrong = store
        .revoke_api_key(&admin(), "k2", Some(&other))
        .await
        .unwrap_err();
    assert!(matches!(wrong, StoreError::Invalid { .. }), "{wrong}");
    assert_eq!(store.api_key("k2").await.unwrap().revoked_at, None);
}

async fn keys_follow_their_owner(store: Store) {
    store
        .create_organization(&admin(), &new_org(1, None))
        .await
        .unwrap();
    let system = Code::parse("portal").unwrap();
    store
        .create_system(&admin(), &uscc(1), &new_system(system.as_str(), true))
        .await
        .unwrap();
    let owner = KeyOwner::System {
        organization: uscc(1),
        system: system.clone(),
    };
    store
        .create_api_key(&admin(), &new_key("s1", owner), None)
        .await
        .unwrap();
    let now = Timestamp::now();
    let caller = store
        .authenticate("hash-of-s1", now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        caller.principal,
        Principal::System {
            organization: uscc(1),
            system: system.clone()
        }
    );

    // Deactivating the organization stops its systems' keys at once, and reactivating restores them.
    store
        .set_organization_active(&admin(), &uscc(1), false)
        .await
        .unwrap();
    assert!(
        store
            .authenticate("hash-of-s1", now)
            .await
            .unwrap()
            .is_none()
    );
    store
        .set_organization_active(&admin(), &uscc(1), true)
        .await
        .unwrap();
    assert!(
        store
            .authenticate("hash-of-s1", now)
            .await
            .unwrap()
            .is_some()
    );
    store
        .set_system_active(&admin(), &uscc(1), &system, false)
        .await
        .unwrap();
    assert!(
        store
            .authenticate("hash-of-s1", now)
            .await
            .unwrap()
            .is_none()
    );

    let unknown_owner = KeyOwner::User {
        name: UserName::parse("ghost").unwrap(),
    };
    let error = store
        .create_api_key(&admin(), &new_key("g1", unknown_owner), None)
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Invalid { .. }), "{error}");
}

/// The gateway reloads its callers when the credentials fingerprint moves. A change committed
/// after another but stamped with an earlier time (by a replica whose clock is behind, or by a
/// concurrent transaction on PostgreSQL) must move it too, or a revoked key and a deactivated
/// system keep working at the gateway until some unrelated change.
async fn credentials_fingerprint_moves_whatever_the_clock(store: Store, url: StoreUrl) {
    store
        .create_organization(&admin(), &new_org(1, None))
        .await
        .unwrap();
    for code in ["portal", "other"] {
        store
            .create_system(&admin(), &uscc(1), &new_system(code, true))
            .await
            .unwrap();
    }
    let owner = KeyOwner::System {
        organization: uscc(1),
        system: Code::parse("portal").unwrap(),
    };
    for id in ["s1", "s2"] {
        store
            .create_api_key(&admin(), &new_key(id, owner.clone()), None)
            .await
            .unwrap();
    }
    // What a replica a second behind writes: the change committed last carries the earliest time.
    let backdate = |sql: &'static str| {
        let url = url.clone();
        async move {
            match url {
                StoreUrl::Sqlite(path) => {
                    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
                        .await
                        .unwrap();
                    sqlx::query(sql).execute(&pool).await.unwrap();
                    pool.close().await;
                }
                StoreUrl::Postgres(url) => {
                    let pool = sqlx::PgPool::connect(&url).await.unwrap();
                    sqlx::query(sql).execute(&pool).await.unwrap();
                    pool.close().await;
                }
            }
        }
    };

    store.revoke_api_key(&admin(), "s1", None).await.unwrap();
    let before = store.credentials_fingerprint().await.unwrap();
    store.revoke_api_key(&admin(), "s2", None).await.unwrap();
    backdate(
        "UPDATE api_keys SET revoked_at = (SELECT revoked_at - 1000000 FROM api_keys WHERE id = 's1') WHERE id = 's2'",
    )
    .await;
    let after = store.credentials_fingerprint().await.unwrap();
    assert_ne!(before, after, "the second revocation is seen");

    store
        .update_system(
            &admin(),
            &uscc(1),
            &Code::parse("other").unwrap(),
            &civitas_store::SystemUpdate {
                name: Some("另一个".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let before = store.credentials_fingerprint().await.unwrap();
    store
        .set_system_active(&admin(), &uscc(1), &Code::parse("portal").unwrap(), false)
        .await
        .unwrap();
    backdate(
        "UPDATE systems SET updated_at = (SELECT updated_at - 1000000 FROM systems WHERE code = 'other') WHERE code = 'portal'",
    )
    .await;
    let after = store.credentials_fingerprint().await.unwrap();
    assert_ne!(before, after, "the deactivation is seen");
}

#[tokio::test]
async fn credentials_fingerprint_moves_whatever_the_clock_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = StoreUrl::Sqlite(dir.path().join("civitas.db"));
    let store = Store::connect(&url).await.unwrap();
    credentials_fingerprint_moves_whatever_the_clock(store, url).await;
}

#[tokio::test]
async fn credentials_fingerprint_moves_whatever_the_clock_postgres() {
    let Some(url) = civitas_store::testing::fresh_postgres_database().await else {
        return;
    };
    let store = Store::connect(&url).await.unwrap();
    credentials_fingerprint_moves_whatever_the_clock(store, url).await;
}
