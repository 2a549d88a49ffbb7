use civitas_store::{NewScenarioVersion, PageRequest, ScenarioRun, Store, StoreError};
use jiff::Timestamp;
use serde_json::json;

use crate::{LEDGER, admin, conformance};

conformance!(a_subjects_runs_page_newest_first_by_time_and_id);

async fn publish(store: &Store, code: &str, front_end: &str) {
    store
        .publish_scenario(
            &admin(),
            &NewScenarioVersion {
                code: code.to_owned(),
                name: code.to_uppercase(),
                format: "yaml".to_owned(),
                definition: format!("code: {code}"),
                consumer: "org/consumer".to_owned(),
                front_end: front_end.to_owned(),
            },
        )
        .await
        .unwrap();
}

fn run(id: &str, scenario: &str, version: u32, subject: &str, at: i64) -> ScenarioRun {
    ScenarioRun {
        id: id.to_owned(),
        scenario: scenario.to_owned(),
        version,
        subject: subject.to_owned(),
        consent: format!("consent-{id}"),
        outcome: "approve".to_owned(),
        result: json!({ "outcome": "approve" }),
        ledger_index: 0,
        at: Timestamp::from_microsecond(at).unwrap(),
    }
}

/// Reads every page of a subject's runs with pages of `limit`, and answers the ids on each page.
async fn pages(
    store: &Store,
    subject: &str,
    front_end: Option<&str>,
    limit: u32,
) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .scenario_runs_of(subject, front_end, &PageRequest { limit, after })
            .await
            .unwrap();
        pages.push(page.items.into_iter().map(|run| run.id).collect());
        match page.next_cursor {
            Some(cursor) => after = Some(cursor),
            None => return pages,
        }
    }
}

async fn a_subjects_runs_page_newest_first_by_time_and_id(store: Store) {
    publish(&store, "a", "org/app").await;
    publish(&store, "a", "org/other").await;
    publish(&store, "b", "org/app").await;
    // Three runs share a microsecond, and so do two others: their ids order them, not the order
    // they were indexed in.
    let runs = [
        run("r03", "b", 1, "s1", 2_000),
        run("r01", "a", 1, "s1", 1_000),
        run("r05", "a", 1, "s1", 3_000),
        run("r02", "a", 2, "s1", 2_000),
        run("r06", "b", 1, "s1", 1_000),
        run("r07", "a", 1, "s2", 2_500),
        run("r04", "a", 1, "s1", 2_000),
    ];
    store
        .add_ledger_index(LEDGER, &[], &runs, &[], 10)
        .await
        .unwrap();

    let everyone = ["r05", "r04", "r03", "r02", "r06", "r01"];
    let front_end_app = ["r05", "r04", "r03", "r06", "r01"];
    for limit in 1..=7 {
        for (front_end, expected) in [
            (None, &everyone[..]),
            (Some("org/app"), &front_end_app[..]),
            (Some("org/other"), &["r02"][..]),
        ] {
            let pages = pages(&store, "s1", front_end, limit).await;
            let expected_pages: Vec<Vec<String>> = expected
                .chunks(limit as usize)
                .map(|chunk| chunk.iter().map(|id| id.to_string()).collect())
                .collect();
            assert_eq!(pages, expected_pages, "limit {limit}, {front_end:?}");
        }
    }
    assert_eq!(
        pages(&store, "s1", Some("org/nobody"), 2).await,
        [Vec::<String>::new()]
    );
    assert_eq!(pages(&store, "s3", None, 2).await, [Vec::<String>::new()]);

    for cursor in ["r04", "2000", "two.r04", ".r04"] {
        let error = store
            .scenario_runs_of(
                "s1",
                None,
                &PageRequest {
                    limit: 2,
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
