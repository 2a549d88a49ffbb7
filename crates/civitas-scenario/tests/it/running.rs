//! Running: input checks, concurrency, timeouts, failures and the outcome rules.

use std::time::{Duration, Instant};

use civitas_scenario::{FailureKind, Outcome, StepFailure, StepState};
use serde_json::json;

use crate::support::{BASE, ID_NUMBER, ScriptedExecutor, compile, now};

fn inputs(months: i64) -> serde_json::Value {
    json!({"id_number": ID_NUMBER, "months": months})
}

#[tokio::test]
async fn an_approval_carries_computed_values_and_the_explanation() {
    let scenario = compile(BASE);
    let executor = ScriptedExecutor::approving(0);
    let outcome = scenario.run(&inputs(3), &executor, &now()).await.unwrap();
    assert_eq!(outcome.outcome, Outcome::Approve, "{outcome:#?}");
    assert_eq!(outcome.reason, None);
    // min(250, 100 × 3) = 250, a decimal even though the answer had a whole number.
    assert_eq!(outcome.values["amount"], json!(250.0));
    assert_eq!(outcome.values["doubled"], json!(500.0));
    let rules: Vec<(&str, bool)> = outcome
        .explanation
        .iter()
        .map(|rule| (rule.id.as_str(), rule.held))
        .collect();
    assert_eq!(
        rules,
        [
            ("person-normal", true),
            ("has-account", true),
            ("enough-history", true)
        ]
    );
    assert!(
        outcome
            .steps
            .iter()
            .all(|step| step.state == StepState::Completed)
    );
    assert!(outcome.steps.iter().all(|step| step.receipt == Some(7)));
    assert_eq!(outcome.run_date.to_string(), "2026-11-15");
    // References are filled in, and the dependent step used the earlier step's output.
    assert_eq!(
        executor.called_paths(),
        [
            format!("/accounts/{ID_NUMBER}"),
            "/history/3201-0001?months=3".to_owned(),
            format!("/persons/{ID_NUMBER}"),
        ]
    );

    let json = serde_json::to_value(&outcome).unwrap();
    assert_eq!(json["outcome"], "approve");
    assert_eq!(json["steps"][0]["state"], "completed");
    assert_eq!(json["explanation"][2]["on_failure"], "needs_review");
}

#[tokio::test]
async fn independent_steps_run_concurrently() {
    let scenario = compile(BASE);
    // `person` and `account` are independent; `history` waits for `account`. With 100 ms per
    // call that is 200 ms in all, where one after the other would take 300 ms.
    let executor = ScriptedExecutor::approving(100);
    let started = Instant::now();
    let outcome = scenario.run(&inputs(3), &executor, &now()).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(outcome.outcome, Outcome::Approve);
    assert!(elapsed >= Duration::from_millis(200), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(280), "{elapsed:?}");

    // Two independent steps alone take one delay, not two.
    let two_steps = BASE.split("  history:").next().unwrap().to_owned()
        + "rules:\n  - id: ok\n    description: ok\n    when: steps.person.found && steps.account.found\n    on_failure: deny\n";
    let scenario = compile(&two_steps);
    let executor = ScriptedExecutor::approving(100);
    let started = Instant::now();
    let outcome = scenario.run(&inputs(3), &executor, &now()).await.unwrap();
    let elapsed = started.elapsed();
    assert_eq!(outcome.outcome, Outcome::Approve, "{outcome:#?}");
    assert!(elapsed >= Duration::from_millis(100), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(180), "{elapsed:?}");
    for step in &outcome.steps {
        assert!(step.duration_us >= 100_000, "{step:?}");
    }
}

#[tokio::test]
async fn a_timed_out_step_sends_the_run_to_review() {
    // Every call takes 400 ms. `account` (timeout 600 ms) answers in time, then `history`
    // (timeout 100 ms) times out: the run ends after about 500 ms, not 800.
    let text = BASE.replace("timeout_ms: 1000", "timeout_ms: 600").replace(
        "months={inputs.months}\n    timeout_ms: 600",
        "months={inputs.months}\n    timeout_ms: 100",
    );
    let scenario = compile(&text);
    let executor = ScriptedExecutor::approving(400);
    let started = Instant::now();
    let outcome = scenario.run(&inputs(3), &executor, &now()).await.unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(700),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(outcome.outcome, Outcome::NeedsReview, "{outcome:#?}");
    let history = outcome
        .steps
        .iter()
        .find(|step| step.name == "history")
        .unwrap();
    assert_eq!(history.state, StepState::Failed);
    let failure = history.failure.as_ref().unwrap();
    assert_eq!(failure.kind, FailureKind::Timeout);
    assert_eq!(failure.message, "no answer within 100 ms");
    assert_eq!(
        outcome.reason.as_deref(),
        Some("step `history` failed (timeout: no answer within 100 ms)")
    );
    // Rules over the other steps are still evaluated; the one over `history` is not.
    let enough = outcome
        .explanation
        .iter()
        .find(|rule| rule.id == "enough-history")
        .unwrap();
    assert!(!enough.held);
    assert_eq!(
        enough.error.as_deref(),
        Some("not evaluated: step `history` failed")
    );
    assert!(outcome.explanation[0].held && outcome.explanation[1].held);
    assert!(outcome.values.is_empty());
}

#[tokio::test]
async fn a_failed_step_never_approves_and_its_dependents_are_skipped() {
    let scenario = compile(BASE);
    let executor = ScriptedExecutor::approving(0).fail(
        "account",
        StepFailure::new(FailureKind::Denied, "no valid grant"),
    );
    let outcome = scenario.run(&inputs(3), &executor, &now()).await.unwrap();
    assert_eq!(outcome.outcome, Outcome::NeedsReview);
    assert_eq!(
        outcome.reason.as_deref(),
        Some("step `account` failed (denied: no valid grant)")
    );
    let history = outcome
        .steps
        .iter()
        .find(|step| step.name == "history")
        .unwrap();
    assert_eq!(history.state, StepState::Skipped);
    assert_eq!(
        history.detail.as_deref(),
        Some("not called: step `account` it waits for failed")
    );
    assert_eq!(executor.called_paths().len(), 2);

    // An error status is a failure too, and so is an answer of the wrong shape.
    let executor = ScriptedExecutor::approving(0).answer("person", 500, json!({}));
    let outcome = scenario.run(&inputs(3), &executor, &now()).await.unwrap();
    assert_eq!(outcome.outcome, Outcome::NeedsReview);
    assert!(outcome.reason.unwrap().contains("status 500"));

    let executor =
        ScriptedExecutor::approving(0).answer("account", 200, json!({"balance": "lots"}));
    let outcome = scenario.run(&inputs(3), &executor, &now()).await.unwrap();
    assert_eq!(outcome.outcome, Outcome::NeedsReview);
    let reason = outcome.reason.unwrap();
    assert!(
        reason.contains("output `balance` ($.balance): expected a decimal, got a string"),
        "{reason}"
    );
}

#[tokio::test]
async fn not_found_is_an_answer_when_the_step_says_so() {
    let scenario = compile(BASE);
    let executor =
        ScriptedExecutor::approving(0).answer("account", 404, json!({"error": "not_found"}));
    let outcome = scenario.run(&inputs(3), &executor, &now()).await.unwrap();
    // No account: `history` has no account number to look up, so it is skipped rather than
    // failed, and the rules decide.
    assert_eq!(outcome.outcome, Outcome::Deny, "{outcome:#?}");
    assert_eq!(
        outcome.reason.as_deref(),
        Some("rule `has-account` did not hold: the person has an account")
    );
    let states: Vec<StepState> = outcome.steps.iter().map(|step| step.state).collect();
    assert_eq!(
        states,
        [
            StepState::Completed,
            StepState::NotFound,
            StepState::Skipped
        ]
    );
    assert_eq!(
        outcome.steps[2].detail.as_deref(),
        Some("not called: `steps.account.account_no` is null")
    );

    // Where 404 is not an answer, it fails the step.
    let executor =
        ScriptedExecutor::approving(0).answer("person", 404, json!({"error": "not_found"}));
    let outcome = scenario.run(&inputs(3), &executor, &now()).await.unwrap();
    assert_eq!(outcome.outcome, Outcome::NeedsReview);
}

#[tokio::test]
async fn deny_wins_over_review_and_evaluation_errors_count_as_failed() {
    let scenario = compile(BASE);
    let executor = ScriptedExecutor::approving(0)
        .answer("person", 200, json!({"status": "deceased", "name": "王芳"}))
        .answer("history", 200, json!({"months": ["2026-10"]}));
    let outcome = scenario.run(&inputs(3), &executor, &now()).await.unwrap();
    assert_eq!(outcome.outcome, Outcome::Deny);
    assert_eq!(
        outcome.reason.as_deref(),
        Some("rule `person-normal` did not hold: the person is normal")
    );

    let executor =
        ScriptedExecutor::approving(0).answer("history", 200, json!({"months": ["2026-10"]}));
    let outcome = scenario.run(&inputs(3), &executor, &now()).await.unwrap();
    assert_eq!(outcome.outcome, Outcome::NeedsReview);

    // `history.months` missing: size(null) cannot be evaluated, which counts as not held.
    let executor = ScriptedExecutor::approving(0).answer("history", 200, json!({}));
    let outcome = scenario.run(&inputs(3), &executor, &now()).await.unwrap();
    assert_eq!(outcome.outcome, Outcome::NeedsReview);
    let rule = &outcome.explanation[2];
    assert!(!rule.held);
    assert!(
        rule.error
            .as_deref()
            .unwrap()
            .starts_with("evaluation failed: "),
        "{rule:?}"
    );
    assert!(
        outcome
            .reason
            .unwrap()
            .starts_with("rule `enough-history` could not be evaluated")
    );

    // A rule that gives something other than a boolean does not hold either.
    let text = BASE.replace("when: steps.account.found", "when: inputs.months");
    let scenario = compile(&text);
    let outcome = scenario
        .run(&inputs(3), &ScriptedExecutor::approving(0), &now())
        .await
        .unwrap();
    assert_eq!(outcome.outcome, Outcome::Deny);
    assert_eq!(
        outcome.explanation[1].error.as_deref(),
        Some("the expression gave an int, not a boolean")
    );
}

#[tokio::test]
async fn a_computed_value_that_fails_sends_the_run_to_review() {
    let text = BASE.replace(
        "doubled: computed.amount * 2.0",
        "doubled: computed.amount * 2",
    );
    let scenario = compile(&text);
    let outcome = scenario
        .run(&inputs(3), &ScriptedExecutor::approving(0), &now())
        .await
        .unwrap();
    assert_eq!(outcome.outcome, Outcome::NeedsReview);
    assert!(outcome.values.is_empty());
    assert!(
        outcome
            .reason
            .unwrap()
            .starts_with("computed value `doubled` could not be evaluated")
    );
}

#[tokio::test]
async fn inputs_are_checked_before_anything_is_called() {
    let scenario = compile(BASE);
    let executor = ScriptedExecutor::approving(0);
    let run = |inputs: serde_json::Value| {
        let scenario = &scenario;
        let executor = &executor;
        async move { scenario.run(&inputs, executor, &now()).await.unwrap_err() }
    };

    let error = run(json!({"id_number": "320102199001011233", "months": 3})).await;
    assert_eq!(error.field, "id_number");
    assert!(error.message.contains("bad check character '3'"), "{error}");
    assert!(error.message.contains("expected '2'"), "{error}");

    let error = run(json!({"id_number": ID_NUMBER})).await;
    assert_eq!(
        (error.field.as_str(), error.message.as_str()),
        ("months", "is required")
    );

    let error = run(json!({"id_number": ID_NUMBER, "months": 13})).await;
    assert_eq!(error.field, "months");
    assert_eq!(error.message, "must be at most 12, got 13");

    let error = run(json!({"id_number": ID_NUMBER, "months": "3"})).await;
    assert_eq!(error.message, "must be an integer, got a string");

    let error = run(json!({"id_number": ID_NUMBER, "months": 3, "extra": 1})).await;
    assert_eq!(error.field, "extra");

    let error = run(json!([ID_NUMBER])).await;
    assert_eq!(error.field, "");
    assert_eq!(
        error.to_string(),
        "input : the inputs must be a JSON object, got a list"
    );

    assert!(executor.called_paths().is_empty());

    // A lower-case check character is accepted and the subject is canonical.
    let lower = "11010519491231002x";
    let checked = scenario
        .check_inputs(&json!({"id_number": lower, "months": 1, "note": null}))
        .unwrap();
    assert_eq!(checked.subject(), "11010519491231002X");
    assert_eq!(checked.get("note"), Some(&serde_json::Value::Null));
}

#[tokio::test]
async fn runs_can_be_spawned_on_the_runtime() {
    let scenario = std::sync::Arc::new(compile(BASE));
    let executor = std::sync::Arc::new(ScriptedExecutor::approving(5));
    let mut handles = Vec::new();
    for months in 1..=4 {
        let scenario = scenario.clone();
        let executor = executor.clone();
        handles.push(tokio::spawn(async move {
            scenario
                .run(&inputs(months), executor.as_ref(), &now())
                .await
                .unwrap()
        }));
    }
    for (index, handle) in handles.into_iter().enumerate() {
        let outcome = handle.await.unwrap();
        let months = index as f64 + 1.0;
        assert_eq!(outcome.values["amount"], json!((100.0 * months).min(250.0)));
    }
}
