//! Reading definitions: syntax and shape errors name the line and column (and the path).

use civitas_scenario::{Definition, DefinitionError, Format, SyntaxError};

use crate::support::BASE;

fn syntax_error(result: Result<Definition, DefinitionError>) -> SyntaxError {
    match result {
        Err(DefinitionError::Syntax(error)) => error,
        other => panic!("expected a syntax error, got {other:?}"),
    }
}

#[test]
fn the_base_definition_parses_in_order() {
    let definition = Definition::from_yaml(BASE).unwrap();
    assert_eq!(definition.code.as_str(), "test-scenario");
    let steps: Vec<&str> = definition.steps.names().collect();
    assert_eq!(steps, ["person", "account", "history"]);
    let person = definition.steps.get("person").unwrap();
    // The short form of an output is just its path, of type any.
    assert_eq!(person.outputs.get("name").unwrap().path, "$.name");
    assert_eq!(
        definition.computed.get("doubled").unwrap().expression,
        "computed.amount * 2.0"
    );
}

#[test]
fn yaml_syntax_errors_name_line_and_column() {
    let broken = "code: test\nname: [unclosed\nsubject: x\n";
    let error = syntax_error(Definition::from_yaml(broken));
    assert!(error.line.is_some() && error.column.is_some(), "{error:?}");
    assert!(error.to_string().starts_with("line "), "{error}");

    // YAML forbids tabs for indentation.
    let tabbed = "code: test\nname: x\nsteps:\n\tperson: {}\n";
    let error = syntax_error(Definition::from_yaml(tabbed));
    assert_eq!((error.line, error.column), (Some(4), Some(1)), "{error}");
    assert!(error.message.contains("cannot start any token"), "{error}");
}

#[test]
fn yaml_shape_errors_name_the_path_and_line() {
    let misspelled = BASE.replace(
        "    timeout_ms: 1000\n    not_found: empty",
        "    timeout_ms: 1000\n    not_fund: empty",
    );
    let error = syntax_error(Definition::from_yaml(&misspelled));
    let line = BASE
        .lines()
        .position(|line| line.contains("not_found: empty"))
        .unwrap()
        + 1;
    assert_eq!(error.line, Some(line), "{error}");
    assert!(error.message.contains("steps.account"), "{error}");
    assert!(
        error.message.contains("unknown field `not_fund`"),
        "{error}"
    );

    let bad_code = BASE.replace("11320100013201004T", "11320100013201004U");
    let error = syntax_error(Definition::from_yaml(&bad_code));
    assert!(error.message.contains("steps.person.calls"), "{error}");
    assert!(error.message.contains("check character"), "{error}");
    assert!(error.line.is_some());

    let bad_type = BASE.replace("{type: integer, min: 1, max: 12}", "{type: int}");
    let error = syntax_error(Definition::from_yaml(&bad_type));
    assert!(error.message.contains("inputs.months.type"), "{error}");
    assert!(
        error.message.contains("citizen_id"),
        "lists the types: {error}"
    );
}

#[test]
fn a_name_given_twice_is_an_error() {
    let twice = BASE.replace(
        "  history:\n",
        "  person:\n    calls: {organization: 11320100013201004T, system: population, service: persons}\n    path: /x\n  history:\n",
    );
    let error = syntax_error(Definition::from_yaml(&twice));
    assert!(error.message.contains("`person` is given twice"), "{error}");
    assert!(error.line.is_some());
}

#[test]
fn json_definitions_round_trip_and_name_places() {
    let definition = Definition::from_yaml(BASE).unwrap();
    let json = serde_json::to_string_pretty(&definition).unwrap();
    assert_eq!(Definition::from_json(&json).unwrap(), definition);
    assert_eq!(Format::from_file_name("x.JSON"), Format::Json);
    assert_eq!(Format::from_file_name("x.yaml"), Format::Yaml);

    let broken = "{\n  \"code\": \"x\",\n  \"name\" \"y\"\n}";
    let error = syntax_error(Definition::from_json(broken));
    assert_eq!((error.line, error.column), (Some(3), Some(10)), "{error}");

    let wrong = json.replacen("\"timeout_ms\": 1000", "\"timeout_ms\": \"soon\"", 1);
    let error = syntax_error(Definition::from_json(&wrong));
    assert_eq!(
        error.path.as_deref(),
        Some("steps.person.timeout_ms"),
        "{error}"
    );
    assert!(error.line.is_some());
}
