//! Application scenarios (应用场景): composite citizen services written as data.
//!
//! A department writes a scenario as a YAML or JSON [`Definition`]: the inputs a citizen gives,
//! the provider services its steps call through the exchange gateway (as the scenario's own
//! consumer system, under its own grants), rules in CEL over inputs and step outputs, and values
//! computed for an approval. [`validate`] checks a definition at publication and compiles it into a
//! [`CompiledScenario`]; [`CompiledScenario::run`] runs it with a [`StepExecutor`] and returns a
//! [`RunOutcome`]: `approve`, `deny` or `needs_review`, the computed values, and an explanation
//! naming every rule and whether it held. A failed or timed-out step never yields `approve`.
//!
//! [`run_cases`] runs a definition against recorded answers, for authors testing a scenario
//! before they publish it. The definition and cases formats are documented in
//! `scenarios/README.md`.

mod compile;
mod definition;
mod error;
mod expression;
mod harness;
mod inputs;
mod json_path;
mod named;
mod run;
mod template;
mod values;

pub use compile::{CompiledScenario, validate};
pub use definition::{
    ComputedDefinition, DEFAULT_TIMEOUT_MS, Definition, Format, InputDefinition, InputType,
    MAXIMUM_TIMEOUT_MS, Method, NotFound, OnFailure, OutputDefinition, ParameterDefinition,
    RuleDefinition, ServiceRef, StepDefinition, ValueType,
};
pub use error::{DefinitionError, InputError, Problem, Result, SyntaxError};
pub use harness::{
    Case, CaseFile, CaseReport, CaseResult, Expectation, RecordedAnswer, RecordedExecutor,
    run_cases, run_cases_with,
};
pub use inputs::{DEFAULT_MAX_LENGTH, ValidatedInputs};
pub use named::NamedMap;
pub use run::{
    FailureKind, Outcome, RuleResult, RunOutcome, StepCall, StepExecutor, StepFailure, StepFuture,
    StepResponse, StepResult, StepState,
};
