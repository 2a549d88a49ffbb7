//! `civitas scenario test FILE --cases CASES.yaml`: runs a scenario definition against the
//! recorded answers of a cases file, or live against a node's gateway, and compares outcomes, so
//! that a department can change its rules safely.

use std::path::Path;

use anyhow::Context;
use civitas_scenario::{
    CaseFile, CaseReport, Definition, FailureKind, Format, StepCall, StepExecutor, StepFailure,
    StepFuture,
};

/// Calls steps on a running node's gateway with the scenario consumer system's key.
pub struct LiveExecutor {
    pub gateway: String,
    pub key: String,
    pub client: reqwest::Client,
}

impl StepExecutor for LiveExecutor {
    fn call(&self, call: StepCall) -> StepFuture<'_> {
        Box::pin(async move {
            let url = format!(
                "{}/x/{}/{}/{}{}",
                self.gateway.trim_end_matches('/'),
                call.service.organization,
                call.service.system,
                call.service.service,
                call.path
            );
            let response = self
                .client
                .get(url)
                .bearer_auth(&self.key)
                .timeout(std::time::Duration::from_millis(call.timeout_ms))
                .send()
                .await
                .map_err(|error| {
                    let kind = if error.is_timeout() {
                        FailureKind::Timeout
                    } else {
                        FailureKind::Upstream
                    };
                    StepFailure::new(kind, error.to_string())
                })?;
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let body = response
                .bytes()
                .await
                .map_err(|error| StepFailure::new(FailureKind::Upstream, error.to_string()))?;
            civitas_api::scenarios::gateway_answer(status, &headers, &body)
        })
    }
}

/// Runs every case of `cases` against `definition`: with the recorded answers, or live through
/// `gateway` with `key` when both are given (then the recorded answers are ignored and the
/// expected outcomes still compared).
pub async fn run(
    definition: &Path,
    cases: &Path,
    live: Option<(String, String)>,
) -> anyhow::Result<CaseReport> {
    let text = std::fs::read_to_string(definition)
        .with_context(|| format!("reading {}", definition.display()))?;
    let format = Format::from_file_name(&definition.to_string_lossy());
    let parsed = Definition::parse(&text, format)
        .map_err(|e| anyhow::anyhow!("{}: {e}", definition.display()))?;
    // Offline, grants cannot be checked: the node checks them at publication.
    let compiled = civitas_scenario::validate(&parsed, &|_| true)
        .map_err(|e| anyhow::anyhow!("{}: {e}", definition.display()))?;
    let cases_text =
        std::fs::read_to_string(cases).with_context(|| format!("reading {}", cases.display()))?;
    let case_file = CaseFile::from_yaml(&cases_text)
        .map_err(|e| anyhow::anyhow!("{}: {e}", cases.display()))?;
    match live {
        None => Ok(civitas_scenario::run_cases(&compiled, &case_file).await),
        Some((gateway, key)) => {
            let executor = LiveExecutor {
                gateway,
                key,
                client: reqwest::Client::new(),
            };
            Ok(civitas_scenario::run_cases_with(&compiled, &case_file, &executor).await)
        }
    }
}
