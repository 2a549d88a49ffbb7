//! Validation at publication: everything that can be checked without running is checked here,
//! and what passes is compiled once (CEL programs, JSON paths, path templates, the step graph) so
//! that a run re-parses nothing.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use cel::Env;

use crate::definition::{
    Definition, InputType, MAXIMUM_TIMEOUT_MS, Method, NotFound, OnFailure, ServiceRef, ValueType,
};
use crate::error::{DefinitionError, Problem, Result};
use crate::expression::{self, CompiledExpression, Section, check_name};
use crate::json_path::JsonPath;
use crate::template::{PathTemplate, TemplateReference};

/// A definition that passed validation, ready to run any number of times (it is `Send + Sync`, so
/// one copy serves concurrent runs).
pub struct CompiledScenario {
    pub(crate) definition: Definition,
    pub(crate) environment: Arc<Env>,
    pub(crate) parameters: serde_json::Map<String, serde_json::Value>,
    pub(crate) parameters_cel: cel::Value,
    pub(crate) steps: Vec<CompiledStep>,
    pub(crate) rules: Vec<CompiledRule>,
    pub(crate) computed: Vec<CompiledComputed>,
}

impl std::fmt::Debug for CompiledScenario {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("CompiledScenario")
            .field("code", &self.definition.code)
            .field("steps", &self.steps.len())
            .field("rules", &self.rules.len())
            .finish_non_exhaustive()
    }
}

pub(crate) struct CompiledStep {
    pub(crate) name: String,
    pub(crate) service: ServiceRef,
    pub(crate) method: Method,
    pub(crate) template: PathTemplate,
    pub(crate) timeout: Duration,
    pub(crate) not_found: NotFound,
    pub(crate) outputs: Vec<CompiledOutput>,
    /// The steps whose outputs the path uses, by index: this step starts once they are done.
    pub(crate) dependencies: Vec<usize>,
}

pub(crate) struct CompiledOutput {
    pub(crate) name: String,
    pub(crate) source: String,
    pub(crate) path: JsonPath,
    pub(crate) value_type: ValueType,
}

pub(crate) struct CompiledRule {
    pub(crate) id: String,
    pub(crate) description: String,
    pub(crate) on_failure: OnFailure,
    pub(crate) expression: CompiledExpression,
    pub(crate) step_indices: Vec<usize>,
}

pub(crate) struct CompiledComputed {
    pub(crate) name: String,
    pub(crate) value_type: ValueType,
    pub(crate) expression: CompiledExpression,
}

impl CompiledScenario {
    pub fn definition(&self) -> &Definition {
        &self.definition
    }

    pub fn code(&self) -> &str {
        self.definition.code.as_str()
    }

    /// Every distinct service the scenario calls, for showing and re-checking its grants.
    pub fn services(&self) -> Vec<&ServiceRef> {
        let mut services: Vec<&ServiceRef> = self.steps.iter().map(|step| &step.service).collect();
        services.sort();
        services.dedup();
        services
    }
}

/// Validates `definition` and compiles it. `has_grant` answers whether the scenario's consumer
/// system holds a valid grant for a service; a step calling a service without one is refused here
/// rather than failing every run. All problems found are returned together, each naming its place.
pub fn validate(
    definition: &Definition,
    has_grant: &dyn Fn(&ServiceRef) -> bool,
) -> Result<CompiledScenario> {
    let mut problems = Vec::new();
    check_names(definition, &mut problems);
    check_inputs(definition, &mut problems);
    check_parameters(definition, &mut problems);
    let steps = compile_steps(definition, has_grant, &mut problems);
    if let Some(steps) = &steps {
        check_cycles(steps, &mut problems);
    }
    let environment = expression::environment();
    let rules = compile_rules(definition, &environment, &mut problems);
    let computed = compile_computed(definition, &environment, &mut problems);

    let (Some(steps), Some(rules), Some(computed), true) =
        (steps, rules, computed, problems.is_empty())
    else {
        return Err(DefinitionError::Invalid(problems));
    };
    let parameters: serde_json::Map<String, serde_json::Value> = definition
        .parameters
        .iter()
        .map(|(name, parameter)| (name.to_owned(), parameter.value.clone()))
        .collect();
    let parameters_cel = expression::cel_map(
        parameters
            .iter()
            .map(|(name, value)| (name.clone(), expression::json_to_cel(value))),
    );
    Ok(CompiledScenario {
        definition: definition.clone(),
        environment,
        parameters,
        parameters_cel,
        steps,
        rules,
        computed,
    })
}

fn check_names(definition: &Definition, problems: &mut Vec<Problem>) {
    let sections = [
        ("inputs", definition.inputs.names().collect::<Vec<_>>()),
        ("parameters", definition.parameters.names().collect()),
        ("steps", definition.steps.names().collect()),
        ("computed", definition.computed.names().collect()),
    ];
    for (section, names) in sections {
        for name in names {
            if let Err(message) = check_name(name) {
                problems.push(Problem::new(format!("{section}.{name}"), message));
            }
        }
    }
    for (step_name, step) in definition.steps.iter() {
        for output in step.outputs.names() {
            let place = format!("steps.{step_name}.outputs.{output}");
            if output == "found" {
                problems.push(Problem::new(
                    place,
                    "`found` is set by the engine (whether the service found anything); name the output otherwise",
                ));
            } else if let Err(message) = check_name(output) {
                problems.push(Problem::new(place, message));
            }
        }
    }
    if definition.steps.is_empty() {
        problems.push(Problem::new(
            "steps",
            "a scenario needs at least one step: it decides on what the registers answer, and \
             without a step its rules could only restate the applicant's own inputs",
        ));
    }
    if definition.rules.is_empty() {
        problems.push(Problem::new(
            "rules",
            "a scenario needs at least one rule: without one every run would be approved",
        ));
    }
    let mut seen = BTreeSet::new();
    for (index, rule) in definition.rules.iter().enumerate() {
        if !seen.insert(rule.id.as_str()) {
            problems.push(Problem::new(
                format!("rules[{index}].id"),
                format!("the rule id `{}` is used twice", rule.id),
            ));
        }
        if rule.description.trim().is_empty() {
            problems.push(Problem::new(
                format!("rules[{index}].description"),
                "a rule says what it checks: the explanation of every run shows it",
            ));
        }
    }
}

fn check_inputs(definition: &Definition, problems: &mut Vec<Problem>) {
    match definition.inputs.get(&definition.subject) {
        None => problems.push(Problem::new(
            "subject",
            format!(
                "`{}` is not one of the inputs; the subject names the input identifying the citizen",
                definition.subject
            ),
        )),
        Some(subject) => {
            if !matches!(
                subject.input_type,
                InputType::CitizenId | InputType::String
            ) {
                problems.push(Problem::new(
                    "subject",
                    format!(
                        "the subject input `{}` is of type {}; it must be a citizen_id or a string",
                        definition.subject,
                        subject.input_type.as_str()
                    ),
                ));
            }
            if !subject.required {
                problems.push(Problem::new(
                    "subject",
                    format!(
                        "the subject input `{}` must be required: every run is about someone",
                        definition.subject
                    ),
                ));
            }
        }
    }
    for (name, input) in definition.inputs.iter() {
        let numeric = matches!(input.input_type, InputType::Integer | InputType::Decimal);
        for (field, bound) in [("min", input.min), ("max", input.max)] {
            if bound.is_some() && !numeric {
                problems.push(Problem::new(
                    format!("inputs.{name}.{field}"),
                    format!(
                        "only integer and decimal inputs have bounds, this one is {}",
                        input.input_type.as_str()
                    ),
                ));
            }
        }
        if let (Some(min), Some(max)) = (input.min, input.max)
            && min > max
        {
            problems.push(Problem::new(
                format!("inputs.{name}.min"),
                format!("the minimum {min} is above the maximum {max}"),
            ));
        }
        if let Some(max_length) = input.max_length {
            if input.input_type != InputType::String {
                problems.push(Problem::new(
                    format!("inputs.{name}.max_length"),
                    "only string inputs have a maximum length",
                ));
            } else if max_length == 0 {
                problems.push(Problem::new(
                    format!("inputs.{name}.max_length"),
                    "the maximum length must be at least 1",
                ));
            }
        }
    }
}

fn check_parameters(definition: &Definition, problems: &mut Vec<Problem>) {
    for (name, parameter) in definition.parameters.iter() {
        if parameter.value.is_null() {
            problems.push(Problem::new(
                format!("parameters.{name}.value"),
                "a parameter needs a value",
            ));
        }
        if parameter.description.trim().is_empty() {
            problems.push(Problem::new(
                format!("parameters.{name}.description"),
                "a parameter of the policy says what it is and where it comes from",
            ));
        }
    }
}

fn compile_steps(
    definition: &Definition,
    has_grant: &dyn Fn(&ServiceRef) -> bool,
    problems: &mut Vec<Problem>,
) -> Option<Vec<CompiledStep>> {
    let problems_before = problems.len();
    let mut steps = Vec::with_capacity(definition.steps.len());
    for (name, step) in definition.steps.iter() {
        let place = |field: &str| format!("steps.{name}.{field}");
        if !has_grant(&step.calls) {
            problems.push(Problem::new(
                place("calls"),
                format!(
                    "the scenario's consumer system {} has no valid grant for the service {}",
                    definition.consumer, step.calls
                ),
            ));
        }
        if step.timeout_ms == 0 || step.timeout_ms > MAXIMUM_TIMEOUT_MS {
            problems.push(Problem::new(
                place("timeout_ms"),
                format!(
                    "the timeout must be between 1 and {MAXIMUM_TIMEOUT_MS} ms, got {}",
                    step.timeout_ms
                ),
            ));
        }
        let mut dependencies = Vec::new();
        let template = match PathTemplate::parse(&step.path) {
            Ok(template) => {
                for reference in template.references() {
                    match resolve_template_reference(definition, name, reference) {
                        Ok(Some(dependency)) => {
                            if !dependencies.contains(&dependency) {
                                dependencies.push(dependency);
                            }
                        }
                        Ok(None) => {}
                        Err(message) => problems.push(Problem::new(place("path"), message)),
                    }
                }
                Some(template)
            }
            Err(message) => {
                problems.push(Problem::new(place("path"), message));
                None
            }
        };
        let mut outputs = Vec::with_capacity(step.outputs.len());
        for (output_name, output) in step.outputs.iter() {
            match JsonPath::parse(&output.path) {
                Ok(path) => outputs.push(CompiledOutput {
                    name: output_name.to_owned(),
                    source: output.path.clone(),
                    path,
                    value_type: output.value_type,
                }),
                Err(message) => problems.push(Problem::new(
                    format!("steps.{name}.outputs.{output_name}"),
                    message,
                )),
            }
        }
        if let Some(template) = template {
            steps.push(CompiledStep {
                name: name.to_owned(),
                service: step.calls.clone(),
                method: step.method,
                template,
                timeout: Duration::from_millis(step.timeout_ms),
                not_found: step.not_found,
                outputs,
                dependencies,
            });
        }
    }
    (problems.len() == problems_before).then_some(steps)
}

/// Checks one `{…}` of a step's path; a reference to another step's output gives that step's
/// index, a dependency.
fn resolve_template_reference(
    definition: &Definition,
    step_name: &str,
    reference: &TemplateReference,
) -> std::result::Result<Option<usize>, String> {
    match reference {
        TemplateReference::Input(name) => {
            if definition.inputs.contains(name) {
                Ok(None)
            } else {
                Err(format!("`{{{reference}}}` names an unknown input `{name}`"))
            }
        }
        TemplateReference::Parameter(name) => {
            if definition.parameters.contains(name) {
                Ok(None)
            } else {
                Err(format!(
                    "`{{{reference}}}` names an unknown parameter `{name}`"
                ))
            }
        }
        TemplateReference::StepOutput { step, output } => {
            let Some(index) = definition.steps.position(step) else {
                return Err(format!("`{{{reference}}}` names an unknown step `{step}`"));
            };
            if step == step_name {
                return Err(format!(
                    "`{{{reference}}}` uses the step's own output, which exists only after the call"
                ));
            }
            let declared = definition
                .steps
                .get(step)
                .is_some_and(|other| other.outputs.contains(output));
            if !declared {
                return Err(format!(
                    "`{{{reference}}}` names `{output}`, which is not a declared output of step `{step}`"
                ));
            }
            let value_type = definition
                .steps
                .get(step)
                .and_then(|other| other.outputs.get(output))
                .map(|output| output.value_type);
            if matches!(value_type, Some(ValueType::List | ValueType::Object)) {
                return Err(format!(
                    "`{{{reference}}}` is declared as a list or an object, which cannot go into a path"
                ));
            }
            Ok(Some(index))
        }
    }
}

/// Reports every cycle of steps waiting for each other's outputs, once, at the first step of the
/// cycle in definition order.
fn check_cycles(steps: &[CompiledStep], problems: &mut Vec<Problem>) {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Unvisited,
        OnPath,
        Done,
    }
    fn visit(
        index: usize,
        steps: &[CompiledStep],
        marks: &mut [Mark],
        path: &mut Vec<usize>,
        cycles: &mut Vec<Vec<usize>>,
    ) {
        marks[index] = Mark::OnPath;
        path.push(index);
        for &dependency in &steps[index].dependencies {
            match marks[dependency] {
                Mark::Unvisited => visit(dependency, steps, marks, path, cycles),
                Mark::OnPath => {
                    let start = path
                        .iter()
                        .position(|&on_path| on_path == dependency)
                        .unwrap_or(0);
                    cycles.push(path[start..].to_vec());
                }
                Mark::Done => {}
            }
        }
        path.pop();
        marks[index] = Mark::Done;
    }
    let mut marks = vec![Mark::Unvisited; steps.len()];
    let mut cycles = Vec::new();
    for index in 0..steps.len() {
        if marks[index] == Mark::Unvisited {
            visit(index, steps, &mut marks, &mut Vec::new(), &mut cycles);
        }
    }
    for cycle in cycles {
        let first = cycle.iter().copied().min().unwrap_or(0);
        let rotation = cycle.iter().position(|&index| index == first).unwrap_or(0);
        let mut names: Vec<&str> = cycle[rotation..]
            .iter()
            .chain(&cycle[..rotation])
            .map(|&index| steps[index].name.as_str())
            .collect();
        names.push(steps[first].name.as_str());
        problems.push(Problem::new(
            format!("steps.{}.path", steps[first].name),
            format!(
                "the steps wait for each other's outputs in a cycle: {}",
                names.join(" → ")
            ),
        ));
    }
}

fn compile_rules(
    definition: &Definition,
    environment: &Env,
    problems: &mut Vec<Problem>,
) -> Option<Vec<CompiledRule>> {
    let problems_before = problems.len();
    let mut rules = Vec::with_capacity(definition.rules.len());
    for (index, rule) in definition.rules.iter().enumerate() {
        let place = format!("rules[{index}].when");
        let Some(expression) = expression::compile(
            environment,
            definition,
            Section::Rule,
            &rule.when,
            &place,
            problems,
        ) else {
            continue;
        };
        let step_indices = expression
            .steps_used
            .iter()
            .filter_map(|name| definition.steps.position(name))
            .collect();
        rules.push(CompiledRule {
            id: rule.id.as_str().to_owned(),
            // A YAML folded block ends with a newline, which has no place in an explanation.
            description: rule.description.trim().to_owned(),
            on_failure: rule.on_failure,
            expression,
            step_indices,
        });
    }
    (problems.len() == problems_before).then_some(rules)
}

fn compile_computed(
    definition: &Definition,
    environment: &Env,
    problems: &mut Vec<Problem>,
) -> Option<Vec<CompiledComputed>> {
    let problems_before = problems.len();
    let mut computed = Vec::with_capacity(definition.computed.len());
    let mut earlier: Vec<String> = Vec::new();
    for (name, value) in definition.computed.iter() {
        let place = format!("computed.{name}");
        if let Some(expression) = expression::compile(
            environment,
            definition,
            Section::Computed { earlier: &earlier },
            &value.expression,
            &place,
            problems,
        ) {
            computed.push(CompiledComputed {
                name: name.to_owned(),
                value_type: value.value_type,
                expression,
            });
        }
        earlier.push(name.to_owned());
    }
    (problems.len() == problems_before).then_some(computed)
}
