//! The errors of this crate: a definition that cannot be published, and inputs a run refuses.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The result of parsing, validating and compiling definitions.
pub type Result<T, E = DefinitionError> = std::result::Result<T, E>;

/// Why a definition (or a cases file) is refused. Every variant names the place: a line and column
/// of the source text for syntax, a path such as `steps.fund.path` or `rules[2].when` for meaning.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DefinitionError {
    /// The text is not well-formed YAML or JSON, or does not have the shape of a definition.
    #[error("{0}")]
    Syntax(SyntaxError),
    /// The text parsed, but validation found problems. All of them are listed, so an author fixes
    /// them in one round.
    #[error("{}", describe_problems(.0))]
    Invalid(Vec<Problem>),
}

impl DefinitionError {
    /// The problems found by validation; empty for a syntax error.
    pub fn problems(&self) -> &[Problem] {
        match self {
            DefinitionError::Syntax(_) => &[],
            DefinitionError::Invalid(problems) => problems,
        }
    }
}

fn describe_problems(problems: &[Problem]) -> String {
    let mut text = match problems.len() {
        1 => "the definition has 1 problem".to_owned(),
        count => format!("the definition has {count} problems"),
    };
    for problem in problems {
        text.push_str("\n  ");
        text.push_str(&problem.to_string());
    }
    text
}

/// A syntax or shape error in a source text. `line` and `column` count from 1; `path` names the
/// element being read when the error is about the shape (a missing field, a wrong type).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub struct SyntaxError {
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub path: Option<String>,
    pub message: String,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(line), Some(column)) => write!(formatter, "line {line}, column {column}: ")?,
            (Some(line), None) => write!(formatter, "line {line}: ")?,
            _ => {}
        }
        if let Some(path) = &self.path {
            write!(formatter, "{path}: ")?;
        }
        formatter.write_str(&self.message)
    }
}

/// One thing validation found wrong, at `place` (a path into the definition).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    pub place: String,
    pub message: String,
}

impl Problem {
    pub fn new(place: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem {
            place: place.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}: {}", self.place, self.message)
    }
}

/// An input a run refuses; the API answers it with 422. `field` is the input's name, or empty when
/// the inputs as a whole are wrong (not a JSON object).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("input {field}: {message}")]
pub struct InputError {
    pub field: String,
    pub message: String,
}

impl InputError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> InputError {
        InputError {
            field: field.into(),
            message: message.into(),
        }
    }
}
