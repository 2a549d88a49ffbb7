//! Application scenarios through real HTTP: the three shipped scenarios over the demo city's
//! provider services, through the gateway, with citizens who must be approved, denied and sent to
//! review; broken definitions and bad inputs refused.

use std::{sync::Arc, time::Duration};

use civitas_demo::{
    Population, Scenario, reference,
    services::{ProviderServices, start_provider_services},
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{ADMIN_KEY, TestServer, on_both_stores};

on_both_stores!(
    shipped_scenarios_decide_like_the_registers_say,
    broken_definitions_and_bad_inputs_are_refused,
    a_citizens_runs_are_for_their_front_end_and_auditors,
    a_citizens_runs_page_newest_first_for_each_reader,
    a_scenario_code_stays_with_its_organization,
    expressions_consent_and_records_are_bounded,
    the_gateways_refusals_are_not_a_citizen_not_found
);

/// Publishes `text` as `code` with `key`, as YAML.
async fn publish_as(server: &TestServer, key: &str, code: &str, text: &str) -> (StatusCode, Value) {
    let response = server
        .client
        .put(format!("{}/api/v1/scenarios/{code}", server.base))
        .bearer_auth(key)
        .header("content-type", "application/yaml")
        .body(text.to_owned())
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json::<Value>().await.unwrap())
}

pub async fn reference_city(
    server: &TestServer,
) -> (Arc<Population>, ProviderServices, reference::ReferenceCity) {
    let today = jiff::Zoned::now().date();
    let population = Arc::new(Population::generate(20260101, 3000, today).unwrap());
    let services = start_provider_services(population.clone(), "127.0.0.1".parse().unwrap())
        .await
        .unwrap();
    let city = reference::install(server.running.as_ref().unwrap().store(), &services)
        .await
        .unwrap();
    // The gateway follows the store within a second.
    tokio::time::sleep(Duration::from_millis(600)).await;
    (population, services, city)
}

fn inputs(scenario: Scenario, example: &civitas_demo::citizens::Example) -> Value {
    match scenario {
        Scenario::HousingFundRentalWithdrawal => {
            json!({ "id_number": example.id_number, "name": example.name, "months": 3 })
        }
        Scenario::ElderlyCareAllowance => {
            json!({ "id_number": example.id_number, "name": example.name })
        }
        Scenario::NewbornRegistration => {
            json!({ "applicant_id_number": example.id_number, "certificate_no": example.certificate_no })
        }
    }
}

async fn shipped_scenarios_decide_like_the_registers_say(server: TestServer) {
    let (population, _services, city) = reference_city(&server).await;
    for scenario in Scenario::ALL {
        let examples = population.examples(scenario, 2);
        for (expected, list) in [
            ("approve", &examples.approve),
            ("deny", &examples.deny),
            ("needs_review", &examples.needs_review),
        ] {
            assert!(!list.is_empty(), "{scenario:?} has no {expected} example");
            for example in list {
                let (status, run) = server
                    .post(
                        &format!("/api/v1/scenarios/{}/runs", scenario.code()),
                        &city.city_app_key,
                        json!({ "inputs": inputs(scenario, example), "consent": "consent-2026-0001" }),
                    )
                    .await;
                assert_eq!(status, StatusCode::OK, "{run}");
                assert_eq!(
                    run["result"]["outcome"], expected,
                    "{scenario:?} {example:?}: {run}"
                );
                if expected == "approve" {
                    assert!(
                        run["result"]["explanation"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .all(|rule| rule["held"] == true)
                    );
                }
                let receipts = run["receipts"].as_array().unwrap();
                assert!(!receipts.is_empty(), "every step's exchange has a receipt");
                assert!(run["ledger_index"].is_u64());
            }
        }
    }

    // The housing-fund approval carries its amount; the run and its exchanges are in the ledger.
    let approved = &population
        .examples(Scenario::HousingFundRentalWithdrawal, 1)
        .approve[0];
    let (_, run) = server
        .post(
            "/api/v1/scenarios/housing-fund-rental-withdrawal/runs",
            &city.city_app_key,
            json!({ "inputs": inputs(Scenario::HousingFundRentalWithdrawal, approved), "consent": "consent-2026-0002" }),
        )
        .await;
    let amount = run["result"]["values"]["amount"]
        .as_f64()
        .expect("an approval computes the amount");
    assert!(amount > 0.0 && amount <= 1800.0 * 3.0, "{run}");
    let (status, record) = server
        .get(
            &format!("/api/v1/ledger/records/{}", run["ledger_index"]),
            ADMIN_KEY,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(record["record"]["type"], "scenario_run");
    assert_eq!(record["record"]["outcome"], "approve");
    assert!(
        !record.to_string().contains(&approved.id_number),
        "the run record holds a keyed hash, not the ID number"
    );
    let (_, exchange) = server
        .get(
            &format!("/api/v1/ledger/records/{}", run["receipts"][0]),
            ADMIN_KEY,
        )
        .await;
    assert_eq!(
        exchange["record"]["consumer"],
        "11320100013201020G/rental-withdrawal"
    );

    // The citizen's own view, by the keyed hash of the ID number.
    let (status, runs) = server
        .get(
            &format!("/api/v1/scenario-runs?id_number={}", approved.id_number),
            &city.city_app_key,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{runs}");
    assert_eq!(runs["next_cursor"], Value::Null, "one page: {runs}");
    let runs = &runs["items"];
    assert!(runs.as_array().unwrap().len() >= 2);
    assert!(runs[0]["subject"].as_str().unwrap().len() == 64);
    // Listed as soon as answered (the list is indexed from the run's ledger record), newest
    // first, with the whole result and the consent reference.
    assert_eq!(runs[0]["id"], run["run_id"], "{runs}");
    assert_eq!(runs[0]["consent"], "consent-2026-0002");
    assert_eq!(runs[0]["ledger_index"], run["ledger_index"]);
    assert_eq!(runs[0]["result"], run["result"]);
    let (status, by_id) = server
        .get(
            &format!("/api/v1/scenario-runs/{}", run["run_id"].as_str().unwrap()),
            &city.city_app_key,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{by_id}");
    assert_eq!(by_id, runs[0]);

    // A step that cannot be answered never yields approve.
    let (status, _) = server
        .request(
            Method::PUT,
            "/api/v1/organizations/11320100013201020G/systems/fund-core/services/accounts",
            Some(ADMIN_KEY),
            Some(json!({
                "code": "accounts", "resource": "320100-D01-900001", "upstream": format!("http://{}", crate::gateway::closed_port()),
                "paths": ["/accounts/{id}"], "timeout_ms": 500,
                "fields": [{ "item": "status", "path": "$.status" }]
            })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let (_, run) = server
        .post(
            "/api/v1/scenarios/housing-fund-rental-withdrawal/runs",
            &city.city_app_key,
            json!({ "inputs": inputs(Scenario::HousingFundRentalWithdrawal, approved), "consent": "consent-2026-0003" }),
        )
        .await;
    assert_eq!(run["result"]["outcome"], "needs_review", "{run}");
    assert!(
        run["result"]["reason"].as_str().unwrap().contains("fund"),
        "{run}"
    );
}

/// A data officer of the housing-fund centre, which owns the withdrawal scenario: the key.
async fn fund_officer(server: &TestServer) -> String {
    server
        .user_with_key(
            "fund-officer",
            "data_officer",
            Some(&"11320100013201020G".parse().unwrap()),
        )
        .await
}

async fn broken_definitions_and_bad_inputs_are_refused(server: TestServer) {
    let (population, _services, city) = reference_city(&server).await;
    let officer = fund_officer(&server).await;
    let original = reference::SCENARIOS[0].1;
    let publish = |text: String| {
        let server = &server;
        let officer = officer.clone();
        async move {
            let response = server
                .client
                .put(format!(
                    "{}/api/v1/scenarios/housing-fund-rental-withdrawal",
                    server.base
                ))
                .bearer_auth(officer)
                .header("content-type", "application/yaml")
                .body(text)
                .send()
                .await
                .unwrap();
            let status = response.status();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    // Republishing the shipped definition works and makes version 2.
    let (status, published) = publish(original.to_owned()).await;
    assert_eq!(status, StatusCode::CREATED, "{published}");
    assert_eq!(published["version"], 2);

    let (status, problem) = publish(original.replacen("steps:", "steps:\n  - [", 1)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("line"),
        "a syntax error names its line: {problem}"
    );

    let (status, problem) =
        publish(original.replace("steps.fund.balance", "steps.fund.salary")).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("salary"),
        "{problem}"
    );

    let without_grant = original.replace(
        "{organization: 11320100013201039D, system: real-estate, service: properties}",
        "{organization: 113201000132010553, system: birth-registry, service: births}",
    );
    let (status, problem) = publish(without_grant).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("grant"),
        "{problem}"
    );

    // Only the consumer organization's people publish.
    let stranger = server
        .user_with_key(
            "stranger",
            "data_officer",
            Some(&"113201000132010553".parse().unwrap()),
        )
        .await;
    let response = server
        .client
        .put(format!(
            "{}/api/v1/scenarios/housing-fund-rental-withdrawal",
            server.base
        ))
        .bearer_auth(stranger)
        .header("content-type", "application/yaml")
        .body(original)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);

    // Bad inputs and missing consent.
    let example = &population
        .examples(Scenario::HousingFundRentalWithdrawal, 1)
        .approve[0];
    let mut bad_check = example.id_number.clone();
    let last = bad_check.pop().unwrap();
    bad_check.push(if last == '0' { '1' } else { '0' });
    let path = "/api/v1/scenarios/housing-fund-rental-withdrawal/runs";
    let (status, problem) = server
        .post(path, &city.city_app_key, json!({ "inputs": { "id_number": bad_check, "name": example.name, "months": 3 }, "consent": "c" }))
        .await;
    assert_eq!(
        (status, problem["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("inputs.id_number")),
        "{problem}"
    );
    let (status, problem) = server
        .post(path, &city.city_app_key, json!({ "inputs": { "id_number": example.id_number, "name": example.name, "months": 3 }, "consent": " " }))
        .await;
    assert_eq!(
        (status, problem["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("consent")),
        "{problem}"
    );
    let (status, problem) = server
        .post(path, &city.city_app_key, json!({ "inputs": { "id_number": example.id_number, "name": example.name, "months": 30 }, "consent": "c" }))
        .await;
    assert_eq!(
        (status, problem["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("inputs.months")),
        "{problem}"
    );
    // Only the front end starts runs.
    let (status, _) = server
        .post(path, ADMIN_KEY, json!({ "inputs": { "id_number": example.id_number, "name": example.name, "months": 3 }, "consent": "c" }))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

/// A run carries the citizen's computed personal results, and every system may start runs (of
/// the scenarios it is the front end of): another system must not read them.
async fn a_citizens_runs_are_for_their_front_end_and_auditors(server: TestServer) {
    let (population, _services, city) = reference_city(&server).await;
    let example = &population
        .examples(Scenario::HousingFundRentalWithdrawal, 1)
        .approve[0];
    let (status, run) = server
        .post(
            "/api/v1/scenarios/housing-fund-rental-withdrawal/runs",
            &city.city_app_key,
            json!({ "inputs": inputs(Scenario::HousingFundRentalWithdrawal, example), "consent": "consent-2026-0100" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{run}");
    let run_id = run["run_id"].as_str().unwrap();
    let runs_path = format!("/api/v1/scenario-runs?id_number={}", example.id_number);
    let run_path = format!("/api/v1/scenario-runs/{run_id}");

    // The scenario's front end sees the run.
    let (status, runs) = server.get(&runs_path, &city.city_app_key).await;
    assert_eq!(status, StatusCode::OK, "{runs}");
    assert_eq!(runs["items"][0]["id"], run["run_id"], "{runs}");
    let (status, by_id) = server.get(&run_path, &city.city_app_key).await;
    assert_eq!(status, StatusCode::OK, "{by_id}");

    // Another system (here the scenario's consumer, which makes the calls but is not the front
    // end) sees none of the citizen's runs, and is refused the run itself.
    let (status, other) = server
        .post(
            "/api/v1/keys",
            ADMIN_KEY,
            json!({ "owner": { "kind": "system", "organization": "11320100013201020G", "system": "rental-withdrawal" } }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{other}");
    let other_key = other["key"].as_str().unwrap();
    let (status, runs) = server.get(&runs_path, other_key).await;
    assert_eq!(
        (status, &runs),
        (StatusCode::OK, &json!({ "items": [], "next_cursor": null }))
    );
    let (status, problem) = server.get(&run_path, other_key).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden")),
        "{problem}"
    );

    // An auditor sees every run; other people none.
    let organization = "11320100013201020G".parse().unwrap();
    let auditor = server
        .user_with_key("aud", "auditor", Some(&organization))
        .await;
    let (status, runs) = server.get(&runs_path, &auditor).await;
    assert_eq!(status, StatusCode::OK, "{runs}");
    assert_eq!(runs["items"][0]["id"], run["run_id"], "{runs}");
    let (status, by_id) = server.get(&run_path, &auditor).await;
    assert_eq!(status, StatusCode::OK, "{by_id}");
    let developer = server
        .user_with_key("dev", "developer", Some(&organization))
        .await;
    let (status, problem) = server.get(&runs_path, &developer).await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden")),
        "{problem}"
    );
}

/// Paging a citizen's runs meets every run the reader may see exactly once, newest first, and a
/// cursor carries no permission: whoever's page it came from, the next page is filtered for the
/// caller like the first.
async fn a_citizens_runs_page_newest_first_for_each_reader(server: TestServer) {
    let (population, _services, city) = reference_city(&server).await;
    let example = &population
        .examples(Scenario::HousingFundRentalWithdrawal, 1)
        .approve[0];
    let fund = "11320100013201020G";
    let run_as = |key: String, scenario: Scenario, consent: &'static str| {
        let server = &server;
        async move {
            let (status, run) = server
                .post(
                    &format!("/api/v1/scenarios/{}/runs", scenario.code()),
                    &key,
                    json!({ "inputs": inputs(scenario, example), "consent": consent }),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{run}");
            run["run_id"].as_str().unwrap().to_owned()
        }
    };

    // Two runs by the city app; then the housing fund makes its own system the scenario's front
    // end, which runs it twice; then two runs of another scenario by the city app.
    let mut city_app_runs = Vec::new();
    for consent in ["consent-page-1", "consent-page-2"] {
        city_app_runs.push(
            run_as(
                city.city_app_key.clone(),
                Scenario::HousingFundRentalWithdrawal,
                consent,
            )
            .await,
        );
    }
    let officer = server
        .user_with_key("fund-officer", "data_officer", Some(&fund.parse().unwrap()))
        .await;
    let city_app_front_end = "front_end:\n  organization: 11320100013201063X\n  system: city-app";
    let original = reference::SCENARIOS[0].1;
    assert!(original.contains(city_app_front_end));
    let response = server
        .client
        .put(format!(
            "{}/api/v1/scenarios/housing-fund-rental-withdrawal",
            server.base
        ))
        .bearer_auth(&officer)
        .header("content-type", "application/yaml")
        .body(original.replace(
            city_app_front_end,
            &format!("front_end:\n  organization: {fund}\n  system: rental-withdrawal"),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let (status, other) = server
        .post(
            "/api/v1/keys",
            ADMIN_KEY,
            json!({ "owner": { "kind": "system", "organization": fund, "system": "rental-withdrawal" } }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{other}");
    let other_key = other["key"].as_str().unwrap().to_owned();
    let mut other_runs = Vec::new();
    for consent in ["consent-page-3", "consent-page-4"] {
        other_runs.push(
            run_as(
                other_key.clone(),
                Scenario::HousingFundRentalWithdrawal,
                consent,
            )
            .await,
        );
    }
    for consent in ["consent-page-5", "consent-page-6"] {
        city_app_runs.push(
            run_as(
                city.city_app_key.clone(),
                Scenario::ElderlyCareAllowance,
                consent,
            )
            .await,
        );
    }
    let mut every_run: Vec<String> = city_app_runs[..2]
        .iter()
        .chain(&other_runs)
        .chain(&city_app_runs[2..])
        .cloned()
        .collect();
    for runs in [&mut city_app_runs, &mut other_runs, &mut every_run] {
        runs.reverse();
    }

    let auditor = server
        .user_with_key("aud", "auditor", Some(&fund.parse().unwrap()))
        .await;
    let runs_path = format!("/api/v1/scenario-runs?id_number={}", example.id_number);
    for limit in 1..=4 {
        for (reader, key, expected) in [
            ("city app", city.city_app_key.as_str(), &city_app_runs),
            ("other system", other_key.as_str(), &other_runs),
            ("auditor", auditor.as_str(), &every_run),
        ] {
            let pages: Vec<Vec<String>> = server
                .pages(&runs_path, key, limit)
                .await
                .iter()
                .map(|page| {
                    page.iter()
                        .map(|run| run["id"].as_str().unwrap().to_owned())
                        .collect()
                })
                .collect();
            let expected: Vec<Vec<String>> = expected
                .chunks(limit as usize)
                .map(<[String]>::to_vec)
                .collect();
            assert_eq!(pages, expected, "{reader}, pages of {limit}");
        }
    }

    // The auditor's cursor after the newest run, given by the other system, shows it only its
    // own runs; the other system's cursor after its newer run shows the city app only its older
    // ones.
    let (_, auditors_first) = server.get(&format!("{runs_path}&limit=1"), &auditor).await;
    assert_eq!(auditors_first["items"][0]["id"], json!(every_run[0]));
    let cursor = auditors_first["next_cursor"].as_str().unwrap();
    let (status, page) = server
        .get(&format!("{runs_path}&cursor={cursor}"), &other_key)
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["next_cursor"], Value::Null, "{page}");
    let ids: Vec<_> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|run| run["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, other_runs);
    let (_, others_first) = server
        .get(&format!("{runs_path}&limit=1"), &other_key)
        .await;
    let cursor = others_first["next_cursor"].as_str().unwrap();
    let (status, page) = server
        .get(&format!("{runs_path}&cursor={cursor}"), &city.city_app_key)
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let ids: Vec<_> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|run| run["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, city_app_runs[2..]);
    // People without the audit permission are refused a later page as they are the first.
    let developer = server
        .user_with_key("dev", "developer", Some(&fund.parse().unwrap()))
        .await;
    let (status, problem) = server
        .get(&format!("{runs_path}&cursor={cursor}"), &developer)
        .await;
    assert_eq!(
        (status, problem["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden")),
        "{problem}"
    );

    // Bad cursors and page sizes name their field.
    for (query, field) in [
        ("cursor=!!", "cursor"),
        // `not-a-cursor` in base64: a cursor's encoding, not a cursor's contents.
        ("cursor=bm90LWEtY3Vyc29y", "cursor"),
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
    ] {
        let (status, problem) = server.get(&format!("{runs_path}&{query}"), &auditor).await;
        assert_eq!(
            (status, problem["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(field)),
            "{query}: {problem}"
        );
    }
}

/// A definition of the housing fund's code that approves everyone, as another organization
/// would publish it to take the code over.
const TAKEOVER: &str = r#"
code: housing-fund-rental-withdrawal
name: takeover
consumer: {organization: 113201000132010553, system: birth-registry}
front_end: {organization: 11320100013201063X, system: city-app}
subject: id_number
inputs:
  id_number: {type: citizen_id}
steps: {}
rules:
  - id: everyone
    description: everyone
    when: "true"
    on_failure: deny
"#;

/// A code belongs to the organization of its first version's consumer system: no other
/// organization publishes versions of it, and a version cannot move it to another organization.
async fn a_scenario_code_stays_with_its_organization(server: TestServer) {
    let (population, _services, city) = reference_city(&server).await;
    let code = "housing-fund-rental-withdrawal";
    let stranger = server
        .user_with_key(
            "stranger",
            "data_officer",
            Some(&"113201000132010553".parse().unwrap()),
        )
        .await;
    let (status, problem) = publish_as(&server, &stranger, code, TAKEOVER).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    let with_a_step = TAKEOVER.replace(
        "steps: {}",
        "steps:\n  births:\n    calls: {organization: 113201000132010553, system: birth-registry, service: births}\n    path: /births/{inputs.id_number}\n    outputs: {}",
    );
    let (status, problem) = publish_as(&server, &stranger, code, &with_a_step).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");

    // The owner's officer cannot hand the code to another organization's system either.
    let officer = fund_officer(&server).await;
    let (status, problem) = publish_as(&server, &officer, code, TAKEOVER).await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    let (status, problem) = publish_as(&server, ADMIN_KEY, code, TAKEOVER).await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");

    // A definition without a step decides on nothing the registers say: refused.
    let own_without_steps = TAKEOVER.replace(
        "{organization: 113201000132010553, system: birth-registry}",
        "{organization: 11320100013201020G, system: rental-withdrawal}",
    );
    let (status, problem) = publish_as(&server, &officer, code, &own_without_steps).await;
    assert_eq!(
        (status, problem["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("steps")),
        "{problem}"
    );

    // Still version 1, and runs still decide by it; the owner and platform admins publish.
    let (status, versions) = server
        .get(&format!("/api/v1/scenarios/{code}/versions"), ADMIN_KEY)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(versions.as_array().unwrap().len(), 1, "{versions}");
    let deny = &population
        .examples(Scenario::HousingFundRentalWithdrawal, 1)
        .deny[0];
    let (status, run) = server
        .post(
            &format!("/api/v1/scenarios/{code}/runs"),
            &city.city_app_key,
            json!({ "inputs": inputs(Scenario::HousingFundRentalWithdrawal, deny), "consent": "c-1" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{run}");
    assert_eq!(run["result"]["outcome"], "deny", "{run}");
    let original = reference::SCENARIOS[0].1;
    let (status, published) = publish_as(&server, &officer, code, original).await;
    assert_eq!(status, StatusCode::CREATED, "{published}");
    let (status, published) = publish_as(&server, ADMIN_KEY, code, original).await;
    assert_eq!(
        (status, &published["version"]),
        (StatusCode::CREATED, &json!(3)),
        "{published}"
    );
}

/// What would exhaust the server is refused at publication (naming the place) or before a run
/// calls anything, and the server stays up.
async fn expressions_consent_and_records_are_bounded(server: TestServer) {
    let (population, _services, city) = reference_city(&server).await;
    let code = "housing-fund-rental-withdrawal";
    let officer = fund_officer(&server).await;
    let original = reference::SCENARIOS[0].1;
    let rule = "when: steps.fund.found && steps.fund.balance > 0.0";
    assert!(original.contains(rule));
    let digits = "[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]";
    let mut comprehensions = "true".to_owned();
    for level in 0..30 {
        comprehensions = format!("{digits}.all(v{level}, {comprehensions})");
    }
    let three_deep = format!("{digits}.all(a, {digits}.all(b, {digits}.all(c, true)))");
    for when in [
        // These overflowed the stack while the definition was checked, which aborted the server.
        format!("{} == 0", vec!["0"; 2_000].join(" + ")),
        format!("[1]{} == 1", "[0]".repeat(3_000)),
        // And these validated, then never finished evaluating.
        comprehensions,
        three_deep,
    ] {
        let text = original.replace(rule, &format!("when: \"{when}\""));
        let (status, problem) = publish_as(&server, &officer, code, &text).await;
        assert_eq!(
            (status, problem["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some("rules[6].when")),
            "{problem}"
        );
    }
    let (status, _) = server.get("/api/v1/scenarios", ADMIN_KEY).await;
    assert_eq!(status, StatusCode::OK, "the server is still up");

    // A consent reference is an id: a long one is refused before any step fetches data.
    let example = &population
        .examples(Scenario::HousingFundRentalWithdrawal, 1)
        .approve[0];
    let runs_path = format!("/api/v1/scenarios/{code}/runs");
    let (status, problem) = server
        .post(
            &runs_path,
            &city.city_app_key,
            json!({ "inputs": inputs(Scenario::HousingFundRentalWithdrawal, example), "consent": "c".repeat(70_000) }),
        )
        .await;
    assert_eq!(
        (status, problem["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("consent")),
        "{problem}"
    );

    // A result too large for a run record is recorded, and answered, as needing review.
    let text = original.replace(
        "description: 账户有可提取余额 / the account has a balance to withdraw",
        &format!("description: {}", "余额".repeat(20_000)),
    );
    let (status, published) = publish_as(&server, &officer, code, &text).await;
    assert_eq!(status, StatusCode::CREATED, "{published}");
    let (status, run) = server
        .post(
            &runs_path,
            &city.city_app_key,
            json!({ "inputs": inputs(Scenario::HousingFundRentalWithdrawal, example), "consent": "consent-big" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{run}");
    assert_eq!(run["result"]["outcome"], "needs_review", "{run}");
    assert!(
        run["result"]["reason"]
            .as_str()
            .unwrap()
            .contains("larger than a run record holds"),
        "{run}"
    );
    let (status, recorded) = server
        .get(
            &format!("/api/v1/scenario-runs/{}", run["run_id"].as_str().unwrap()),
            &city.city_app_key,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{recorded}");
    assert_eq!(recorded["outcome"], "needs_review", "{recorded}");
}

/// A deactivated service or a path the gateway does not offer is the gateway refusing the call,
/// not the provider saying the citizen is not in its register: the run goes to review.
async fn the_gateways_refusals_are_not_a_citizen_not_found(server: TestServer) {
    let (population, _services, city) = reference_city(&server).await;
    let (status, body) = server
        .delete(
            "/api/v1/organizations/11320100013201004T/systems/population/services/households",
            ADMIN_KEY,
        )
        .await;
    assert!(status.is_success(), "{status} {body}");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    for example in &population
        .examples(Scenario::HousingFundRentalWithdrawal, 2)
        .approve
    {
        let (status, run) = server
            .post(
                "/api/v1/scenarios/housing-fund-rental-withdrawal/runs",
                &city.city_app_key,
                json!({ "inputs": inputs(Scenario::HousingFundRentalWithdrawal, example), "consent": "c-2" }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{run}");
        assert_eq!(run["result"]["outcome"], "needs_review", "{run}");
        let household = run["result"]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|step| step["name"] == "household")
            .unwrap();
        assert_eq!(household["state"], "failed", "{run}");
        assert_eq!(household["failure"]["kind"], "denied", "{run}");
        assert!(
            household["failure"]["message"]
                .as_str()
                .unwrap()
                .contains("no_service"),
            "{run}"
        );
    }
}
