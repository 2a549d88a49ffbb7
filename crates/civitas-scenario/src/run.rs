//! Running a compiled scenario: calling its steps (concurrently where they do not depend on each
//! other, each bounded by its timeout), then deciding by its rules.
//!
//! The engine does no I/O of its own: steps go through a [`StepExecutor`], which the server
//! implements by calling the exchange gateway in-process as the scenario's consumer system, and
//! which tests implement with recordings. It needs a tokio runtime only for the step timeouts.

use std::collections::BTreeMap;
use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use jiff::Zoned;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::compile::{CompiledScenario, CompiledStep};
use crate::definition::{Method, NotFound, OnFailure, ServiceRef, ValueType};
use crate::error::InputError;
use crate::expression::{self, cel_map, cel_to_json, cel_type_name, json_to_cel};
use crate::inputs::{ValidatedInputs, validate_inputs};
use crate::template::RenderProblem;
use crate::values::conform;

/// What a step asks of the gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepCall {
    /// The step's name in the definition, for logs and recorded answers.
    pub step: String,
    pub service: ServiceRef,
    pub method: Method,
    /// Path and query, references filled in and percent-encoded.
    pub path: String,
    /// The step's timeout; the engine enforces it, an executor may pass it on as a deadline.
    pub timeout_ms: u64,
}

/// The provider's answer as the gateway relays it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepResponse {
    pub status: u16,
    pub body: Value,
    /// The index of the exchange's record in the ledger, when the gateway recorded one.
    pub receipt: Option<u64>,
}

/// Why a step produced no answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct StepFailure {
    pub kind: FailureKind,
    pub message: String,
}

impl StepFailure {
    pub fn new(kind: FailureKind, message: impl Into<String>) -> StepFailure {
        StepFailure {
            kind,
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// No answer in time.
    Timeout,
    /// The provider could not be reached, or answered with an error or an unexpected shape.
    Upstream,
    /// The gateway refused the call: no valid grant, a quota exhausted, a policy.
    Denied,
}

impl fmt::Display for FailureKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(match self {
            FailureKind::Timeout => "timeout",
            FailureKind::Upstream => "upstream",
            FailureKind::Denied => "denied",
        })
    }
}

/// The future of a step call: boxed so that `&dyn StepExecutor` works, `Send` so that a run can be
/// spawned on a multi-threaded runtime.
pub type StepFuture<'a> =
    Pin<Box<dyn Future<Output = Result<StepResponse, StepFailure>> + Send + 'a>>;

/// Calls a step's service. The server's implementation goes through the exchange gateway as the
/// scenario's consumer system, so grants, masking, quotas and the ledger apply as to any exchange.
pub trait StepExecutor: Send + Sync {
    fn call(&self, call: StepCall) -> StepFuture<'_>;
}

/// The decision of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Approve,
    Deny,
    NeedsReview,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Approve => "approve",
            Outcome::Deny => "deny",
            Outcome::NeedsReview => "needs_review",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// Everything a run decided and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunOutcome {
    pub scenario: String,
    pub outcome: Outcome,
    /// The computed values; empty unless approved.
    pub values: BTreeMap<String, Value>,
    /// Every rule in definition order, and whether it held.
    pub explanation: Vec<RuleResult>,
    pub steps: Vec<StepResult>,
    /// Why the run was not approved: the failed steps or the rules that did not hold.
    pub reason: Option<String>,
    /// The date the run was decided on, which `age()` and `run.*` use.
    pub run_date: Date,
    /// The engine's time for the whole run, steps included.
    pub duration_us: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleResult {
    pub id: String,
    pub description: String,
    pub on_failure: OnFailure,
    pub held: bool,
    /// Why the rule could not be evaluated, when it could not; it then counts as not held.
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepResult {
    pub name: String,
    pub service: ServiceRef,
    pub state: StepState,
    /// The HTTP status of the answer, when there was one.
    pub status: Option<u16>,
    pub receipt: Option<u64>,
    pub duration_us: u64,
    pub failure: Option<StepFailure>,
    /// Why a step was skipped.
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    /// The service answered with the data.
    Completed,
    /// The service answered 404 and the step treats that as `found = false`.
    NotFound,
    /// Not called: a value its path needs is null (`found = false`), or a step it waits for failed.
    Skipped,
    /// No usable answer: timeout, refusal, error status or unexpected shape.
    Failed,
}

/// One step's result while the run goes on: what the report shows, and what the expressions and
/// later paths see (`found` and the outputs).
struct StepRecord {
    result: StepResult,
    outputs: serde_json::Map<String, Value>,
    /// Failed, or skipped because a step it waits for failed: rules over it are not evaluated.
    blocked: bool,
}

type TimedAnswer = Result<Result<StepResponse, StepFailure>, tokio::time::error::Elapsed>;

struct RunningStep<'a> {
    index: usize,
    started_at: Instant,
    future: Pin<Box<dyn Future<Output = TimedAnswer> + Send + 'a>>,
}

enum Prepared {
    Call(StepCall),
    Done(StepRecord),
}

impl CompiledScenario {
    /// Checks raw inputs against the definition; the API answers an error with 422.
    pub fn check_inputs(&self, inputs: &Value) -> Result<ValidatedInputs, InputError> {
        validate_inputs(&self.definition, inputs)
    }

    /// Runs the scenario for `inputs` on the date of `now` in its time zone (the city's),
    /// evaluating the rules on the calling task: for the authoring harness and tests, which need
    /// no shared scenario. The server uses [`CompiledScenario::run_checked`].
    pub async fn run(
        &self,
        inputs: &Value,
        executor: &dyn StepExecutor,
        now: &Zoned,
    ) -> Result<RunOutcome, InputError> {
        let inputs = self.check_inputs(inputs)?;
        let started_at = Instant::now();
        let records = self.execute_steps(&inputs, executor).await;
        Ok(self.decide(&inputs, records, now.date(), started_at))
    }

    /// Runs the scenario for inputs already checked with [`CompiledScenario::check_inputs`], as
    /// the server does: the rules and computed values are evaluated on tokio's blocking pool, so
    /// a rule that takes long to evaluate never holds up an async worker (and through it other
    /// requests). Validation bounds that time (see `expression.rs`); this bounds the harm.
    pub async fn run_checked(
        self: &Arc<Self>,
        inputs: &ValidatedInputs,
        executor: &dyn StepExecutor,
        now: &Zoned,
    ) -> RunOutcome {
        let started_at = Instant::now();
        let records = self.execute_steps(inputs, executor).await;
        let scenario = self.clone();
        let inputs = inputs.clone();
        let run_date = now.date();
        match tokio::task::spawn_blocking(move || {
            scenario.decide(&inputs, records, run_date, started_at)
        })
        .await
        {
            Ok(outcome) => outcome,
            Err(error) => std::panic::resume_unwind(error.into_panic()),
        }
    }

    async fn execute_steps(
        &self,
        inputs: &ValidatedInputs,
        executor: &dyn StepExecutor,
    ) -> Vec<StepRecord> {
        let count = self.steps.len();
        let mut records: Vec<Option<StepRecord>> = (0..count).map(|_| None).collect();
        let mut started = vec![false; count];
        let mut running: Vec<RunningStep<'_>> = Vec::new();
        // One future drives all steps: it starts every step whose dependencies are done, polls the
        // running ones, and repeats while anything finished, so independent steps overlap and a
        // dependent step starts as soon as the steps it waits for are done.
        poll_fn(|context| {
            loop {
                let mut progressed = false;
                for index in 0..count {
                    let ready = !started[index]
                        && self.steps[index]
                            .dependencies
                            .iter()
                            .all(|&dependency| records[dependency].is_some());
                    if !ready {
                        continue;
                    }
                    started[index] = true;
                    match self.prepare_step(index, inputs, &records) {
                        Prepared::Call(call) => running.push(RunningStep {
                            index,
                            started_at: Instant::now(),
                            future: Box::pin(tokio::time::timeout(
                                self.steps[index].timeout,
                                executor.call(call),
                            )),
                        }),
                        Prepared::Done(record) => {
                            records[index] = Some(record);
                            progressed = true;
                        }
                    }
                }
                running.retain_mut(|step| match step.future.as_mut().poll(context) {
                    Poll::Ready(answer) => {
                        let elapsed = step.started_at.elapsed();
                        records[step.index] = Some(self.finish_step(step.index, answer, elapsed));
                        progressed = true;
                        false
                    }
                    Poll::Pending => true,
                });
                if records.iter().all(Option::is_some) {
                    return Poll::Ready(());
                }
                if !progressed {
                    return Poll::Pending;
                }
            }
        })
        .await;
        records.into_iter().flatten().collect()
    }

    fn prepare_step(
        &self,
        index: usize,
        inputs: &ValidatedInputs,
        records: &[Option<StepRecord>],
    ) -> Prepared {
        let step = &self.steps[index];
        if let Some(&failed) = step
            .dependencies
            .iter()
            .find(|&&dependency| records[dependency].as_ref().is_some_and(|r| r.blocked))
        {
            return Prepared::Done(skipped_record(
                step,
                format!(
                    "not called: step `{}` it waits for failed",
                    self.steps[failed].name
                ),
                true,
            ));
        }
        let null = Value::Null;
        let rendered = step.template.render(|reference| {
            use crate::template::TemplateReference;
            match reference {
                TemplateReference::Input(name) => inputs.get(name).unwrap_or(&null),
                TemplateReference::Parameter(name) => self.parameters.get(name).unwrap_or(&null),
                TemplateReference::StepOutput {
                    step: step_name,
                    output,
                } => self
                    .steps
                    .iter()
                    .position(|candidate| &candidate.name == step_name)
                    .and_then(|position| records[position].as_ref())
                    .and_then(|record| record.outputs.get(output))
                    .unwrap_or(&null),
            }
        });
        match rendered {
            Ok(path) => Prepared::Call(StepCall {
                step: step.name.clone(),
                service: step.service.clone(),
                method: step.method,
                path,
                timeout_ms: u64::try_from(step.timeout.as_millis()).unwrap_or(u64::MAX),
            }),
            // Nothing to look up: the step is treated as finding nothing, and the rules decide.
            Err(RenderProblem::Null(reference)) => Prepared::Done(skipped_record(
                step,
                format!("not called: `{reference}` is null"),
                false,
            )),
            Err(RenderProblem::NotScalar(reference, what)) => {
                let mut record = empty_record(step);
                record.result.state = StepState::Failed;
                record.result.failure = Some(StepFailure::new(
                    FailureKind::Upstream,
                    format!("`{reference}` is {what}, which cannot go into a path"),
                ));
                record.blocked = true;
                Prepared::Done(record)
            }
        }
    }

    fn finish_step(&self, index: usize, answer: TimedAnswer, elapsed: Duration) -> StepRecord {
        let step = &self.steps[index];
        let mut record = empty_record(step);
        record.result.duration_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let failure = match answer {
            Err(_elapsed) => StepFailure::new(
                FailureKind::Timeout,
                format!("no answer within {} ms", step.timeout.as_millis()),
            ),
            Ok(Err(failure)) => failure,
            Ok(Ok(response)) => {
                record.result.status = Some(response.status);
                record.result.receipt = response.receipt;
                match response.status {
                    200..=299 => match extract_outputs(step, &response.body) {
                        Ok(outputs) => {
                            record.outputs = outputs;
                            record.result.state = StepState::Completed;
                            return record;
                        }
                        Err(message) => StepFailure::new(FailureKind::Upstream, message),
                    },
                    404 if step.not_found == NotFound::Empty => {
                        record.result.state = StepState::NotFound;
                        return record;
                    }
                    404 => StepFailure::new(
                        FailureKind::Upstream,
                        "the service answered 404 not found",
                    ),
                    401 | 403 => StepFailure::new(
                        FailureKind::Denied,
                        format!("the call was refused with status {}", response.status),
                    ),
                    status => StepFailure::new(
                        FailureKind::Upstream,
                        format!("the service answered status {status}"),
                    ),
                }
            }
        };
        record.result.state = StepState::Failed;
        record.result.failure = Some(failure);
        record.blocked = true;
        record
    }

    /// Evaluates the rules and computed values once the steps are done. Synchronous, so the CEL
    /// context never lives across an await.
    fn decide(
        &self,
        inputs: &ValidatedInputs,
        records: Vec<StepRecord>,
        run_date: Date,
        started_at: Instant,
    ) -> RunOutcome {
        let steps_cel = cel_map(records.iter().map(|record| {
            let outputs = record
                .outputs
                .iter()
                .map(|(name, value)| (name.clone(), json_to_cel(value)));
            (record.result.name.clone(), cel_map(outputs))
        }));
        let inputs_cel = cel_map(
            inputs
                .values()
                .iter()
                .map(|(name, value)| (name.clone(), json_to_cel(value))),
        );
        let run_cel = run_variable(run_date);
        let mut context = expression::run_context(
            &self.environment,
            run_date,
            vec![
                ("inputs", inputs_cel),
                ("params", self.parameters_cel.clone()),
                ("steps", steps_cel),
                ("run", run_cel),
            ],
        );

        let mut explanation = Vec::with_capacity(self.rules.len());
        for rule in &self.rules {
            let blocked_by = rule
                .step_indices
                .iter()
                .find(|&&index| records[index].blocked);
            let (held, error) = match blocked_by {
                Some(&index) => (
                    false,
                    Some(format!(
                        "not evaluated: step `{}` failed",
                        records[index].result.name
                    )),
                ),
                None => match rule.expression.program.execute(&context) {
                    Ok(cel::Value::Bool(held)) => (held, None),
                    Ok(other) => (
                        false,
                        Some(format!(
                            "the expression gave {}, not a boolean",
                            cel_type_name(&other)
                        )),
                    ),
                    Err(error) => (false, Some(format!("evaluation failed: {error}"))),
                },
            };
            explanation.push(RuleResult {
                id: rule.id.clone(),
                description: rule.description.clone(),
                on_failure: rule.on_failure,
                held,
                error,
            });
        }

        let failed_steps: Vec<String> = records
            .iter()
            .filter(|record| record.result.state == StepState::Failed)
            .map(|record| {
                let failure = record
                    .result
                    .failure
                    .as_ref()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                format!("step `{}` failed ({failure})", record.result.name)
            })
            .collect();
        let not_held = |on_failure: OnFailure| -> Vec<String> {
            explanation
                .iter()
                .filter(|rule| !rule.held && rule.on_failure == on_failure)
                .map(|rule| match &rule.error {
                    Some(error) => format!("rule `{}` could not be evaluated ({error})", rule.id),
                    None => format!("rule `{}` did not hold: {}", rule.id, rule.description),
                })
                .collect()
        };
        let denials = not_held(OnFailure::Deny);
        let reviews = not_held(OnFailure::NeedsReview);

        let mut values = BTreeMap::new();
        let (outcome, reason) = if !failed_steps.is_empty() {
            (Outcome::NeedsReview, Some(failed_steps.join("; ")))
        } else if !denials.is_empty() {
            (Outcome::Deny, Some(denials.join("; ")))
        } else if !reviews.is_empty() {
            (Outcome::NeedsReview, Some(reviews.join("; ")))
        } else {
            match self.compute_values(&mut context) {
                Ok(computed) => {
                    values = computed;
                    (Outcome::Approve, None)
                }
                Err(reason) => (Outcome::NeedsReview, Some(reason)),
            }
        };

        RunOutcome {
            scenario: self.definition.code.as_str().to_owned(),
            outcome,
            values,
            explanation,
            steps: records.into_iter().map(|record| record.result).collect(),
            reason,
            run_date,
            duration_us: u64::try_from(started_at.elapsed().as_micros()).unwrap_or(u64::MAX),
        }
    }

    /// Evaluates the computed values in order, each seeing those before it as `computed.NAME`. An
    /// approval without its values would be wrong, so any failure sends the run to review.
    fn compute_values(
        &self,
        context: &mut cel::Context<'static, 'static>,
    ) -> Result<BTreeMap<String, Value>, String> {
        let mut values = BTreeMap::new();
        let mut computed_cel: Vec<(String, cel::Value)> = Vec::new();
        for computed in &self.computed {
            context.add_variable_from_value("computed", cel_map(computed_cel.iter().cloned()));
            let describe = |message: String| {
                format!(
                    "computed value `{}` could not be evaluated ({message})",
                    computed.name
                )
            };
            let value = computed
                .expression
                .program
                .execute(context)
                .map_err(|error| describe(format!("evaluation failed: {error}")))?;
            let json = cel_to_json(&value).map_err(describe)?;
            let json = conform(json, computed.value_type).map_err(describe)?;
            computed_cel.push((
                computed.name.clone(),
                json_to_cel_typed(&json, computed.value_type),
            ));
            values.insert(computed.name.clone(), json);
        }
        Ok(values)
    }
}

/// A decimal stays a `double` for the expressions after it, even when it is a whole number.
fn json_to_cel_typed(value: &Value, value_type: ValueType) -> cel::Value {
    match (value_type, value.as_f64()) {
        (ValueType::Decimal, Some(number)) => cel::Value::Float(number),
        _ => json_to_cel(value),
    }
}

fn run_variable(run_date: Date) -> cel::Value {
    let year = i32::from(run_date.year());
    let month = run_date.month() as u32;
    let (previous_year, previous) = expression::previous_month(year, month);
    let text = |value: String| cel::Value::String(Arc::new(value));
    cel_map(
        [
            ("date".to_owned(), text(run_date.to_string())),
            ("month".to_owned(), text(format!("{year:04}-{month:02}"))),
            (
                "previous_month".to_owned(),
                text(format!("{previous_year:04}-{previous:02}")),
            ),
        ]
        .into_iter(),
    )
}

/// A record with `found = false` and every output null.
fn empty_record(step: &CompiledStep) -> StepRecord {
    let mut outputs = serde_json::Map::with_capacity(step.outputs.len() + 1);
    outputs.insert("found".to_owned(), Value::Bool(false));
    for output in &step.outputs {
        outputs.insert(output.name.clone(), Value::Null);
    }
    StepRecord {
        result: StepResult {
            name: step.name.clone(),
            service: step.service.clone(),
            state: StepState::Skipped,
            status: None,
            receipt: None,
            duration_us: 0,
            failure: None,
            detail: None,
        },
        outputs,
        blocked: false,
    }
}

fn skipped_record(step: &CompiledStep, detail: String, blocked: bool) -> StepRecord {
    let mut record = empty_record(step);
    record.result.detail = Some(detail);
    record.blocked = blocked;
    record
}

fn extract_outputs(
    step: &CompiledStep,
    body: &Value,
) -> Result<serde_json::Map<String, Value>, String> {
    let mut outputs = serde_json::Map::with_capacity(step.outputs.len() + 1);
    outputs.insert("found".to_owned(), Value::Bool(true));
    for output in &step.outputs {
        let value = output
            .path
            .extract(body)
            .and_then(|value| conform(value, output.value_type))
            .map_err(|message| {
                format!(
                    "the answer does not fit output `{}` ({}): {message}",
                    output.name, output.source
                )
            })?;
        outputs.insert(output.name.clone(), value);
    }
    Ok(outputs)
}
