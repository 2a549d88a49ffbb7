//! Path templates of steps: `/accounts/{inputs.id_number}`, `/properties?owner={inputs.id_number}`.
//!
//! A reference is replaced by the value it names, percent-encoded, so a value can never add a path
//! segment or a query parameter of its own. `{{` and `}}` stand for literal braces.

use std::fmt;

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TemplateReference {
    Input(String),
    Parameter(String),
    StepOutput { step: String, output: String },
}

impl fmt::Display for TemplateReference {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TemplateReference::Input(name) => write!(formatter, "inputs.{name}"),
            TemplateReference::Parameter(name) => write!(formatter, "params.{name}"),
            TemplateReference::StepOutput { step, output } => {
                write!(formatter, "steps.{step}.{output}")
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(String),
    Reference(TemplateReference),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PathTemplate {
    pieces: Vec<Piece>,
}

/// Why a template could not be filled in for a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RenderProblem {
    /// The value is null: an optional input not given, or an output of a step that found nothing.
    Null(TemplateReference),
    /// A list or an object, which has no place in a path.
    NotScalar(TemplateReference, &'static str),
}

impl PathTemplate {
    pub(crate) fn parse(text: &str) -> Result<PathTemplate, String> {
        if !text.starts_with('/') {
            return Err(format!("the path {text:?} must start with `/`"));
        }
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut characters = text.chars().peekable();
        while let Some(character) = characters.next() {
            match character {
                '{' if characters.peek() == Some(&'{') => {
                    characters.next();
                    literal.push('{');
                }
                '}' if characters.peek() == Some(&'}') => {
                    characters.next();
                    literal.push('}');
                }
                '{' => {
                    let mut inside = String::new();
                    let mut closed = false;
                    for next in characters.by_ref() {
                        if next == '}' {
                            closed = true;
                            break;
                        }
                        inside.push(next);
                    }
                    if !closed {
                        return Err(format!("the path {text:?} has an unclosed `{{`"));
                    }
                    if !literal.is_empty() {
                        pieces.push(Piece::Literal(std::mem::take(&mut literal)));
                    }
                    pieces.push(Piece::Reference(parse_reference(inside.trim())?));
                }
                '}' => {
                    return Err(format!(
                        "the path {text:?} has a `}}` without `{{`; write `}}}}` for a literal brace"
                    ));
                }
                // The literal text goes to the gateway as written, so it must already be a valid
                // URL path and query.
                other if other.is_ascii_graphic() && other != '#' => literal.push(other),
                other => {
                    return Err(format!(
                        "the path {text:?} has {other:?}, which a URL cannot hold as written"
                    ));
                }
            }
        }
        if !literal.is_empty() {
            pieces.push(Piece::Literal(literal));
        }
        Ok(PathTemplate { pieces })
    }

    pub(crate) fn references(&self) -> impl Iterator<Item = &TemplateReference> {
        self.pieces.iter().filter_map(|piece| match piece {
            Piece::Reference(reference) => Some(reference),
            Piece::Literal(_) => None,
        })
    }

    /// Fills the template in with the values `lookup` gives for its references.
    pub(crate) fn render<'a>(
        &self,
        lookup: impl Fn(&TemplateReference) -> &'a Value,
    ) -> Result<String, RenderProblem> {
        let mut path = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Literal(text) => path.push_str(text),
                Piece::Reference(reference) => {
                    let text = match lookup(reference) {
                        Value::Null => return Err(RenderProblem::Null(reference.clone())),
                        Value::String(text) => text.clone(),
                        Value::Number(number) => number.to_string(),
                        Value::Bool(flag) => flag.to_string(),
                        Value::Array(_) => {
                            return Err(RenderProblem::NotScalar(reference.clone(), "a list"));
                        }
                        Value::Object(_) => {
                            return Err(RenderProblem::NotScalar(reference.clone(), "an object"));
                        }
                    };
                    percent_encode_into(&text, &mut path);
                }
            }
        }
        Ok(path)
    }
}

fn parse_reference(text: &str) -> Result<TemplateReference, String> {
    let parts: Vec<&str> = text.split('.').collect();
    match parts.as_slice() {
        ["inputs", name] if !name.is_empty() => Ok(TemplateReference::Input((*name).to_owned())),
        ["params", name] if !name.is_empty() => {
            Ok(TemplateReference::Parameter((*name).to_owned()))
        }
        ["steps", step, output] if !step.is_empty() && !output.is_empty() => {
            Ok(TemplateReference::StepOutput {
                step: (*step).to_owned(),
                output: (*output).to_owned(),
            })
        }
        _ => Err(format!(
            "`{{{text}}}` is not a reference: use {{inputs.NAME}}, {{params.NAME}} or {{steps.STEP.OUTPUT}}"
        )),
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters, which is right in a path segment
/// and in a query value alike (`%20` for a space is understood in both).
fn percent_encode_into(text: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push('%');
            out.push(HEX[usize::from(byte >> 4)] as char);
            out.push(HEX[usize::from(byte & 0x0f)] as char);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_and_encodes() {
        let template = PathTemplate::parse("/properties?owner={inputs.id}&x={{y}}").unwrap();
        let value = json!("苏 1/2");
        let path = template.render(|_| &value).unwrap();
        assert_eq!(path, "/properties?owner=%E8%8B%8F%201%2F2&x={y}");
        let null = Value::Null;
        assert_eq!(
            template.render(|_| &null),
            Err(RenderProblem::Null(TemplateReference::Input("id".into())))
        );
    }

    #[test]
    fn rejects_bad_templates() {
        for bad in [
            "persons/{inputs.id}",
            "/persons/{inputs.id",
            "/persons/{id}",
            "/persons/{steps.a}",
            "/a b",
            "/a}",
        ] {
            assert!(PathTemplate::parse(bad).is_err(), "{bad}");
        }
    }
}
