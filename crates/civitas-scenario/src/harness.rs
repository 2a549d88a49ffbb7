//! The authoring harness: a definition's cases, each with inputs, recorded step answers and the
//! expected outcome, run without any node. `civitas scenario test FILE --cases CASES.yaml` uses it.
//! The cases format is documented in `scenarios/README.md`.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use civitas_core::Code;
use jiff::Zoned;
use jiff::civil::Date;
use jiff::tz::{Offset, TimeZone};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::compile::CompiledScenario;
use crate::definition::{Format, parse_text};
use crate::error::SyntaxError;
use crate::run::{
    FailureKind, Outcome, RunOutcome, StepCall, StepExecutor, StepFailure, StepFuture, StepResponse,
};

/// A cases file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseFile {
    /// The code of the scenario the cases are for; checked when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenario: Option<Code>,
    /// The run date of every case that sets none of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<Date>,
    pub cases: Vec<Case>,
}

impl CaseFile {
    pub fn parse(text: &str, format: Format) -> Result<CaseFile, SyntaxError> {
        parse_text(text, format)
    }

    pub fn from_yaml(text: &str) -> Result<CaseFile, SyntaxError> {
        CaseFile::parse(text, Format::Yaml)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<Date>,
    pub inputs: Value,
    /// The answer of each step, by step name. A step that is called without one fails.
    #[serde(default)]
    pub steps: BTreeMap<String, RecordedAnswer>,
    pub expect: Expectation,
}

/// A recorded answer: either `status` (and `body`), or `fail` for a step that gets no answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedAnswer {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    #[serde(default)]
    pub body: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt: Option<u64>,
    /// The step fails this way instead of answering.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail: Option<FailureKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Answer only after this long, so the engine's own timeout can be exercised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// The path the step must call, references filled in; a different path is a difference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// What a case expects. Only what is given is compared.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// Computed values; numbers compare by value (`5400` equals `5400.0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<BTreeMap<String, Value>>,
    /// Whether given rules held, by rule id.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rules: BTreeMap<String, bool>,
    /// Text the reason must contain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_contains: Option<String>,
    /// The input the run must refuse, instead of running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_error: Option<String>,
}

/// Answers steps from a case's recording, and notes what did not match it.
pub struct RecordedExecutor {
    answers: BTreeMap<String, RecordedAnswer>,
    differences: Mutex<Vec<String>>,
}

impl RecordedExecutor {
    pub fn new(answers: BTreeMap<String, RecordedAnswer>) -> RecordedExecutor {
        RecordedExecutor {
            answers,
            differences: Mutex::new(Vec::new()),
        }
    }

    /// What the calls did that the recording did not foresee: a step without an answer, a path
    /// other than the recorded one.
    pub fn differences(&self) -> Vec<String> {
        self.differences
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn note(&self, difference: String) {
        self.differences
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(difference);
    }
}

impl StepExecutor for RecordedExecutor {
    fn call(&self, call: StepCall) -> StepFuture<'_> {
        Box::pin(async move {
            let Some(answer) = self.answers.get(&call.step) else {
                self.note(format!(
                    "step `{}` was called but the case records no answer for it",
                    call.step
                ));
                return Err(StepFailure::new(
                    FailureKind::Upstream,
                    "no recorded answer",
                ));
            };
            if let Some(expected_path) = &answer.path
                && expected_path != &call.path
            {
                self.note(format!(
                    "step `{}` called {:?}, the recording expects {:?}",
                    call.step, call.path, expected_path
                ));
            }
            if let Some(delay_ms) = answer.delay_ms {
                tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            }
            if let Some(kind) = answer.fail {
                let message = answer
                    .message
                    .clone()
                    .unwrap_or_else(|| format!("recorded {kind}"));
                return Err(StepFailure::new(kind, message));
            }
            Ok(StepResponse {
                status: answer.status.unwrap_or(200),
                body: answer.body.clone(),
                receipt: answer.receipt,
            })
        })
    }
}

/// The result of running a cases file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseReport {
    pub scenario: String,
    pub cases: Vec<CaseResult>,
}

impl CaseReport {
    pub fn passed(&self) -> usize {
        self.cases.iter().filter(|case| case.passed).count()
    }

    pub fn failed(&self) -> usize {
        self.cases.len() - self.passed()
    }

    pub fn all_passed(&self) -> bool {
        self.cases.iter().all(|case| case.passed)
    }
}

impl fmt::Display for CaseReport {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        for case in &self.cases {
            let verdict = if case.passed { "ok  " } else { "FAIL" };
            writeln!(formatter, "{verdict} {}", case.name)?;
            for difference in &case.differences {
                writeln!(formatter, "       {difference}")?;
            }
        }
        write!(
            formatter,
            "{}: {} passed, {} failed",
            self.scenario,
            self.passed(),
            self.failed()
        )
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseResult {
    pub name: String,
    pub passed: bool,
    /// What differed from the expectation, one line each.
    pub differences: Vec<String>,
    /// The run's outcome, when it ran.
    pub outcome: Option<RunOutcome>,
}

/// Runs every case of `cases` against `scenario` with recorded answers. Needs a tokio runtime
/// (for step timeouts and recorded delays).
pub async fn run_cases(scenario: &CompiledScenario, cases: &CaseFile) -> CaseReport {
    let mut results = Vec::with_capacity(cases.cases.len());
    for case in &cases.cases {
        results.push(run_case(scenario, cases, case, None).await);
    }
    CaseReport {
        scenario: scenario.code().to_owned(),
        cases: results,
    }
}

/// Runs every case live through `executor` (a node's gateway) instead of the recorded answers,
/// comparing the same expectations: to check a definition against the real registers.
pub async fn run_cases_with(
    scenario: &CompiledScenario,
    cases: &CaseFile,
    executor: &dyn crate::StepExecutor,
) -> CaseReport {
    let mut results = Vec::with_capacity(cases.cases.len());
    for case in &cases.cases {
        results.push(run_case(scenario, cases, case, Some(executor)).await);
    }
    CaseReport {
        scenario: scenario.code().to_owned(),
        cases: results,
    }
}

async fn run_case(
    scenario: &CompiledScenario,
    file: &CaseFile,
    case: &Case,
    live: Option<&dyn crate::StepExecutor>,
) -> CaseResult {
    let mut differences = Vec::new();
    if let Some(code) = &file.scenario
        && code.as_str() != scenario.code()
    {
        differences.push(format!(
            "the cases are for scenario `{code}`, not `{}`",
            scenario.code()
        ));
    }
    for step in case.steps.keys() {
        if !scenario.definition().steps.contains(step) {
            differences.push(format!(
                "the case records an answer for unknown step `{step}`"
            ));
        }
    }
    let Some(date) = case.date.or(file.date) else {
        differences.push("no run date: set `date` in the case or the file".to_owned());
        return finish(case, differences, None);
    };
    let now = run_time(date);
    let recorded = RecordedExecutor::new(case.steps.clone());
    let executor: &dyn crate::StepExecutor = match live {
        Some(live) => live,
        None => &recorded,
    };
    let expect = &case.expect;
    let outcome = match scenario.run(&case.inputs, executor, &now).await {
        Err(error) => {
            match &expect.input_error {
                Some(field) if *field == error.field => {}
                Some(field) => differences.push(format!(
                    "expected input `{field}` to be refused, but {error}"
                )),
                None => differences.push(format!("the inputs were refused: {error}")),
            }
            return finish(case, differences, None);
        }
        Ok(outcome) => outcome,
    };
    if live.is_none() {
        differences.extend(recorded.differences());
    }
    if let Some(field) = &expect.input_error {
        differences.push(format!(
            "expected input `{field}` to be refused, but the run went ahead"
        ));
    }
    if let Some(expected) = expect.outcome
        && expected != outcome.outcome
    {
        let reason = outcome
            .reason
            .as_deref()
            .map(|reason| format!(" because {reason}"))
            .unwrap_or_default();
        differences.push(format!(
            "outcome: expected {expected}, got {}{reason}",
            outcome.outcome
        ));
    }
    if let Some(expected_values) = &expect.values {
        for (name, expected) in expected_values {
            match outcome.values.get(name) {
                Some(actual) if same_json(expected, actual) => {}
                Some(actual) => {
                    differences.push(format!("value `{name}`: expected {expected}, got {actual}"))
                }
                None => differences.push(format!("value `{name}`: expected {expected}, got none")),
            }
        }
        for name in outcome.values.keys() {
            if !expected_values.contains_key(name) {
                differences.push(format!("value `{name}` was computed but is not expected"));
            }
        }
    }
    for (rule_id, expected_held) in &expect.rules {
        match outcome.explanation.iter().find(|rule| &rule.id == rule_id) {
            Some(rule) if rule.held == *expected_held => {}
            Some(rule) => {
                let error = rule
                    .error
                    .as_deref()
                    .map(|error| format!(" ({error})"))
                    .unwrap_or_default();
                differences.push(format!(
                    "rule `{rule_id}`: expected held = {expected_held}, got {}{error}",
                    rule.held
                ));
            }
            None => differences.push(format!("rule `{rule_id}` is not a rule of the scenario")),
        }
    }
    if let Some(fragment) = &expect.reason_contains {
        let reason = outcome.reason.as_deref().unwrap_or("");
        if !reason.contains(fragment.as_str()) {
            differences.push(format!(
                "reason: expected it to contain {fragment:?}, got {reason:?}"
            ));
        }
    }
    finish(case, differences, Some(outcome))
}

fn finish(case: &Case, differences: Vec<String>, outcome: Option<RunOutcome>) -> CaseResult {
    CaseResult {
        name: case.name.clone(),
        passed: differences.is_empty(),
        differences,
        outcome,
    }
}

/// Noon of `date` in China Standard Time: only the date matters to a run, and a fixed offset
/// needs no time zone database.
fn run_time(date: Date) -> Zoned {
    let china_standard_time = TimeZone::fixed(Offset::constant(8));
    date.at(12, 0, 0, 0)
        .to_zoned(china_standard_time)
        .unwrap_or_else(|_| Zoned::new(jiff::Timestamp::UNIX_EPOCH, TimeZone::UTC))
}

/// JSON equality with numbers compared by value.
fn same_json(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::Number(left), Value::Number(right)) => match (left.as_f64(), right.as_f64()) {
            (Some(left), Some(right)) => (left - right).abs() <= 1e-9 * left.abs().max(1.0),
            _ => left == right,
        },
        (Value::Array(left), Value::Array(right)) => {
            left.len() == right.len()
                && left
                    .iter()
                    .zip(right)
                    .all(|(left, right)| same_json(left, right))
        }
        (Value::Object(left), Value::Object(right)) => {
            left.len() == right.len()
                && left
                    .iter()
                    .all(|(key, value)| right.get(key).is_some_and(|other| same_json(value, other)))
        }
        _ => expected == actual,
    }
}
