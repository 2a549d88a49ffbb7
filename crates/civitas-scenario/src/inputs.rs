//! Checking the inputs of a run against the definition's declarations.

use civitas_core::CitizenId;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::definition::{Definition, InputDefinition, InputType};
use crate::error::InputError;
use crate::json_path::json_type_name;
use crate::values::is_date;

/// The longest `string` input when the definition sets no `max_length`.
pub const DEFAULT_MAX_LENGTH: usize = 200;

/// Inputs that passed their checks, in canonical form (a citizen ID with an upper-case `X`, a
/// decimal as a JSON float), with null for optional inputs not given.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ValidatedInputs {
    values: Map<String, Value>,
    subject: String,
}

impl ValidatedInputs {
    /// The value of the definition's subject input, which names the citizen the run is about. The
    /// server lists runs by its keyed hash, never by the value itself.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.values.get(name)
    }

    pub fn values(&self) -> &Map<String, Value> {
        &self.values
    }
}

pub(crate) fn validate_inputs(
    definition: &Definition,
    raw: &Value,
) -> Result<ValidatedInputs, InputError> {
    let Value::Object(given) = raw else {
        return Err(InputError::new(
            "",
            format!(
                "the inputs must be a JSON object, got {}",
                json_type_name(raw)
            ),
        ));
    };
    // An input the definition does not declare is refused rather than ignored: it usually means
    // the front end and the definition disagree about a name.
    if let Some(unknown) = given.keys().find(|name| !definition.inputs.contains(name)) {
        return Err(InputError::new(
            unknown.as_str(),
            "is not an input of this scenario",
        ));
    }
    let mut values = Map::new();
    for (name, declaration) in definition.inputs.iter() {
        let value = match given.get(name) {
            None | Some(Value::Null) if declaration.required => {
                return Err(InputError::new(name, "is required"));
            }
            None | Some(Value::Null) => Value::Null,
            Some(value) => {
                check_input(declaration, value).map_err(|message| InputError::new(name, message))?
            }
        };
        values.insert(name.to_owned(), value);
    }
    let subject = match values.get(&definition.subject) {
        Some(Value::String(text)) => text.clone(),
        // Validation makes the subject a required string or citizen ID input.
        _ => {
            return Err(InputError::new(
                definition.subject.as_str(),
                "is required, as it names the citizen the run is about",
            ));
        }
    };
    Ok(ValidatedInputs { values, subject })
}

fn check_input(declaration: &InputDefinition, value: &Value) -> Result<Value, String> {
    let expected = |what: &str| format!("must be {what}, got {}", json_type_name(value));
    match declaration.input_type {
        InputType::CitizenId => {
            let text = value
                .as_str()
                .ok_or_else(|| expected("a citizen ID number as a string"))?;
            let id = CitizenId::parse(text).map_err(|error| error.message)?;
            Ok(Value::String(id.as_str().to_owned()))
        }
        InputType::String => {
            let text = value.as_str().ok_or_else(|| expected("a string"))?;
            if text.trim().is_empty() {
                return Err("must not be empty".to_owned());
            }
            let max_length = declaration.max_length.unwrap_or(DEFAULT_MAX_LENGTH);
            let length = text.chars().count();
            if length > max_length {
                return Err(format!(
                    "must have at most {max_length} characters, got {length}"
                ));
            }
            Ok(value.clone())
        }
        InputType::Integer => {
            let integer = value.as_i64().ok_or_else(|| expected("an integer"))?;
            check_bounds(declaration, integer as f64)?;
            Ok(Value::from(integer))
        }
        InputType::Decimal => {
            let number = value.as_f64().ok_or_else(|| expected("a number"))?;
            check_bounds(declaration, number)?;
            serde_json::Number::from_f64(number)
                .map(Value::Number)
                .ok_or_else(|| "must be a finite number".to_owned())
        }
        InputType::Date => {
            let text = value
                .as_str()
                .ok_or_else(|| expected("a date as YYYY-MM-DD"))?;
            if !is_date(text) {
                return Err(format!("must be a date as YYYY-MM-DD, got {text:?}"));
            }
            Ok(value.clone())
        }
        InputType::Boolean => {
            let flag = value.as_bool().ok_or_else(|| expected("true or false"))?;
            Ok(Value::Bool(flag))
        }
    }
}

fn check_bounds(declaration: &InputDefinition, number: f64) -> Result<(), String> {
    if let Some(min) = declaration.min
        && number < min
    {
        return Err(format!("must be at least {min}, got {number}"));
    }
    if let Some(max) = declaration.max
        && number > max
    {
        return Err(format!("must be at most {max}, got {number}"));
    }
    Ok(())
}
