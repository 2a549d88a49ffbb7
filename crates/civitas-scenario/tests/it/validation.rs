//! Validation at publication: every rejection names its place and what is wrong.

use civitas_scenario::{CompiledScenario, Definition, DefinitionError, Problem, validate};

use crate::support::BASE;

fn problems_of(text: &str) -> Vec<Problem> {
    problems_with_grants(text, &|_| true)
}

fn problems_with_grants(
    text: &str,
    has_grant: &dyn Fn(&civitas_scenario::ServiceRef) -> bool,
) -> Vec<Problem> {
    let definition = Definition::from_yaml(text).expect("parses");
    match validate(&definition, has_grant) {
        Err(DefinitionError::Invalid(problems)) => problems,
        Err(other) => panic!("expected problems, got {other}"),
        Ok(_) => panic!("expected the definition to be rejected"),
    }
}

/// Asserts that a problem at `place` mentions every fragment.
fn assert_problem(problems: &[Problem], place: &str, fragments: &[&str]) {
    let found = problems.iter().any(|problem| {
        problem.place == place
            && fragments
                .iter()
                .all(|fragment| problem.message.contains(fragment))
    });
    assert!(
        found,
        "no problem at {place} mentioning {fragments:?}; got {problems:#?}"
    );
}

#[test]
fn the_base_definition_is_valid() {
    let definition = Definition::from_yaml(BASE).unwrap();
    let compiled = validate(&definition, &|_| true).unwrap();
    assert_eq!(compiled.code(), "test-scenario");
    assert_eq!(compiled.services().len(), 2, "accounts is called twice");
}

#[test]
fn compiled_scenarios_are_shared_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<CompiledScenario>();
}

#[test]
fn an_unknown_input_is_rejected_at_its_rule() {
    let text = BASE.replace(
        "when: steps.account.found",
        "when: steps.account.found && inputs.month > 0",
    );
    let problems = problems_of(&text);
    assert_problem(
        &problems,
        "rules[1].when",
        &["unknown input `month`", "`months`", "(at column 24)"],
    );
}

#[test]
fn an_unknown_step_output_is_rejected() {
    let text = BASE.replace(
        "when: steps.person.status == \"normal\"",
        "when: steps.person.state == \"normal\"",
    );
    assert_problem(
        &problems_of(&text),
        "rules[0].when",
        &["unknown output `state` of step `person`", "`status`"],
    );
}

#[test]
fn an_unknown_step_is_rejected() {
    let text = BASE.replace("when: steps.account.found", "when: steps.acount.found");
    assert_problem(
        &problems_of(&text),
        "rules[1].when",
        &["unknown step `acount`"],
    );
}

#[test]
fn a_bare_variable_is_rejected() {
    let text = BASE.replace("when: steps.account.found", "when: size(steps.account) > 0");
    assert_problem(
        &problems_of(&text),
        "rules[1].when",
        &["`steps.account` must be followed by `found` or a declared output"],
    );
    let text = BASE.replace("when: steps.account.found", "when: inputs[\"months\"] > 0");
    assert_problem(
        &problems_of(&text),
        "rules[1].when",
        &["`inputs` must be followed"],
    );
}

#[test]
fn macros_bind_their_variables() {
    let text = BASE.replace(
        "when: size(steps.history.months) >= 2",
        "when: steps.history.months.all(month, month.startsWith(\"2026\")) && [1, 2].exists(x, x == inputs.months)",
    );
    let definition = Definition::from_yaml(&text).unwrap();
    validate(&definition, &|_| true).unwrap();

    let text = BASE.replace(
        "when: size(steps.history.months) >= 2",
        "when: steps.history.months.all(month, month.startsWith(prefix))",
    );
    assert_problem(
        &problems_of(&text),
        "rules[2].when",
        &["unknown name `prefix`"],
    );
}

#[test]
fn bad_cel_is_rejected_with_its_position() {
    let text = BASE.replace("when: steps.account.found", "when: steps.account.found &&");
    // The end of the expression, just after `&&`.
    assert_problem(
        &problems_of(&text),
        "rules[1].when",
        &["CEL syntax error at column 23: mismatched input '<EOF>'"],
    );

    let text = BASE.replace(
        "when: steps.account.found",
        "when: matches(steps.person.name, \"^王\")",
    );
    assert_problem(
        &problems_of(&text),
        "rules[1].when",
        &["unknown function `matches`"],
    );
}

#[test]
fn unknown_references_in_paths_are_rejected() {
    let text = BASE.replace("/persons/{inputs.id_number}", "/persons/{inputs.id}");
    assert_problem(
        &problems_of(&text),
        "steps.person.path",
        &["unknown input `id`"],
    );

    let text = BASE.replace(
        "/history/{steps.account.account_no}",
        "/history/{steps.account.number}",
    );
    assert_problem(
        &problems_of(&text),
        "steps.history.path",
        &["`number`, which is not a declared output of step `account`"],
    );

    let text = BASE.replace("/persons/{inputs.id_number}", "/persons/{id_number}");
    assert_problem(
        &problems_of(&text),
        "steps.person.path",
        &["is not a reference"],
    );
}

#[test]
fn dependency_cycles_are_rejected() {
    let text = BASE.replace(
        "/accounts/{inputs.id_number}",
        "/accounts/{steps.history.months}",
    );
    // The list-typed output is rejected too; make the cycle over a scalar output.
    let text = text.replace(
        "months: {path: \"$.months[*]\", type: list}",
        "months: {path: \"$.months[*]\", type: list}\n      first: $.months[0]",
    );
    let text = text.replace("{steps.history.months}", "{steps.history.first}");
    assert_problem(
        &problems_of(&text),
        "steps.account.path",
        &["cycle: account → history → account"],
    );

    let text = BASE.replace(
        "/persons/{inputs.id_number}",
        "/persons/{steps.person.name}",
    );
    assert_problem(
        &problems_of(&text),
        "steps.person.path",
        &["the step's own output"],
    );
}

#[test]
fn a_service_without_a_grant_is_rejected() {
    let problems = problems_with_grants(BASE, &|service| service.service.as_str() != "persons");
    assert_problem(
        &problems,
        "steps.person.calls",
        &[
            "11320100013201020G/test-consumer has no valid grant",
            "11320100013201004T/population/persons",
        ],
    );
    assert_eq!(problems.len(), 1, "{problems:#?}");
}

#[test]
fn computed_values_may_only_use_earlier_ones() {
    let text = BASE.replace(
        "expression: min(steps.account.balance, params.cap * double(inputs.months))",
        "expression: computed.doubled / 2.0",
    );
    assert_problem(
        &problems_of(&text),
        "computed.amount",
        &["`computed.doubled` is not a computed value declared before this one"],
    );
    let text = BASE.replace("when: steps.account.found", "when: computed.amount > 0.0");
    assert_problem(
        &problems_of(&text),
        "rules[1].when",
        &["rules cannot use computed values"],
    );
}

#[test]
fn declarations_are_checked() {
    let text = BASE
        .replace("subject: id_number", "subject: note")
        .replace("{type: integer, min: 1, max: 12}", "{type: string, min: 1}")
        .replace(
            "timeout_ms: 1000\n    outputs:\n      status",
            "timeout_ms: 0\n    outputs:\n      status",
        )
        .replace("name: $.name", "found: $.name")
        .replace("id: has-account", "id: person-normal");
    let problems = problems_of(&text);
    assert_problem(&problems, "subject", &["must be required"]);
    assert_problem(
        &problems,
        "inputs.months.min",
        &["only integer and decimal inputs have bounds"],
    );
    assert_problem(
        &problems,
        "steps.person.timeout_ms",
        &["between 1 and 60000"],
    );
    assert_problem(
        &problems,
        "steps.person.outputs.found",
        &["set by the engine"],
    );
    assert_problem(&problems, "rules[1].id", &["`person-normal` is used twice"]);

    let text = BASE
        .replace(
            "    path: /persons/{inputs.id_number}",
            "    path: /persons/{inputs.id_number}\n    description: x",
        )
        .replace("name: $.name", "name: name");
    assert_problem(
        &problems_of(&text),
        "steps.person.outputs.name",
        &["must start with `$`"],
    );
}

#[test]
fn all_problems_are_reported_together() {
    let text = BASE
        .replace("/persons/{inputs.id_number}", "/persons/{inputs.id}")
        .replace("when: steps.account.found", "when: steps.acount.found");
    let problems = problems_of(&text);
    assert_eq!(problems.len(), 2, "{problems:#?}");
    let error = DefinitionError::Invalid(problems);
    let message = error.to_string();
    assert!(
        message.starts_with("the definition has 2 problems"),
        "{message}"
    );
    assert!(message.contains("steps.person.path: "), "{message}");
}

/// The size of a tokio worker's stack, on which publication checks expressions.
const WORKER_STACK: usize = 2 * 1024 * 1024;

/// Runs `work` on a thread with a tokio worker's stack, so that a stack overflow fails the test
/// (by aborting it) rather than passing on the bigger stack of the test's own thread.
fn on_worker_stack<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(WORKER_STACK)
        .spawn(work)
        .unwrap()
        .join()
        .unwrap()
}

#[test]
fn expressions_too_long_or_too_deep_are_refused_before_parsing() {
    let long_sum = format!("{} == 0", vec!["0"; 1_500].join("+"));
    let long_index = format!("[1]{} == 1", "[0]".repeat(3_000));
    let long_text = format!("inputs.months == {}", "1".repeat(4_001));
    let nested = format!("{}true{}", "(".repeat(30), ")".repeat(30));
    for (when, fragment) in [
        (long_sum, "operators"),
        (long_index, "characters"),
        (long_text, "characters"),
        (nested, "nests brackets 30 deep"),
    ] {
        let text = BASE.replace("when: steps.account.found", &format!("when: \"{when}\""));
        let problems = on_worker_stack(move || problems_of(&text));
        assert_problem(&problems, "rules[1].when", &[fragment]);
    }
    let text = BASE.replace(
        "computed.amount * 2.0",
        &format!("{} + 0.0", vec!["computed.amount"; 200].join(" + ")),
    );
    let problems = on_worker_stack(move || problems_of(&text));
    assert_problem(&problems, "computed.doubled", &["operators"]);
}

/// The longest chains the limits let through compile and run on a worker's stack.
#[test]
fn expressions_at_the_limits_compile_and_run_on_a_worker_stack() {
    let chains = [
        format!("{} == 0", vec!["0"; 298].join("+")),
        format!("[1]{} == 1", "[0]".repeat(297)),
        format!("{}true", "!".repeat(299)),
        format!("{}1 == 1", "-".repeat(298)),
        format!("steps.person.status{} == 1", ".x".repeat(290)),
        format!("{}true{}", "(".repeat(24), ")".repeat(24)),
    ];
    for when in chains {
        let text = BASE.replace("when: steps.account.found", &format!("when: \"{when}\""));
        on_worker_stack(move || {
            let scenario = crate::support::compile(&text);
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let executor = crate::support::ScriptedExecutor::approving(0);
            let outcome = runtime
                .block_on(scenario.run(
                    &serde_json::json!({ "id_number": crate::support::ID_NUMBER, "months": 3 }),
                    &executor,
                    &crate::support::now(),
                ))
                .unwrap();
            assert_eq!(outcome.explanation.len(), 3);
        });
    }
}

#[test]
fn comprehensions_nest_at_most_two_deep() {
    let digits = "[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]";
    let nest = |levels: usize| {
        let mut nested = "true".to_owned();
        for level in 0..levels {
            nested = format!("{digits}.all(v{level}, {nested})");
        }
        BASE.replace("when: steps.account.found", &format!("when: \"{nested}\""))
    };
    assert_problem(
        &problems_of(&nest(3)),
        "rules[1].when",
        &["nest at most 2 deep"],
    );
    // Thirty levels would never finish; the limits refuse them long before.
    assert!(!problems_of(&nest(30)).is_empty());

    let two = format!("{digits}.all(a, {digits}.exists(b, a + b == 9))");
    let text = BASE.replace("when: steps.account.found", &format!("when: \"{two}\""));
    crate::support::compile(&text);
}
