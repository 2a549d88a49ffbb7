//! The definition of a scenario as its authors write it, in YAML or JSON.
//!
//! This module only reads the text into typed structures; what the structures mean (whether a
//! reference resolves, whether a service is granted, whether the CEL parses) is checked by
//! [`crate::validate`]. The format is documented in `scenarios/README.md`.

use std::fmt;

use civitas_core::access::SystemRef;
use civitas_core::{Code, Uscc};
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::error::{DefinitionError, Result, SyntaxError};
use crate::named::NamedMap;

/// A scenario definition: who runs it, what it asks for, which services it calls and how it decides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Definition {
    /// The scenario's code, as in the URL of its runs.
    pub code: Code,
    /// The name shown to citizens, usually Chinese.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_en: Option<String>,
    #[serde(default)]
    pub description: String,
    /// The scenario's own consumer system: every step calls the gateway as this system, under its
    /// grants.
    pub consumer: SystemRef,
    /// The only system allowed to start runs, such as the city app.
    pub front_end: SystemRef,
    /// The input naming the citizen the run is about; runs are listed by its keyed hash.
    pub subject: String,
    pub inputs: NamedMap<InputDefinition>,
    /// Named constants of the policy, each documented.
    #[serde(default)]
    pub parameters: NamedMap<ParameterDefinition>,
    pub steps: NamedMap<StepDefinition>,
    pub rules: Vec<RuleDefinition>,
    /// Values computed for an approval, such as the amount granted.
    #[serde(default)]
    pub computed: NamedMap<ComputedDefinition>,
}

/// The text formats a definition or a cases file may be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Json,
}

impl Format {
    /// The format a file name's extension says: `.json` is JSON, anything else YAML (which also
    /// reads JSON, but with less precise messages).
    pub fn from_file_name(file_name: &str) -> Format {
        if file_name.to_ascii_lowercase().ends_with(".json") {
            Format::Json
        } else {
            Format::Yaml
        }
    }
}

impl Definition {
    pub fn parse(text: &str, format: Format) -> Result<Definition> {
        parse_text(text, format).map_err(DefinitionError::Syntax)
    }

    pub fn from_yaml(text: &str) -> Result<Definition> {
        Definition::parse(text, Format::Yaml)
    }

    pub fn from_json(text: &str) -> Result<Definition> {
        Definition::parse(text, Format::Json)
    }

    /// Every service the steps call, in step order, possibly repeated.
    pub fn services(&self) -> impl Iterator<Item = &ServiceRef> {
        self.steps.iter().map(|(_, step)| &step.calls)
    }
}

/// Reads `text` into any of this crate's source types, turning the parser's error into a
/// [`SyntaxError`] with line, column and path.
pub(crate) fn parse_text<T: de::DeserializeOwned>(
    text: &str,
    format: Format,
) -> std::result::Result<T, SyntaxError> {
    match format {
        Format::Yaml => serde_norway::from_str(text).map_err(|error| {
            let location = error.location();
            let mut message = error.to_string();
            // The parser appends the location to its message; it is reported in its own fields.
            if let Some(location) = &location {
                let suffix = format!(" at line {} column {}", location.line(), location.column());
                if let Some(stripped) = message.strip_suffix(&suffix) {
                    message = stripped.to_owned();
                }
            }
            SyntaxError {
                line: location.as_ref().map(|location| location.line()),
                column: location.as_ref().map(|location| location.column()),
                path: None,
                message,
            }
        }),
        Format::Json => {
            let mut deserializer = serde_json::Deserializer::from_str(text);
            let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
                let path = error.path().to_string();
                let inner = error.into_inner();
                let line = inner.line();
                let column = inner.column();
                // serde_json also appends the location to its message.
                let mut message = inner.to_string();
                let suffix = format!(" at line {line} column {column}");
                if let Some(stripped) = message.strip_suffix(&suffix) {
                    message = stripped.to_owned();
                }
                SyntaxError {
                    line: (line > 0).then_some(line),
                    column: (line > 0).then_some(column),
                    path: (path != ".").then_some(path),
                    message,
                }
            })?;
            deserializer.end().map_err(|error| SyntaxError {
                line: Some(error.line()),
                column: Some(error.column()),
                path: None,
                message: "trailing characters after the document".to_owned(),
            })?;
            Ok(value)
        }
    }
}

/// A service of a provider system: `{organization, system, service}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceRef {
    pub organization: Uscc,
    pub system: Code,
    pub service: Code,
}

impl ServiceRef {
    /// The provider system that offers the service.
    pub fn system_ref(&self) -> SystemRef {
        SystemRef {
            organization: self.organization.clone(),
            system: self.system.clone(),
        }
    }
}

impl fmt::Display for ServiceRef {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "{}/{}/{}",
            self.organization, self.system, self.service
        )
    }
}

/// An input the citizen (through the front end) gives when starting a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputDefinition {
    #[serde(rename = "type")]
    pub input_type: InputType,
    #[serde(default = "required_by_default")]
    pub required: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Smallest allowed value, for `integer` and `decimal` inputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Largest allowed value, for `integer` and `decimal` inputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Longest allowed text in characters, for `string` inputs; 200 when not given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<usize>,
}

fn required_by_default() -> bool {
    true
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputType {
    /// An 18-character resident identity number, checked with its GB 11643 check character.
    CitizenId,
    String,
    Integer,
    Decimal,
    /// `YYYY-MM-DD`.
    Date,
    Boolean,
}

impl InputType {
    pub fn as_str(self) -> &'static str {
        match self {
            InputType::CitizenId => "citizen_id",
            InputType::String => "string",
            InputType::Integer => "integer",
            InputType::Decimal => "decimal",
            InputType::Date => "date",
            InputType::Boolean => "boolean",
        }
    }
}

/// A named constant of the policy, such as a monthly cap. The description says where it comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParameterDefinition {
    pub value: serde_json::Value,
    pub description: String,
}

/// A call to a provider service through the exchange gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepDefinition {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub calls: ServiceRef,
    #[serde(default)]
    pub method: Method,
    /// The path and query, with `{inputs.NAME}`, `{params.NAME}` or `{steps.STEP.OUTPUT}`
    /// references. A reference to another step's output makes this step wait for that step.
    pub path: String,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default)]
    pub not_found: NotFound,
    /// What the rules may use of the answer, each extracted by a simple JSON path.
    #[serde(default)]
    pub outputs: NamedMap<OutputDefinition>,
}

/// The timeout of a step that does not set one: generous for a provider on the city network.
pub const DEFAULT_TIMEOUT_MS: u64 = 3_000;
/// The longest timeout a step may set: a scenario answers a citizen who is waiting.
pub const MAXIMUM_TIMEOUT_MS: u64 = 60_000;

fn default_timeout_ms() -> u64 {
    DEFAULT_TIMEOUT_MS
}

/// The HTTP method of a step. Exchanges of the demo city's providers are reads; other methods
/// would need a body template and are not offered yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Method {
    #[default]
    #[serde(rename = "GET")]
    Get,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
        }
    }
}

/// What a `404 Not Found` answer means for a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotFound {
    /// The step fails, which sends the run to review.
    #[default]
    Fail,
    /// The step succeeds with `found = false` and null outputs: for registers where absence is an
    /// answer (no household registration in the city, no fund account).
    Empty,
}

/// A value extracted from a step's answer. Written either as just the JSON path (`name: $.name`,
/// of type `any`) or as `{path, type, description}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutputDefinition {
    pub path: String,
    #[serde(rename = "type")]
    pub value_type: ValueType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OutputDefinitionLongForm {
    path: String,
    #[serde(rename = "type", default)]
    value_type: ValueType,
    #[serde(default)]
    description: Option<String>,
}

impl<'de> Deserialize<'de> for OutputDefinition {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OutputVisitor;
        impl<'de> Visitor<'de> for OutputVisitor {
            type Value = OutputDefinition;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a JSON path such as `$.name`, or {path, type, description}")
            }

            fn visit_str<E: de::Error>(self, path: &str) -> Result<OutputDefinition, E> {
                Ok(OutputDefinition {
                    path: path.to_owned(),
                    value_type: ValueType::Any,
                    description: None,
                })
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<OutputDefinition, A::Error> {
                let long = OutputDefinitionLongForm::deserialize(
                    de::value::MapAccessDeserializer::new(map),
                )?;
                Ok(OutputDefinition {
                    path: long.path,
                    value_type: long.value_type,
                    description: long.description,
                })
            }
        }
        deserializer.deserialize_any(OutputVisitor)
    }
}

/// The type of a step output or a computed value. A value of the wrong type in a provider's answer
/// fails the step (the provider broke its contract); null is accepted for every type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueType {
    String,
    Integer,
    /// A number; integers are turned into decimals, so CEL sees a `double`.
    Decimal,
    Boolean,
    /// A `YYYY-MM-DD` string.
    Date,
    List,
    Object,
    #[default]
    Any,
}

impl ValueType {
    pub fn as_str(self) -> &'static str {
        match self {
            ValueType::String => "string",
            ValueType::Integer => "integer",
            ValueType::Decimal => "decimal",
            ValueType::Boolean => "boolean",
            ValueType::Date => "date",
            ValueType::List => "list",
            ValueType::Object => "object",
            ValueType::Any => "any",
        }
    }
}

/// A condition of the policy, in CEL. When it does not hold, the run is denied or sent to review.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleDefinition {
    pub id: Code,
    /// What the rule checks, in the words of the policy (Chinese, English or both).
    pub description: String,
    /// A boolean CEL expression over `inputs`, `params`, `steps` and `run`.
    pub when: String,
    pub on_failure: OnFailure,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    Deny,
    NeedsReview,
}

/// A value computed for an approval, such as an amount. Written either as just the CEL expression
/// or as `{expression, type, description}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComputedDefinition {
    pub expression: String,
    #[serde(rename = "type")]
    pub value_type: ValueType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ComputedDefinitionLongForm {
    expression: String,
    #[serde(rename = "type", default)]
    value_type: ValueType,
    #[serde(default)]
    description: Option<String>,
}

impl<'de> Deserialize<'de> for ComputedDefinition {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ComputedVisitor;
        impl<'de> Visitor<'de> for ComputedVisitor {
            type Value = ComputedDefinition;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a CEL expression, or {expression, type, description}")
            }

            fn visit_str<E: de::Error>(self, expression: &str) -> Result<ComputedDefinition, E> {
                Ok(ComputedDefinition {
                    expression: expression.to_owned(),
                    value_type: ValueType::Any,
                    description: None,
                })
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ComputedDefinition, A::Error> {
                let long = ComputedDefinitionLongForm::deserialize(
                    de::value::MapAccessDeserializer::new(map),
                )?;
                Ok(ComputedDefinition {
                    expression: long.expression,
                    value_type: long.value_type,
                    description: long.description,
                })
            }
        }
        deserializer.deserialize_any(ComputedVisitor)
    }
}
