//! A service's path patterns and field mappings suggested from its provider's OpenAPI 3.x
//! description.
//!
//! Only GET operations are read. Of each, the answers of every success status (`200`, `201`,
//! `2XX`, …) are read, or its `default` answer when it has none, in each JSON media type:
//! `application/json` with or without parameters, and `application/*+json` except
//! `application/problem+json`, which is an error's. A schema's property maps to the item whose
//! code is its name, or to the one its `x-civitas-item` names. The branches of `allOf`, `oneOf`
//! and `anyOf` all describe the value at hand, so the mappings of every branch are suggested: the
//! gateway filters an answer by path, and a mapped field an answer lacks costs nothing.
//!
//! References within the description (`#/…`, a JSON Pointer, percent-encoded or not) are
//! followed, chains of them too; a schema's keywords beside its `$ref` are read as well, as
//! OpenAPI 3.1 has them (an `x-civitas-item` there names the item of what the reference
//! describes). A schema that refers back to one it lies inside of (a tree's
//! node holding its children) is walked once: the gateway's field paths cannot repeat a step, so
//! the fields of the deeper levels are not mapped, and a warning says where, when the schema maps
//! anything. What the suggestion cannot use is reported in `warnings` rather than passed over: a
//! reference to another file or to nothing, a path template that is no path pattern, a property
//! no field path can name.
//!
//! The work is bounded: a suggestion walks at most [`MAX_SCHEMAS_WALKED`] schemas over all its
//! operations, [`MAX_SCHEMA_DEPTH`] deep, and a description that needs more is refused (422)
//! rather than cut short without saying what was left out.

use civitas_core::service::{FieldMapping, FieldPath, PathPattern, find_overlap};
use percent_encoding::percent_decode_str;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::error::{ApiError, ApiResult};

/// The most schemas one suggestion walks, over all its operations: enough for a department's
/// interface many times over, while a description whose schemas fan out into one another (each
/// naming the next twice, say) is refused in milliseconds.
pub const MAX_SCHEMAS_WALKED: usize = 20_000;

/// The most schemas one walk nests, counting each branch and each followed `$ref` as a level.
pub const MAX_SCHEMA_DEPTH: usize = 64;

/// Suggested paths and field mappings for a service.
#[derive(Debug, Serialize, ToSchema)]
pub struct MappingSuggestion {
    /// Path patterns of the description's GET operations (other methods are not read).
    pub paths: Vec<String>,
    /// Mappings that can be registered together: none lies inside another.
    pub fields: Vec<FieldMapping>,
    /// Mappings the description also suggests that are left out of `fields`: each lies inside
    /// (or is) the field of a mapping there for another item, and a service may not map both.
    pub left_out: Vec<LeftOutMapping>,
    /// Items of the resource no property matched, or whose mappings were all left out.
    pub unmatched_items: Vec<String>,
    /// What the description holds that the suggestion could not use: references to other files
    /// or to nothing, path templates that are no path pattern, recursive schemas whose deeper
    /// fields are not mapped, properties no field path can name.
    pub warnings: Vec<MappingWarning>,
}

/// A suggested mapping left out, with the kept mapping whose field holds it.
#[derive(Debug, Serialize, ToSchema)]
pub struct LeftOutMapping {
    pub item: String,
    pub path: String,
    pub inside: FieldMapping,
}

/// Something in the description that the suggestion could not use.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, ToSchema)]
pub struct MappingWarning {
    /// Where in the description, as a JSON Pointer like those of `$ref`s, e.g.
    /// `#/components/schemas/Person/properties/address`.
    pub at: String,
    /// What could not be used, and what that leaves out of the suggestion.
    pub message: String,
}

/// Suggests paths and field mappings for a service delivering `items` from its OpenAPI
/// `description` (the request's `openapi`).
pub fn suggest(description: &Value, items: &[String]) -> ApiResult<MappingSuggestion> {
    if !description.is_object() {
        return Err(ApiError::invalid(
            "openapi",
            "must be an OpenAPI description, a JSON object",
        ));
    }
    match description.get("openapi").and_then(Value::as_str) {
        Some(version) if version.starts_with("3.") => {}
        _ if description.get("swagger").is_some() => {
            return Err(ApiError::invalid(
                "openapi.swagger",
                "Swagger 2.0 descriptions are not read; convert it to OpenAPI 3",
            ));
        }
        _ => {
            return Err(ApiError::invalid(
                "openapi.openapi",
                "must name an OpenAPI version 3.x, e.g. \"3.1.0\"",
            ));
        }
    }
    let paths = match description.get("paths") {
        Some(Value::Object(paths)) => paths,
        Some(_) => return Err(ApiError::invalid("openapi.paths", "must be an object")),
        None => {
            return Err(ApiError::invalid(
                "openapi.paths",
                "is missing; the suggestion is read from the description's paths",
            ));
        }
    };
    let mut walk = Walk {
        document: description,
        items,
        fields: Vec::new(),
        warnings: Vec::new(),
        on_walk: Vec::new(),
        recursions: Vec::new(),
        walked: 0,
    };
    let mut suggested_paths = Vec::new();
    for (template, path_item) in paths {
        let location = format!("#/paths/{}", escape(template));
        let Some((path_item, _)) = walk.follow(path_item, location.clone()) else {
            continue;
        };
        let Some(get) = path_item.get("get") else {
            continue;
        };
        match PathPattern::parse(template) {
            Ok(_) => suggested_paths.push(template.clone()),
            Err(error) => walk.warn(
                &location,
                format!(
                    "{error}, so it is not among the suggested paths; a parameter must be a \
                     whole segment"
                ),
            ),
        }
        let operation = format!("{location}/get");
        for (schema, location) in walk.answer_schemas(get, &operation) {
            walk.schema(schema, &location, "$", 0)?;
        }
    }
    let Walk {
        mut fields,
        mut warnings,
        ..
    } = walk;
    fields.sort_by(|a, b| (&a.item, &a.path).cmp(&(&b.item, &b.path)));
    fields.dedup();
    warnings.sort();
    warnings.dedup();
    // One operation's schema maps no property inside a mapped one, but operations differ: what
    // one maps whole, another may map field by field. The outer mapping stays.
    let mut left_out = Vec::new();
    while let Some(overlap) = find_overlap(&fields) {
        let inside = fields[overlap.outer].clone();
        let FieldMapping { item, path } = fields.remove(overlap.inner);
        left_out.push(LeftOutMapping { item, path, inside });
    }
    let unmatched_items = items
        .iter()
        .filter(|item| !fields.iter().any(|field| field.item == **item))
        .cloned()
        .collect();
    Ok(MappingSuggestion {
        paths: suggested_paths,
        fields,
        left_out,
        unmatched_items,
        warnings,
    })
}

/// A `$ref` met on a walk that leads back to a schema the walk is inside of.
struct Recursion {
    /// The reference as written.
    reference: String,
    /// The pointer of the schema led back to.
    target: String,
    /// Where the `$ref` is.
    at: String,
    /// The field path it was met at.
    path: String,
}

/// The state of one suggestion's walk through the description.
struct Walk<'d> {
    document: &'d Value,
    items: &'d [String],
    fields: Vec<FieldMapping>,
    warnings: Vec<MappingWarning>,
    /// The schemas that `$ref`s led to on the way to the current one, by pointer, with the field
    /// path each was met at.
    on_walk: Vec<(String, String)>,
    /// `$ref`s back to a schema on the walk, kept until that schema's walk is done, which says
    /// whether they left anything unmapped.
    recursions: Vec<Recursion>,
    walked: usize,
}

impl<'d> Walk<'d> {
    fn warn(&mut self, at: &str, message: String) {
        self.warnings.push(MappingWarning {
            at: at.to_owned(),
            message,
        });
    }

    /// `value` itself, or the object its `$ref` names (following a chain of them), with where it
    /// is; `None`, with a warning where the chain broke, when it names nothing here. This is for
    /// path items and responses, which a `$ref` stands for whole; schemas follow theirs as they
    /// are walked.
    fn follow(
        &mut self,
        mut value: &'d Value,
        mut location: String,
    ) -> Option<(&'d Value, String)> {
        let mut chain = Vec::new();
        while let Some(reference) = value.get("$ref") {
            match resolve(self.document, reference) {
                Ok((_, pointer)) if chain.contains(&pointer) => {
                    self.warn(
                        &location,
                        format!("$ref {reference} leads back to {pointer}, which leads here"),
                    );
                    return None;
                }
                Ok((target, pointer)) => {
                    chain.push(pointer.clone());
                    value = target;
                    location = pointer;
                }
                Err(why) => {
                    self.warn(&location, why);
                    return None;
                }
            }
        }
        Some((value, location))
    }

    /// The schemas of the JSON answers of `operation` (at `location`) that the suggestion reads,
    /// with where each is: every success answer's, or the `default` answer's when there is no
    /// success answer.
    fn answer_schemas(&mut self, operation: &'d Value, location: &str) -> Vec<(&'d Value, String)> {
        let Some(Value::Object(responses)) = operation.get("responses") else {
            return Vec::new();
        };
        let is_success = |status: &str| status.len() == 3 && status.starts_with('2');
        let read: Vec<(&String, &Value)> = if responses.keys().any(|status| is_success(status)) {
            responses
                .iter()
                .filter(|(status, _)| is_success(status))
                .collect()
        } else {
            responses
                .iter()
                .filter(|(status, _)| *status == "default")
                .collect()
        };
        let mut schemas = Vec::new();
        for (status, response) in read {
            let at = format!("{location}/responses/{}", escape(status));
            let Some((response, at)) = self.follow(response, at) else {
                continue;
            };
            let Some(Value::Object(content)) = response.get("content") else {
                continue;
            };
            for (media_type, media) in content {
                if let Some(schema) = media.get("schema")
                    && is_json_answer(media_type)
                {
                    schemas.push((
                        schema,
                        format!("{at}/content/{}/schema", escape(media_type)),
                    ));
                }
            }
        }
        schemas
    }

    /// Maps the properties of `schema` (at `location` in the description, describing the value at
    /// field path `path`, `depth` schemas down its walk) to items.
    fn schema(
        &mut self,
        schema: &'d Value,
        location: &str,
        path: &str,
        depth: usize,
    ) -> ApiResult<()> {
        self.walked += 1;
        if self.walked > MAX_SCHEMAS_WALKED {
            return Err(ApiError::invalid(
                "openapi",
                format!(
                    "the answers' schemas are more than the {MAX_SCHEMAS_WALKED} a suggestion \
                     walks (the limit was reached at {location}); suggest from a description of \
                     fewer operations"
                ),
            ));
        }
        if depth > MAX_SCHEMA_DEPTH {
            return Err(ApiError::invalid(
                "openapi",
                format!(
                    "schemas nest more than {MAX_SCHEMA_DEPTH} deep (at {location}, for {path})"
                ),
            ));
        }
        // A schema may also be `true` or `false` (OpenAPI 3.1), which says nothing of fields.
        let Some(schema) = schema.as_object() else {
            return Ok(());
        };
        if let Some(named) = schema.get("x-civitas-item") {
            match named
                .as_str()
                .filter(|item| self.items.iter().any(|known| known == item))
            {
                Some(item) => {
                    match FieldPath::parse(path) {
                        Ok(_) => self.fields.push(FieldMapping {
                            item: item.to_owned(),
                            path: path.to_owned(),
                        }),
                        Err(error) => self.warn(
                            location,
                            format!("x-civitas-item {named} is not mapped: {error}"),
                        ),
                    }
                    return Ok(());
                }
                None => self.warn(
                    location,
                    format!("x-civitas-item {named} is not an item of the resource"),
                ),
            }
        }
        if let Some(reference) = schema.get("$ref") {
            self.reference(reference, location, path, depth)?;
        }
        if let Some(element) = schema.get("items") {
            self.schema(
                element,
                &format!("{location}/items"),
                &format!("{path}[*]"),
                depth + 1,
            )?;
        }
        for keyword in ["allOf", "oneOf", "anyOf"] {
            if let Some(Value::Array(branches)) = schema.get(keyword) {
                for (index, branch) in branches.iter().enumerate() {
                    self.schema(
                        branch,
                        &format!("{location}/{keyword}/{index}"),
                        path,
                        depth + 1,
                    )?;
                }
            }
        }
        if let Some(Value::Object(properties)) = schema.get("properties") {
            for (name, property) in properties {
                let property_location = format!("{location}/properties/{}", escape(name));
                let step = if name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    format!(".{name}")
                } else {
                    format!("[\"{name}\"]")
                };
                // The step alone parses as it would at the end of the path, and checking it
                // costs the same however deep the property is.
                if let Err(error) = FieldPath::parse(&format!("${step}")) {
                    self.warn(
                        &property_location,
                        format!("{error}, so the property and what it holds are not mapped"),
                    );
                    continue;
                }
                let property_path = format!("{path}{step}");
                let explicit = property.get("x-civitas-item").is_some();
                if !explicit && self.items.iter().any(|item| item == name) {
                    self.fields.push(FieldMapping {
                        item: name.clone(),
                        path: property_path,
                    });
                    continue;
                }
                self.schema(property, &property_location, &property_path, depth + 1)?;
            }
        }
        Ok(())
    }

    /// Walks the schema that `reference` (met at `location`, for field path `path`) names, unless
    /// it leads back to a schema on the walk.
    fn reference(
        &mut self,
        reference: &'d Value,
        location: &str,
        path: &str,
        depth: usize,
    ) -> ApiResult<()> {
        let (target, pointer) = match resolve(self.document, reference) {
            Ok(resolved) => resolved,
            Err(why) => {
                self.warn(location, why);
                return Ok(());
            }
        };
        if let Some((_, met_at)) = self.on_walk.iter().find(|(on_walk, _)| *on_walk == pointer) {
            if met_at == path {
                self.warn(
                    location,
                    format!(
                        "$ref {reference} leads back to {pointer} for the same field {path}: the \
                         schemas name each other and describe nothing"
                    ),
                );
            } else {
                self.recursions.push(Recursion {
                    reference: reference.to_string(),
                    target: pointer,
                    at: location.to_owned(),
                    path: path.to_owned(),
                });
            }
            return Ok(());
        }
        let fields_before = self.fields.len();
        let recursions_before = self.recursions.len();
        self.on_walk.push((pointer.clone(), path.to_owned()));
        self.schema(target, &pointer, path, depth + 1)?;
        self.on_walk.pop();
        let (back_here, elsewhere): (Vec<Recursion>, Vec<Recursion>) = self
            .recursions
            .drain(recursions_before..)
            .partition(|recursion| recursion.target == pointer);
        self.recursions.extend(elsewhere);
        // The deeper levels would map again what this level mapped; when it mapped nothing,
        // nothing is lost.
        if self.fields.len() > fields_before {
            for recursion in back_here {
                self.warn(
                    &recursion.at,
                    format!(
                        "$ref {} leads back to a schema it lies inside of; field paths cannot \
                         repeat, so the fields below {} are not mapped and the gateway drops \
                         them: map the levels the answers use by hand",
                        recursion.reference, recursion.path
                    ),
                );
            }
        }
        Ok(())
    }
}

/// Whether answers of `media_type` are JSON that the gateway filters, and not an error's.
fn is_json_answer(media_type: &str) -> bool {
    let essence = media_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/")
            && essence.ends_with("+json")
            && essence != "application/problem+json")
}

/// The value a `$ref` names in `document`, with its JSON Pointer written plainly (`#/a~1b`,
/// however the reference spelled it, so that one place has one name); why not, when it names
/// none here.
fn resolve<'d>(document: &'d Value, reference: &Value) -> Result<(&'d Value, String), String> {
    let Some(text) = reference.as_str() else {
        return Err(format!("$ref {reference} is not a string"));
    };
    let Some(fragment) = text.strip_prefix('#') else {
        return Err(format!(
            "$ref {reference} is outside this description; only references within it (\"#/…\") \
             are followed, so what it describes is not mapped"
        ));
    };
    let pointer = percent_decode_str(fragment)
        .decode_utf8()
        .map_err(|_| format!("$ref {reference} is not UTF-8 once percent-decoded"))?;
    if !(pointer.is_empty() || pointer.starts_with('/')) {
        return Err(format!(
            "$ref {reference} is not a JSON Pointer (\"#/…\"); anchors are not followed"
        ));
    }
    let mut target = document;
    for token in pointer.split('/').skip(1) {
        let key = unescape(token)
            .ok_or_else(|| format!("$ref {reference} has a '~' that is not '~0' or '~1'"))?;
        target = match target {
            Value::Object(fields) => fields.get(&key),
            Value::Array(elements) => key
                .parse::<usize>()
                .ok()
                .and_then(|index| elements.get(index)),
            _ => None,
        }
        .ok_or_else(|| format!("$ref {reference} names nothing in this description"))?;
    }
    Ok((target, format!("#{pointer}")))
}

/// A JSON Pointer token for `key`: `~` as `~0`, `/` as `~1`.
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// The key a JSON Pointer token stands for; `None` for a `~` followed by neither `0` nor `1`.
fn unescape(token: &str) -> Option<String> {
    let mut key = String::with_capacity(token.len());
    let mut chars = token.chars();
    while let Some(c) = chars.next() {
        key.push(match c {
            '~' => match chars.next() {
                Some('0') => '~',
                Some('1') => '/',
                _ => return None,
            },
            c => c,
        });
    }
    Some(key)
}

#[cfg(test)]
mod tests {
    use civitas_core::service::ServiceDraft;
    use serde_json::json;

    use super::*;

    const ITEMS: [&str; 5] = ["id_number", "name", "phone", "address", "balance"];

    /// Where the schema of [`answering`]'s operation is.
    const SCHEMA: &str = "#/paths/~1people/get/responses/200/content/application~1json/schema";

    /// A description whose one GET operation, `/people`, answers 200 with `schema` in
    /// `application/json`, beside the component schemas `schemas`.
    fn answering(schema: Value, schemas: Value) -> Value {
        json!({
            "openapi": "3.1.0",
            "paths": { "/people": { "get": { "responses": { "200": { "content": {
                "application/json": { "schema": schema }
            } } } } } },
            "components": { "schemas": schemas }
        })
    }

    fn suggestion_for(description: &Value) -> ApiResult<MappingSuggestion> {
        let items: Vec<String> = ITEMS.iter().map(|item| (*item).to_owned()).collect();
        suggest(description, &items)
    }

    /// Checks the suggested fields (as `(item, path)`, in the suggestion's order: by item, then
    /// path) and warnings (as `(at, part of the message)`, in order of place) for `description`,
    /// and that its paths and fields make a service draft that validates.
    fn check(description: Value, fields: &[(&str, &str)], warnings: &[(&str, &str)]) {
        let suggestion = suggestion_for(&description).unwrap();
        let found: Vec<(&str, &str)> = suggestion
            .fields
            .iter()
            .map(|field| (field.item.as_str(), field.path.as_str()))
            .collect();
        assert_eq!(found, fields, "{suggestion:#?}");
        assert_eq!(
            suggestion.warnings.len(),
            warnings.len(),
            "{:#?}",
            suggestion.warnings
        );
        for (warning, (at, message)) in suggestion.warnings.iter().zip(warnings) {
            assert_eq!(warning.at, *at, "{warning:?}");
            assert!(warning.message.contains(message), "{warning:?}");
        }
        let draft: ServiceDraft = serde_json::from_value(json!({
            "code": "people", "resource": "320100-B01-000001", "upstream": "http://upstream.test",
            "paths": suggestion.paths, "fields": suggestion.fields
        }))
        .unwrap();
        draft.validate().unwrap();
    }

    #[test]
    fn every_branch_of_a_composition_is_mapped() {
        let schema = json!({ "allOf": [
            { "$ref": "#/components/schemas/Identity" },
            { "type": "object", "properties": {
                "contact": { "oneOf": [
                    { "type": "object", "properties": { "phone": { "type": "string" } } },
                    { "type": "object", "properties": {
                        "address": { "type": "string" }, "phone": { "type": "string" }
                    } }
                ] },
                "holdings": { "type": "array", "items": { "anyOf": [
                    { "type": "object", "properties": { "balance": { "type": "number" } } },
                    { "type": "null" }
                ] } }
            } }
        ] });
        // OpenAPI 3.1's null type and 3.0's `nullable` change nothing.
        let identity = json!({ "type": ["object", "null"], "properties": {
            "id_number": { "type": ["string", "null"] },
            "name": { "type": "string", "nullable": true }
        } });
        check(
            answering(schema, json!({ "Identity": identity })),
            &[
                ("address", "$.contact.address"),
                ("balance", "$.holdings[*].balance"),
                ("id_number", "$.id_number"),
                ("name", "$.name"),
                ("phone", "$.contact.phone"),
            ],
            &[],
        );
    }

    #[test]
    fn references_are_followed_through_chains_and_pointer_escapes() {
        let schema = json!({ "properties": {
            "holder": { "$ref": "#/components/schemas/Holder" },
            "slashed": { "$ref": "#/components/schemas/a~1b" },
            "tilde": { "$ref": "#/components/schemas/c~0d" },
            "encoded": { "$ref": "#/components/schemas/%E4%BD%8F%20%E5%9D%80" },
            "element": { "$ref": "#/components/schemas/Pair/allOf/1" },
            // The item of what the reference describes is named beside it.
            "residence": { "$ref": "#/components/schemas/Named", "x-civitas-item": "address" }
        } });
        let schemas = json!({
            "Holder": { "$ref": "#/components/schemas/Person" },
            "Person": { "$ref": "#/components/schemas/Named" },
            "Named": { "properties": { "name": {} } },
            "a/b": { "properties": { "phone": {} } },
            "c~d": { "properties": { "id_number": {} } },
            "住 址": { "properties": { "address": {} } },
            "Pair": { "allOf": [{}, { "properties": { "balance": {} } }] }
        });
        check(
            answering(schema, schemas),
            &[
                ("address", "$.encoded.address"),
                ("address", "$.residence"),
                ("balance", "$.element.balance"),
                ("id_number", "$.tilde.id_number"),
                ("name", "$.holder.name"),
                ("phone", "$.slashed.phone"),
            ],
            &[],
        );
    }

    #[test]
    fn references_that_do_not_resolve_are_reported_where_they_are_met() {
        let schema = json!({ "properties": {
            "name": { "type": "string" },
            "external": { "$ref": "common.yaml#/components/schemas/Address" },
            "missing": { "$ref": "#/components/schemas/Missing" },
            "escape": { "$ref": "#/components/schemas/a~2b" },
            "anchor": { "$ref": "#Person" },
            "number": { "$ref": 7 },
            "person": { "$ref": "#/components/schemas/Person" }
        } });
        let schemas = json!({ "Person": { "properties": {
            "home": { "$ref": "https://schemas.test/address.json" },
            "phone": {}
        } } });
        let at = |property: &str| format!("{SCHEMA}/properties/{property}");
        check(
            answering(schema, schemas),
            &[("name", "$.name"), ("phone", "$.person.phone")],
            &[
                (
                    "#/components/schemas/Person/properties/home",
                    "$ref \"https://schemas.test/address.json\" is outside this description",
                ),
                (&at("anchor"), "$ref \"#Person\" is not a JSON Pointer"),
                (
                    &at("escape"),
                    "$ref \"#/components/schemas/a~2b\" has a '~' that is not '~0' or '~1'",
                ),
                (
                    &at("external"),
                    "$ref \"common.yaml#/components/schemas/Address\" is outside this description",
                ),
                (
                    &at("missing"),
                    "$ref \"#/components/schemas/Missing\" names nothing in this description",
                ),
                (&at("number"), "$ref 7 is not a string"),
            ],
        );
    }

    #[test]
    fn a_recursive_schema_is_walked_once() {
        let schema = json!({ "properties": {
            "node": { "$ref": "#/components/schemas/Node" },
            "person": { "$ref": "#/components/schemas/Person" },
            "category": { "$ref": "#/components/schemas/Category" },
            "loop": { "$ref": "#/components/schemas/Loop" }
        } });
        let schemas = json!({
            "Node": { "properties": {
                "id_number": {},
                "children": { "type": "array", "items": { "$ref": "#/components/schemas/Node" } },
                "parent": { "$ref": "#/components/schemas/Node" }
            } },
            // Each refers to the other.
            "Person": { "properties": {
                "name": {}, "employer": { "$ref": "#/components/schemas/Organization" }
            } },
            "Organization": { "properties": {
                "address": {}, "director": { "$ref": "#/components/schemas/Person" }
            } },
            // Recursive, but with no item to map again: nothing to say.
            "Category": { "properties": {
                "code": {}, "parent": { "$ref": "#/components/schemas/Category" }
            } },
            // References that lead round to themselves describe nothing.
            "Loop": { "$ref": "#/components/schemas/Round" },
            "Round": { "allOf": [{ "$ref": "#/components/schemas/Loop" }] }
        });
        check(
            answering(schema, schemas),
            &[
                ("address", "$.person.employer.address"),
                ("id_number", "$.node.id_number"),
                ("name", "$.person.name"),
            ],
            &[
                (
                    "#/components/schemas/Node/properties/children/items",
                    "the fields below $.node.children[*] are not mapped",
                ),
                (
                    "#/components/schemas/Node/properties/parent",
                    "the fields below $.node.parent are not mapped",
                ),
                (
                    "#/components/schemas/Organization/properties/director",
                    "the fields below $.person.employer.director are not mapped",
                ),
                (
                    "#/components/schemas/Round/allOf/0",
                    "leads back to #/components/schemas/Loop for the same field $.loop",
                ),
            ],
        );
    }

    /// A node that refers to itself many times takes one walk of each reference: with only a cap
    /// on depth, it would take 20 to the power of the cap, and the bound on the work would refuse
    /// it.
    #[test]
    fn a_schema_referring_to_itself_many_times_is_little_work() {
        let mut properties: serde_json::Map<String, Value> = (0..20)
            .map(|n| {
                (
                    format!("link{n}"),
                    json!({ "$ref": "#/components/schemas/Node" }),
                )
            })
            .collect();
        properties.insert("name".into(), json!({}));
        let schemas = json!({ "Node": { "properties": properties } });
        let description = answering(json!({ "$ref": "#/components/schemas/Node" }), schemas);
        let suggestion = suggestion_for(&description).unwrap();
        assert_eq!(suggestion.fields.len(), 1, "{suggestion:?}");
        assert_eq!(suggestion.warnings.len(), 20, "{suggestion:?}");
    }

    #[test]
    fn the_answers_read_are_the_successful_ones_in_json() {
        let content = |media_type: &str, property: &str| json!({ "content": { media_type: { "schema": { "properties": { property: {} } } } } });
        let description = json!({
            "openapi": "3.0.3",
            "paths": {
                "/created": { "get": { "responses": {
                    "201": content("application/json; charset=utf-8", "id_number"),
                    "2XX": content("application/hal+json", "phone"),
                    "200": content("application/problem+json", "name"),
                    "404": content("application/json", "address"),
                    "default": content("application/json", "address")
                } } },
                // Without a success answer, the default one is read, through references.
                "/fallback": { "get": { "responses": {
                    "400": content("application/json", "address"),
                    "default": { "$ref": "#/components/responses/Fallback" }
                } } },
                "/gone": { "get": { "responses": {
                    "200": { "$ref": "#/components/responses/Gone" },
                    "203": content("text/plain", "address")
                } } },
                "/posted": { "post": { "responses": {
                    "200": content("application/json", "address")
                } } }
            },
            "components": { "responses": {
                "Fallback": { "$ref": "#/components/responses/Found" },
                "Found": content("Application/JSON", "balance")
            } }
        });
        let suggestion = suggestion_for(&description).unwrap();
        assert_eq!(suggestion.paths, ["/created", "/fallback", "/gone"]);
        check(
            description,
            &[
                ("balance", "$.balance"),
                ("id_number", "$.id_number"),
                ("phone", "$.phone"),
            ],
            &[(
                "#/paths/~1gone/get/responses/200",
                "$ref \"#/components/responses/Gone\" names nothing",
            )],
        );
    }

    #[test]
    fn path_templates_that_are_no_path_pattern_are_reported() {
        let get = json!({ "get": { "responses": { "200": { "content": { "application/json": {
            "schema": { "properties": { "name": {} } }
        } } } } } });
        // In the order of their keys, whether or not the map keeps the document's order.
        let description = json!({
            "openapi": "3.1.0",
            "paths": {
                "/files/{name}.pdf": get,
                "/orgs": { "$ref": "#/components/pathItems/Orgs" },
                "/people/": get,
                "/people/{id}": get,
                "/shared": { "$ref": "paths.yaml#/shared" }
            },
            "components": { "pathItems": { "Orgs": get } }
        });
        let suggestion = suggestion_for(&description).unwrap();
        assert_eq!(suggestion.paths, ["/orgs", "/people/{id}"]);
        check(
            description,
            &[("name", "$.name")],
            &[
                (
                    "#/paths/~1files~1{name}.pdf",
                    "\"/files/{name}.pdf\" has a malformed segment \"{name}.pdf\", so it is not \
                     among the suggested paths",
                ),
                (
                    "#/paths/~1people~1",
                    "\"/people/\" has a malformed segment \"\"",
                ),
                (
                    "#/paths/~1shared",
                    "$ref \"paths.yaml#/shared\" is outside this description",
                ),
            ],
        );
    }

    #[test]
    fn what_no_field_path_can_name_is_reported() {
        let schema = json!({ "properties": {
            "": { "properties": { "name": {} } },
            "a\"]b": { "properties": { "phone": {} } },
            "住址": { "x-civitas-item": "address" },
            "tel": { "x-civitas-item": "mobile", "properties": { "phone": {} } }
        } });
        check(
            answering(schema, json!({})),
            &[("address", "$[\"住址\"]"), ("phone", "$.tel.phone")],
            &[
                (
                    &format!("{SCHEMA}/properties/"),
                    "field path \"$.\": an empty or malformed key after '.', so the property \
                     and what it holds are not mapped",
                ),
                (
                    &format!("{SCHEMA}/properties/a\"]b"),
                    "so the property and what it holds are not mapped",
                ),
                (
                    &format!("{SCHEMA}/properties/tel"),
                    "x-civitas-item \"mobile\" is not an item of the resource",
                ),
            ],
        );
        check(
            answering(json!({ "x-civitas-item": "name" }), json!({})),
            &[],
            &[(
                SCHEMA,
                "x-civitas-item \"name\" is not mapped: field path \"$\"",
            )],
        );
    }

    #[test]
    fn descriptions_that_cannot_be_read_are_refused_naming_the_field() {
        let mut deep = json!({ "properties": { "name": {} } });
        for _ in 0..=MAX_SCHEMA_DEPTH {
            deep = json!({ "items": deep });
        }
        // Each schema names the next twice: 2 to the 30th walks without the bound.
        let doubling: serde_json::Map<String, Value> = (0..30)
            .map(|n| {
                let next = json!({ "$ref": format!("#/components/schemas/S{}", n + 1) });
                (
                    format!("S{n}"),
                    json!({ "properties": { "a": next, "b": next } }),
                )
            })
            .collect();
        let cases = [
            (json!([]), "openapi", "must be an OpenAPI description"),
            (
                json!({ "swagger": "2.0", "paths": {} }),
                "openapi.swagger",
                "Swagger 2.0 descriptions are not read",
            ),
            (json!({ "paths": {} }), "openapi.openapi", "3.x"),
            (
                json!({ "openapi": "3.0.3", "paths": [] }),
                "openapi.paths",
                "must be an object",
            ),
            (json!({ "openapi": "3.0.3" }), "openapi.paths", "is missing"),
            (
                answering(deep, json!({})),
                "openapi",
                "schemas nest more than 64 deep",
            ),
            (
                answering(
                    json!({ "$ref": "#/components/schemas/S0" }),
                    Value::Object(doubling),
                ),
                "openapi",
                "more than the 20000 a suggestion walks",
            ),
        ];
        for (description, expected_field, expected_message) in cases {
            match suggestion_for(&description) {
                Err(ApiError::InvalidField { field, message }) => {
                    assert_eq!(field, expected_field, "{message}");
                    assert!(message.contains(expected_message), "{message}");
                }
                other => panic!("{expected_field}: {other:?}"),
            }
        }
    }

    /// The API's description of the endpoint states the bounds on the work.
    #[test]
    fn the_endpoint_s_description_states_the_bounds() {
        use utoipa::OpenApi;

        let spec = serde_json::to_value(crate::openapi::ApiDoc::openapi()).unwrap();
        let description =
            spec["paths"]["/api/v1/services/mapping-from-openapi"]["post"]["description"]
                .as_str()
                .unwrap();
        for bound in [MAX_SCHEMAS_WALKED, MAX_SCHEMA_DEPTH] {
            assert!(description.contains(&bound.to_string()), "{bound}");
        }
    }
}
