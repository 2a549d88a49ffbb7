//! The simple JSON paths that extract step outputs from an answer.
//!
//! Only what a declared output needs: `$` followed by fields (`.name`, `['name']`), indexes
//! (`[0]`) and wildcards (`[*]`, `.*`). After a wildcard the rest of the path applies to every
//! element, so `$.months[*].paid` is the list of `paid` values. A missing field or index gives
//! null rather than an error: providers leave out what they do not know.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JsonPath {
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Field(String),
    Index(usize),
    Wildcard,
}

impl JsonPath {
    pub(crate) fn parse(text: &str) -> Result<JsonPath, String> {
        let rest = text
            .strip_prefix('$')
            .ok_or_else(|| format!("the JSON path {text:?} must start with `$`"))?;
        let characters: Vec<char> = rest.chars().collect();
        let mut segments = Vec::new();
        let mut position = 0;
        while position < characters.len() {
            match characters[position] {
                '.' => {
                    position += 1;
                    if characters.get(position) == Some(&'*') {
                        segments.push(Segment::Wildcard);
                        position += 1;
                        continue;
                    }
                    let start = position;
                    while position < characters.len() && is_field_character(characters[position]) {
                        position += 1;
                    }
                    if start == position {
                        return Err(format!(
                            "the JSON path {text:?} has an empty field name after `.`"
                        ));
                    }
                    segments.push(Segment::Field(characters[start..position].iter().collect()));
                }
                '[' => {
                    let close = characters[position..]
                        .iter()
                        .position(|&character| character == ']')
                        .map(|offset| position + offset)
                        .ok_or_else(|| format!("the JSON path {text:?} has an unclosed `[`"))?;
                    let inside: String = characters[position + 1..close].iter().collect();
                    segments.push(parse_bracket(&inside).ok_or_else(|| {
                        format!(
                            "the JSON path {text:?} has `[{inside}]`: use `[*]`, `[0]` or `['name']`"
                        )
                    })?);
                    position = close + 1;
                }
                other => {
                    return Err(format!(
                        "the JSON path {text:?} has an unexpected {other:?}: use `.name`, `[0]` or `[*]`"
                    ));
                }
            }
        }
        Ok(JsonPath { segments })
    }

    /// The value at this path in `document`; null where the path leads nowhere. A wildcard on
    /// something that is neither a list nor null is an error: the answer does not have the shape
    /// the definition expects.
    pub(crate) fn extract(&self, document: &Value) -> Result<Value, String> {
        extract_segments(&self.segments, document)
    }
}

fn is_field_character(character: char) -> bool {
    character.is_alphanumeric() || character == '_' || character == '-'
}

fn parse_bracket(inside: &str) -> Option<Segment> {
    let inside = inside.trim();
    if inside == "*" {
        return Some(Segment::Wildcard);
    }
    if let Ok(index) = inside.parse::<usize>() {
        return Some(Segment::Index(index));
    }
    let quoted = inside
        .strip_prefix('\'')
        .and_then(|rest| rest.strip_suffix('\''))
        .or_else(|| {
            inside
                .strip_prefix('"')
                .and_then(|rest| rest.strip_suffix('"'))
        })?;
    Some(Segment::Field(quoted.to_owned()))
}

fn extract_segments(segments: &[Segment], value: &Value) -> Result<Value, String> {
    let Some((first, rest)) = segments.split_first() else {
        return Ok(value.clone());
    };
    match first {
        Segment::Field(name) => match value.get(name.as_str()) {
            Some(inner) => extract_segments(rest, inner),
            None => Ok(Value::Null),
        },
        Segment::Index(index) => match value.as_array().and_then(|list| list.get(*index)) {
            Some(inner) => extract_segments(rest, inner),
            None => Ok(Value::Null),
        },
        Segment::Wildcard => match value {
            Value::Array(list) => list
                .iter()
                .map(|element| extract_segments(rest, element))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            Value::Object(map) => map
                .values()
                .map(|element| extract_segments(rest, element))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            Value::Null => Ok(Value::Null),
            other => Err(format!(
                "expected a list for `[*]`, got {}",
                json_type_name(other)
            )),
        },
    }
}

pub(crate) fn json_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(number) if number.is_f64() => "a decimal",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn extracts_fields_indexes_and_wildcards() {
        let body = json!({
            "name": "王芳",
            "deposits": [{"month": "2026-10", "amount": 1824.0}, {"month": "2026-09"}],
            "odd key": 1
        });
        let extract = |path: &str| JsonPath::parse(path).unwrap().extract(&body).unwrap();
        assert_eq!(extract("$.name"), json!("王芳"));
        assert_eq!(extract("$.deposits[0].month"), json!("2026-10"));
        assert_eq!(
            extract("$.deposits[*].month"),
            json!(["2026-10", "2026-09"])
        );
        assert_eq!(extract("$.deposits[*].amount"), json!([1824.0, null]));
        assert_eq!(extract("$['odd key']"), json!(1));
        assert_eq!(extract("$.missing.deeper"), Value::Null);
        assert_eq!(extract("$.deposits[5]"), Value::Null);
        assert_eq!(extract("$"), body);
        assert!(
            JsonPath::parse("$.name[*]")
                .unwrap()
                .extract(&body)
                .is_err()
        );
    }

    #[test]
    fn rejects_malformed_paths() {
        for bad in ["name", "$.", "$[", "$[x]", "$..name", "$ name"] {
            assert!(JsonPath::parse(bad).is_err(), "{bad}");
        }
    }
}
