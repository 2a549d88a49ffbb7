//! The scenarios shipped in `scenarios/` are valid and pass their cases files.

use std::collections::BTreeSet;
use std::path::PathBuf;

use civitas_scenario::{
    CaseFile, Definition, FailureKind, Outcome, RecordedAnswer, ServiceRef, run_cases, validate,
};

const SHIPPED: &[&str] = &[
    "housing-fund-rental-withdrawal",
    "elderly-care-allowance",
    "newborn-registration",
];

fn scenarios_dir() -> PathBuf {
    // Cargo sets the variable when it runs the tests: the value compiled in is the checkout the
    // binary was built from, which may be another one sharing the build directory.
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), PathBuf::from)
        .join("../../scenarios")
}

fn read(file_name: &str) -> String {
    std::fs::read_to_string(scenarios_dir().join(file_name))
        .unwrap_or_else(|error| panic!("reading {file_name}: {error}"))
}

/// The services of docs/demo-services.md, as `organization/system/service`.
const DEMO_SERVICES: &[&str] = &[
    "11320100013201004T/population/persons",
    "11320100013201004T/population/households",
    "11320100013201012M/social-insurance/insurance",
    "11320100013201020G/fund-core/accounts",
    "11320100013201039D/real-estate/properties",
    "113201000132010478/civil-affairs/elderly",
    "113201000132010478/civil-affairs/marriages",
    "113201000132010553/birth-registry/births",
];

fn is_demo_service(service: &ServiceRef) -> bool {
    DEMO_SERVICES.contains(&service.to_string().as_str())
}

#[tokio::test]
async fn every_shipped_scenario_passes_its_cases() {
    for code in SHIPPED {
        let definition = Definition::from_yaml(&read(&format!("{code}.yaml")))
            .unwrap_or_else(|error| panic!("{code}: {error}"));
        assert_eq!(definition.code.as_str(), *code);
        assert_eq!(
            definition.front_end.to_string(),
            "11320100013201063X/city-app"
        );
        // Only the demo city's services, so the scenario works in every demo city.
        let scenario = validate(&definition, &is_demo_service)
            .unwrap_or_else(|error| panic!("{code}: {error}"));

        let cases = CaseFile::from_yaml(&read(&format!("{code}.cases.yaml")))
            .unwrap_or_else(|error| panic!("{code} cases: {error}"));
        let report = run_cases(&scenario, &cases).await;
        assert!(report.all_passed(), "{code}:\n{report}");
        assert_eq!(report.passed(), cases.cases.len());

        // Each file covers the three outcomes, a timed-out step among the reviews.
        let outcomes: BTreeSet<&str> = cases
            .cases
            .iter()
            .filter_map(|case| case.expect.outcome.map(Outcome::as_str))
            .collect();
        assert_eq!(
            outcomes,
            BTreeSet::from(["approve", "deny", "needs_review"]),
            "{code}"
        );
        let times_out = |answer: &RecordedAnswer| answer.fail == Some(FailureKind::Timeout);
        assert!(
            cases.cases.iter().any(|case| {
                case.expect.outcome == Some(Outcome::NeedsReview)
                    && case.steps.values().any(times_out)
            }),
            "{code} has no timed-out step case"
        );
    }
}

#[test]
fn publication_needs_a_grant_for_every_service() {
    let definition = Definition::from_yaml(&read("housing-fund-rental-withdrawal.yaml")).unwrap();
    let error = validate(&definition, &|service| {
        service.service.as_str() != "properties"
    })
    .unwrap_err();
    let problems = error.problems();
    assert_eq!(problems.len(), 1, "{error}");
    assert_eq!(problems[0].place, "steps.properties.calls");
    assert!(
        problems[0]
            .message
            .contains("11320100013201020G/rental-withdrawal has no valid grant"),
        "{error}"
    );
}

#[tokio::test]
async fn a_failing_case_reports_what_differed() {
    let definition = Definition::from_yaml(&read("elderly-care-allowance.yaml")).unwrap();
    let scenario = validate(&definition, &|_| true).unwrap();
    let mut cases = CaseFile::from_yaml(&read("elderly-care-allowance.cases.yaml")).unwrap();
    cases.cases.truncate(1);
    let case = &mut cases.cases[0];
    case.expect.outcome = Some(Outcome::Deny);
    case.expect.values = Some([("monthly_amount".to_owned(), serde_json::json!(150))].into());
    case.expect.rules.insert("no-such-rule".to_owned(), true);
    case.steps.get_mut("identity").unwrap().path = Some("/persons/other".to_owned());
    case.steps.remove("elderly");

    let report = run_cases(&scenario, &cases).await;
    assert_eq!((report.passed(), report.failed()), (0, 1));
    let differences = &report.cases[0].differences;
    let expected = [
        "step `elderly` was called but the case records no answer for it",
        "step `identity` called \"/persons/320102194003120181\", the recording expects \"/persons/other\"",
        "outcome: expected deny, got needs_review because step `elderly` failed (upstream: no recorded answer)",
        "value `monthly_amount`: expected 150, got none",
        "rule `no-such-rule` is not a rule of the scenario",
    ];
    for line in expected {
        assert!(
            differences.iter().any(|difference| difference == line),
            "missing {line:?} in {differences:#?}"
        );
    }
    let text = report.to_string();
    assert!(text.starts_with("FAIL approved, aged 86\n"), "{text}");
    assert!(
        text.ends_with("elderly-care-allowance: 0 passed, 1 failed"),
        "{text}"
    );
}

#[test]
fn cases_files_report_their_syntax_errors() {
    let error =
        CaseFile::from_yaml("cases:\n  - name: x\n    inputs: {}\n    expect: {outcome: maybe}\n")
            .unwrap_err();
    assert_eq!(error.line, Some(4), "{error}");
    assert!(error.message.contains("cases[0].expect.outcome"), "{error}");
}
