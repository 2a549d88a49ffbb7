//! Typed values: what a declared output or computed value of each type accepts.

use serde_json::Value;

use crate::definition::ValueType;
use crate::json_path::json_type_name;

/// `value` checked against `value_type`: null passes for every type (a provider may not know),
/// a whole number passes as a decimal and becomes one, and a decimal without fraction passes as an
/// integer. Anything else of the wrong type is an error naming both types.
pub(crate) fn conform(value: Value, value_type: ValueType) -> Result<Value, String> {
    let mismatch = |value: &Value| {
        Err(format!(
            "expected {}, got {}",
            describe(value_type),
            json_type_name(value)
        ))
    };
    match (value_type, &value) {
        (_, Value::Null) | (ValueType::Any, _) => Ok(value),
        (ValueType::String, Value::String(_))
        | (ValueType::Boolean, Value::Bool(_))
        | (ValueType::List, Value::Array(_))
        | (ValueType::Object, Value::Object(_)) => Ok(value),
        (ValueType::Integer, Value::Number(number)) => {
            if number.is_i64() {
                return Ok(value);
            }
            match number.as_f64() {
                Some(float) if float.fract() == 0.0 && float.abs() < 9.0e15 => {
                    Ok(Value::from(float as i64))
                }
                _ => mismatch(&value),
            }
        }
        (ValueType::Decimal, Value::Number(number)) => number
            .as_f64()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| "expected a finite decimal".to_owned()),
        (ValueType::Date, Value::String(text)) => {
            if is_date(text) {
                Ok(value)
            } else {
                Err(format!("expected a date as YYYY-MM-DD, got {text:?}"))
            }
        }
        _ => mismatch(&value),
    }
}

pub(crate) fn is_date(text: &str) -> bool {
    text.len() == 10 && text.parse::<jiff::civil::Date>().is_ok()
}

fn describe(value_type: ValueType) -> &'static str {
    match value_type {
        ValueType::String => "a string",
        ValueType::Integer => "an integer",
        ValueType::Decimal => "a decimal",
        ValueType::Boolean => "a boolean",
        ValueType::Date => "a date",
        ValueType::List => "a list",
        ValueType::Object => "an object",
        ValueType::Any => "any value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn conforms_values_to_types() {
        assert_eq!(
            conform(json!(5400), ValueType::Decimal).unwrap(),
            json!(5400.0)
        );
        assert_eq!(conform(json!(3.0), ValueType::Integer).unwrap(), json!(3));
        assert!(conform(json!(3.5), ValueType::Integer).is_err());
        assert!(conform(json!("x"), ValueType::Decimal).is_err());
        assert_eq!(conform(Value::Null, ValueType::Date).unwrap(), Value::Null);
        assert!(conform(json!("2026-02-30"), ValueType::Date).is_err());
        assert!(conform(json!("2026-02-28"), ValueType::Date).is_ok());
    }
}
