//! Definitions and executors shared by the tests.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use civitas_scenario::{
    CompiledScenario, Definition, StepCall, StepExecutor, StepFailure, StepFuture, StepResponse,
    validate,
};
use jiff::Zoned;
use jiff::tz::{Offset, TimeZone};
use serde_json::Value;

/// A small definition: two independent steps (`person`, `account`), a third (`history`) that
/// waits for `account`, three rules and a computed value.
pub const BASE: &str = r#"
code: test-scenario
name: 测试场景
consumer: {organization: 11320100013201020G, system: test-consumer}
front_end: {organization: 11320100013201063X, system: city-app}
subject: id_number
inputs:
  id_number: {type: citizen_id}
  months: {type: integer, min: 1, max: 12}
  note: {type: string, required: false}
parameters:
  cap: {value: 100.0, description: monthly cap in yuan}
steps:
  person:
    calls: {organization: 11320100013201004T, system: population, service: persons}
    path: /persons/{inputs.id_number}
    timeout_ms: 1000
    outputs:
      status: {path: $.status, type: string}
      name: $.name
  account:
    calls: {organization: 11320100013201020G, system: fund-core, service: accounts}
    path: /accounts/{inputs.id_number}
    timeout_ms: 1000
    not_found: empty
    outputs:
      account_no: {path: $.account_no, type: string}
      balance: {path: $.balance, type: decimal}
  history:
    calls: {organization: 11320100013201020G, system: fund-core, service: accounts}
    path: /history/{steps.account.account_no}?months={inputs.months}
    timeout_ms: 1000
    outputs:
      months: {path: "$.months[*]", type: list}
rules:
  - id: person-normal
    description: the person is normal
    when: steps.person.status == "normal"
    on_failure: deny
  - id: has-account
    description: the person has an account
    when: steps.account.found
    on_failure: deny
  - id: enough-history
    description: at least two months of history
    when: size(steps.history.months) >= 2
    on_failure: needs_review
computed:
  amount:
    expression: min(steps.account.balance, params.cap * double(inputs.months))
    type: decimal
  doubled: computed.amount * 2.0
"#;

pub const ID_NUMBER: &str = "320102199001011232";

pub fn compile(text: &str) -> CompiledScenario {
    let definition = Definition::from_yaml(text).expect("the definition parses");
    validate(&definition, &|_| true).expect("the definition is valid")
}

pub fn now() -> Zoned {
    "2026-11-15T12:00:00"
        .parse::<jiff::civil::DateTime>()
        .unwrap()
        .to_zoned(TimeZone::fixed(Offset::constant(8)))
        .unwrap()
}

/// Answers by step name after a fixed delay, and records the calls.
pub struct ScriptedExecutor {
    pub delay: Duration,
    pub answers: HashMap<String, Result<(u16, Value), StepFailure>>,
    pub calls: Mutex<Vec<StepCall>>,
}

impl ScriptedExecutor {
    pub fn new(delay_ms: u64) -> ScriptedExecutor {
        ScriptedExecutor {
            delay: Duration::from_millis(delay_ms),
            answers: HashMap::new(),
            calls: Mutex::new(Vec::new()),
        }
    }

    pub fn answer(mut self, step: &str, status: u16, body: Value) -> ScriptedExecutor {
        self.answers.insert(step.to_owned(), Ok((status, body)));
        self
    }

    pub fn fail(mut self, step: &str, failure: StepFailure) -> ScriptedExecutor {
        self.answers.insert(step.to_owned(), Err(failure));
        self
    }

    pub fn called_paths(&self) -> Vec<String> {
        let mut paths: Vec<String> = self
            .calls
            .lock()
            .unwrap()
            .iter()
            .map(|call| call.path.clone())
            .collect();
        paths.sort();
        paths
    }

    /// Answers for BASE that approve.
    pub fn approving(delay_ms: u64) -> ScriptedExecutor {
        ScriptedExecutor::new(delay_ms)
            .answer(
                "person",
                200,
                serde_json::json!({"status": "normal", "name": "王芳"}),
            )
            .answer(
                "account",
                200,
                serde_json::json!({"account_no": "3201-0001", "balance": 250}),
            )
            .answer(
                "history",
                200,
                serde_json::json!({"months": ["2026-10", "2026-09", "2026-08"]}),
            )
    }
}

impl StepExecutor for ScriptedExecutor {
    fn call(&self, call: StepCall) -> StepFuture<'_> {
        Box::pin(async move {
            self.calls.lock().unwrap().push(call.clone());
            tokio::time::sleep(self.delay).await;
            match self.answers.get(&call.step) {
                Some(Ok((status, body))) => Ok(StepResponse {
                    status: *status,
                    body: body.clone(),
                    receipt: Some(7),
                }),
                Some(Err(failure)) => Err(failure.clone()),
                None => panic!("no scripted answer for step {}", call.step),
            }
        })
    }
}
