//! Services: the callable side of `interface` resources, as the exchange gateway sees them.
//!
//! Two small languages live here because the gateway, the API and the tests all need them, and
//! they are pure:
//! - path patterns: `/accounts/{id_number}` (`{…}` is one path segment), `/files/**` (any rest);
//! - field paths: `$.name`, `$.data.deposits[*].amount`, `$["名称"]` — where in a JSON answer the
//!   value of an information item is.
//!
//! The gateway delivers a mapped field as a whole, so a draft whose fields overlap is refused
//! ([`find_overlap`]): with `$.person` mapped to one item and `$.person.id_number` to another,
//! granting the first would deliver the second's values inside it, whatever the grant says of
//! them. A path overlaps another when its steps begin with the other's (`[*]` is a step like any
//! key: `$.a` and `$.a[*].b` overlap, `$.a[*]` and `$.a.b` do not, since one value cannot be
//! both an array and an object). This holds for the same item too: a field of an item inside a
//! field of the same item maps nothing new. Only a mapping repeated exactly (same item, same
//! path) is let through, as it changes nothing.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{Code, InvalidValue, access::SystemRef, catalog::ResourceCode};

/// Where an information item's values are in a service's JSON answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldMapping {
    pub item: String,
    /// A field path such as `$.deposits[*].amount`.
    pub path: String,
}

/// What a data officer registers for an interface resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceDraft {
    /// Unique within the providing system; the third segment of gateway paths.
    #[schema(value_type = String, example = "accounts")]
    pub code: Code,
    /// The `interface` resource this service delivers.
    #[schema(value_type = String)]
    pub resource: ResourceCode,
    /// Base URL of the upstream, e.g. `http://10.1.2.3:8080/api`.
    pub upstream: String,
    /// Allowed methods; `GET` when absent.
    #[serde(default = "default_methods")]
    pub methods: Vec<String>,
    /// Allowed path patterns below the service, e.g. `/accounts/{id_number}`; any path when empty.
    #[serde(default)]
    pub paths: Vec<String>,
    /// Where each information item is in the JSON answers. Fields of a JSON answer that map to no
    /// granted item never leave the gateway. No mapping's path may lie inside (or be) another's,
    /// since a mapped field is delivered as a whole.
    #[serde(default)]
    pub fields: Vec<FieldMapping>,
    /// Total time allowed for the upstream's answer.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u32,
}

fn default_methods() -> Vec<String> {
    vec!["GET".to_owned()]
}

fn default_timeout_ms() -> u32 {
    10_000
}

/// A registered service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Service {
    pub provider: SystemRef,
    #[serde(flatten)]
    pub draft: ServiceDraft,
    pub active: bool,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// A rule of services broken by a draft, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ServiceError {
    pub field: String,
    pub message: String,
}

impl ServiceDraft {
    /// Checks everything that needs only the draft; that the resource is an interface with these
    /// items is checked against the catalog by the caller.
    pub fn validate(&self) -> Result<(), ServiceError> {
        let error = |field: String, message: String| ServiceError { field, message };
        let upstream_ok = (self.upstream.starts_with("http://")
            || self.upstream.starts_with("https://"))
            && self.upstream.len() > "http://".len()
            && !self.upstream.contains(char::is_whitespace)
            && !self.upstream.contains(['?', '#']);
        if !upstream_ok {
            return Err(error(
                "upstream".into(),
                format!(
                    "{:?} is not an http(s) base URL without query or fragment",
                    self.upstream
                ),
            ));
        }
        if self.methods.is_empty() {
            return Err(error("methods".into(), "allow at least one method".into()));
        }
        for (index, method) in self.methods.iter().enumerate() {
            if !METHODS.contains(&method.as_str()) {
                return Err(error(
                    format!("methods[{index}]"),
                    format!("{method:?} is not one of {}", METHODS.join(", ")),
                ));
            }
        }
        for (index, pattern) in self.paths.iter().enumerate() {
            PathPattern::parse(pattern).map_err(|e| error(format!("paths[{index}]"), e.message))?;
        }
        for (index, field) in self.fields.iter().enumerate() {
            FieldPath::parse(&field.path)
                .map_err(|e| error(format!("fields[{index}].path"), e.message))?;
        }
        if let Some(overlap) = find_overlap(&self.fields) {
            return Err(error(
                format!("fields[{}].path", overlap.inner),
                overlap.describe(&self.fields),
            ));
        }
        if !(1..=300_000).contains(&self.timeout_ms) {
            return Err(error(
                "timeout_ms".into(),
                "must be between 1 and 300000".into(),
            ));
        }
        Ok(())
    }
}

/// A path pattern: literal segments, `{name}` for one segment, and a final `**` for any rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern {
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    One,
    Rest,
}

impl PathPattern {
    pub fn parse(text: &str) -> Result<PathPattern, InvalidValue> {
        let Some(rest) = text.strip_prefix('/') else {
            return Err(InvalidValue::new(format!(
                "path pattern {text:?} must start with '/'"
            )));
        };
        let parts: Vec<&str> = if rest.is_empty() {
            Vec::new()
        } else {
            rest.split('/').collect()
        };
        let mut segments = Vec::with_capacity(parts.len());
        for (index, part) in parts.iter().enumerate() {
            let segment = if *part == "**" {
                if index + 1 != parts.len() {
                    return Err(InvalidValue::new(format!(
                        "in {text:?}, '**' may only end a pattern"
                    )));
                }
                Segment::Rest
            } else if part.starts_with('{') && part.ends_with('}') && part.len() > 2 {
                Segment::One
            } else if part.is_empty() || part.contains(['{', '}', '*']) {
                return Err(InvalidValue::new(format!(
                    "{text:?} has a malformed segment {part:?}"
                )));
            } else {
                Segment::Literal((*part).to_owned())
            };
            segments.push(segment);
        }
        Ok(PathPattern { segments })
    }

    /// Whether `path` (starting with `/`, without query) matches.
    pub fn matches(&self, path: &str) -> bool {
        let rest = path.strip_prefix('/').unwrap_or(path);
        let parts: Vec<&str> = if rest.is_empty() {
            Vec::new()
        } else {
            rest.split('/').collect()
        };
        let mut index = 0;
        for segment in &self.segments {
            match segment {
                Segment::Rest => return true,
                Segment::One => {
                    if parts.get(index).is_none_or(|part| part.is_empty()) {
                        return false;
                    }
                }
                Segment::Literal(literal) => {
                    if parts.get(index) != Some(&literal.as_str()) {
                        return false;
                    }
                }
            }
            index += 1;
        }
        index == parts.len()
    }
}

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FieldStep {
    Key(String),
    /// Every element of an array.
    Each,
}

/// A field path: `$` followed by `.key`, `["key"]` or `[*]` steps. Paths order by their steps,
/// so a path comes before every path inside it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FieldPath {
    pub steps: Vec<FieldStep>,
}

impl FieldPath {
    pub fn parse(text: &str) -> Result<FieldPath, InvalidValue> {
        let malformed = |why: &str| InvalidValue::new(format!("field path {text:?}: {why}"));
        let Some(mut rest) = text.strip_prefix('$') else {
            return Err(malformed("it starts with '$'"));
        };
        let mut steps = Vec::new();
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix("[*]") {
                steps.push(FieldStep::Each);
                rest = after;
            } else if let Some(after) = rest.strip_prefix("[\"") {
                let end = after
                    .find("\"]")
                    .ok_or_else(|| malformed("an unclosed [\"…\"]"))?;
                if end == 0 {
                    return Err(malformed("an empty key"));
                }
                steps.push(FieldStep::Key(after[..end].to_owned()));
                rest = &after[end + 2..];
            } else if let Some(after) = rest.strip_prefix('.') {
                let end = after.find(['.', '[']).unwrap_or(after.len());
                let key = &after[..end];
                if key.is_empty() || key.contains(['"', ']', '*']) {
                    return Err(malformed("an empty or malformed key after '.'"));
                }
                steps.push(FieldStep::Key(key.to_owned()));
                rest = &after[end..];
            } else {
                return Err(malformed("expected '.key', '[\"key\"]' or '[*]'"));
            }
        }
        if steps.is_empty() {
            return Err(malformed("it names no field"));
        }
        Ok(FieldPath { steps })
    }
}

/// Two mappings whose fields overlap, by their places in the list of mappings: `inner`'s path
/// lies inside `outer`'s, or is the same path for another item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overlap {
    pub outer: usize,
    pub inner: usize,
}

impl Overlap {
    /// What is wrong with `inner`, naming `outer`, e.g. `"$.person.id_number" lies inside
    /// "$.person" (fields[0], item record)`.
    pub fn describe(&self, fields: &[FieldMapping]) -> String {
        let (outer, inner) = (&fields[self.outer], &fields[self.inner]);
        let relation = if FieldPath::parse(&outer.path) == FieldPath::parse(&inner.path) {
            "is the same field as"
        } else {
            "lies inside"
        };
        format!(
            "{:?} {relation} {:?} (fields[{}], item {})",
            inner.path, outer.path, self.outer, outer.item
        )
    }
}

/// The first pair of `fields` that overlap (see the module's documentation), if any. Paths that
/// do not parse are passed over: they map nothing.
///
/// Sorted by their steps, the paths between a path and one inside it all lie inside it too, so
/// when any two paths overlap, a path and the one right after it do: checking neighbours finds an
/// overlap in O(n log n).
pub fn find_overlap(fields: &[FieldMapping]) -> Option<Overlap> {
    let mut paths: Vec<(FieldPath, usize)> = fields
        .iter()
        .enumerate()
        .filter_map(|(index, field)| Some((FieldPath::parse(&field.path).ok()?, index)))
        .collect();
    paths.sort();
    paths.windows(2).find_map(|pair| {
        let [(outer_path, outer), (inner_path, inner)] = pair else {
            unreachable!("windows of two");
        };
        let repeated = outer_path == inner_path && fields[*outer].item == fields[*inner].item;
        (inner_path.steps.starts_with(&outer_path.steps) && !repeated).then_some(Overlap {
            outer: *outer,
            inner: *inner,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_patterns() {
        let cases = [
            ("/accounts/{id}", "/accounts/320102199001011234", true),
            ("/accounts/{id}", "/accounts/", false),
            ("/accounts/{id}", "/accounts/1/2", false),
            ("/properties", "/properties", true),
            ("/files/**", "/files/a/b/c.pdf", true),
            ("/files/**", "/other", false),
            ("/", "/", true),
        ];
        for (pattern, path, expected) in cases {
            assert_eq!(
                PathPattern::parse(pattern).unwrap().matches(path),
                expected,
                "{pattern} {path}"
            );
        }
        for bad in ["accounts", "/a/**/b", "/a/{", "/a//b", "/a/*"] {
            assert!(PathPattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn field_paths() {
        assert_eq!(
            FieldPath::parse("$.deposits[*].amount").unwrap().steps,
            [
                FieldStep::Key("deposits".into()),
                FieldStep::Each,
                FieldStep::Key("amount".into())
            ]
        );
        assert_eq!(
            FieldPath::parse("$[\"名称\"]").unwrap().steps,
            [FieldStep::Key("名称".into())]
        );
        for bad in ["name", "$", "$..a", "$[\"a", "$.a[0]", "$.*"] {
            assert!(FieldPath::parse(bad).is_err(), "{bad}");
        }
    }

    /// Field mappings as `(item, path)`.
    type Mappings = [(&'static str, &'static str)];

    /// Validates a draft with these mappings and checks the error it gives, if any.
    fn check_fields(fields: &Mappings, expected: Option<&str>) {
        let draft = ServiceDraft {
            code: Code::parse("accounts").unwrap(),
            resource: ResourceCode::parse("320100-B01-000001").unwrap(),
            upstream: "http://upstream.test".into(),
            methods: default_methods(),
            paths: Vec::new(),
            fields: fields
                .iter()
                .map(|(item, path)| FieldMapping {
                    item: (*item).into(),
                    path: (*path).into(),
                })
                .collect(),
            timeout_ms: default_timeout_ms(),
        };
        let outcome = draft.validate().map_err(|error| error.to_string());
        assert_eq!(outcome.err().as_deref(), expected, "{fields:?}");
    }

    #[test]
    fn overlapping_field_mappings_are_refused() {
        let cases: &[(&Mappings, Option<&str>)] = &[
            (
                &[("record", "$.person"), ("id_number", "$.person.id_number")],
                Some(
                    r#"fields[1].path: "$.person.id_number" lies inside "$.person" (fields[0], item record)"#,
                ),
            ),
            (
                &[("id_number", "$.person.id_number"), ("record", "$.person")],
                Some(
                    r#"fields[0].path: "$.person.id_number" lies inside "$.person" (fields[1], item record)"#,
                ),
            ),
            // `[*]` is a step like any key.
            (
                &[("list", "$.a[*]"), ("b", "$.a[*].b")],
                Some(r#"fields[1].path: "$.a[*].b" lies inside "$.a[*]" (fields[0], item list)"#),
            ),
            (
                &[("b", "$.a[*].b"), ("a", "$.a")],
                Some(r#"fields[0].path: "$.a[*].b" lies inside "$.a" (fields[1], item a)"#),
            ),
            (
                &[("list", "$[*]"), ("name", "$[*].name")],
                Some(r#"fields[1].path: "$[*].name" lies inside "$[*]" (fields[0], item list)"#),
            ),
            // One path spelled two ways is one field.
            (
                &[("name", "$.名称"), ("title", r#"$["名称"]"#)],
                Some(
                    r#"fields[1].path: "$[\"名称\"]" is the same field as "$.名称" (fields[0], item name)"#,
                ),
            ),
            // The same item nested in itself is refused too; repeated exactly, it is let through.
            (
                &[("record", "$.person"), ("record", "$.person.name")],
                Some(
                    r#"fields[1].path: "$.person.name" lies inside "$.person" (fields[0], item record)"#,
                ),
            ),
            (
                &[("record", "$.person"), ("record", r#"$["person"]"#)],
                None,
            ),
            // Found among others, with a path sorting between the two.
            (
                &[("b", "$.a.b"), ("c", "$.c"), ("z", "$.a.z"), ("a", "$.a")],
                Some(r#"fields[0].path: "$.a.b" lies inside "$.a" (fields[3], item a)"#),
            ),
            (
                &[("x", "$.a"), ("x", "$.a"), ("y", "$.a")],
                Some(r#"fields[2].path: "$.a" is the same field as "$.a" (fields[1], item x)"#),
            ),
            // Siblings, an array's elements beside an object's keys, and a key that starts with
            // another key do not overlap; one item may have several fields.
            (&[("b", "$.a.b"), ("c", "$.a.c")], None),
            (&[("each", "$.a[*]"), ("b", "$.a.b")], None),
            (&[("ab", "$.ab"), ("a", "$.a"), ("a_b", "$.a_b")], None),
            (
                &[
                    ("month", "$.deposits[*].month"),
                    ("amount", "$.deposits[*].amount"),
                    ("month", "$.months[*]"),
                ],
                None,
            ),
        ];
        for (fields, expected) in cases {
            check_fields(fields, *expected);
        }
    }
}
