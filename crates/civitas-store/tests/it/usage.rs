//! Daily grant usage: what quotas reload after a restart, and one grant's days.

use civitas_store::{GrantUsage, Store};

use crate::conformance;

conformance!(
    every_grant_used_on_a_day_is_read_back,
    a_grant_s_days_within_a_span
);

fn used(grant: String, day: &str, calls: u64) -> GrantUsage {
    GrantUsage {
        grant,
        day: day.to_owned(),
        calls,
        denied: 1,
        bytes: calls * 100,
    }
}

/// A restart reloads today's counts of every grant, however many there are: a grant left out
/// would start the day afresh and could exceed its quota.
async fn every_grant_used_on_a_day_is_read_back(store: Store) {
    let today: Vec<GrantUsage> = (0..1500)
        .map(|n| used(format!("grant-{n:05}"), "2026-12-07", n + 1))
        .collect();
    store.add_grant_usage(&today).await.unwrap();
    store
        .add_grant_usage(&[used("grant-00000".into(), "2026-12-06", 9)])
        .await
        .unwrap();
    let mut read = store.usage_on("2026-12-07").await.unwrap();
    read.sort_by(|a, b| a.grant.cmp(&b.grant));
    assert_eq!(read, today);
    // Counts add up.
    store
        .add_grant_usage(&[used("grant-00007".into(), "2026-12-07", 2)])
        .await
        .unwrap();
    let read = store.usage_on("2026-12-07").await.unwrap();
    let seventh = read.iter().find(|u| u.grant == "grant-00007").unwrap();
    assert_eq!(
        (seventh.calls, seventh.denied, seventh.bytes),
        (10, 2, 1000)
    );
}

async fn a_grant_s_days_within_a_span(store: Store) {
    let days = ["2026-11-29", "2026-11-30", "2026-12-01", "2026-12-02"];
    let usage: Vec<GrantUsage> = days
        .iter()
        .enumerate()
        .map(|(n, day)| used("g".into(), day, n as u64 + 1))
        .collect();
    store.add_grant_usage(&usage).await.unwrap();
    store
        .add_grant_usage(&[used("other".into(), "2026-11-30", 5)])
        .await
        .unwrap();
    let days_of =
        |usage: Vec<GrantUsage>| -> Vec<String> { usage.into_iter().map(|u| u.day).collect() };
    assert_eq!(
        days_of(store.grant_usage("g", None, None).await.unwrap()),
        ["2026-12-02", "2026-12-01", "2026-11-30", "2026-11-29"],
        "newest first"
    );
    assert_eq!(
        days_of(
            store
                .grant_usage("g", Some("2026-11-30"), Some("2026-12-01"))
                .await
                .unwrap()
        ),
        ["2026-12-01", "2026-11-30"]
    );
    assert_eq!(
        days_of(
            store
                .grant_usage("g", Some("2026-12-02"), None)
                .await
                .unwrap()
        ),
        ["2026-12-02"]
    );
    assert!(
        store
            .grant_usage("absent", None, None)
            .await
            .unwrap()
            .is_empty()
    );
}
