//! CEL in scenarios: compiling expressions once at publication, checking what they refer to, the
//! few helper functions scenarios may call, and converting values between JSON and CEL.
//!
//! An expression sees four variables: `inputs`, `params`, `steps` (each step a map of `found` and
//! its declared outputs) and `run` (`date`, `month`, `previous_month` of the run). Computed values
//! also see `computed`, the values computed before them.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use cel::common::ast::{EntryExpr, Expr, IdedExpr};
use cel::objects::{Key, Map};
use cel::{Context, Env, ExecutionError, Program, Value};
use civitas_core::CitizenId;
use jiff::civil::Date;

use crate::definition::Definition;
use crate::error::Problem;

/// Functions of CEL's standard library a scenario may call. Operators (`_+_`, `@in`, …) and the
/// macros (`has`, `all`, `exists`, `exists_one`, `map`, `filter`) come on top.
const STANDARD_FUNCTIONS: &[&str] = &[
    "size",
    "contains",
    "startsWith",
    "endsWith",
    "int",
    "uint",
    "double",
    "string",
    "bool",
    "type",
    "dyn",
];

/// The helpers this crate adds, documented in `scenarios/README.md`. Each is pure: `age` reads the
/// run's date, which the engine fixes for the run, never a clock.
const HELPER_FUNCTIONS: &[&str] = &[
    "min",
    "max",
    "round",
    "age",
    "birth_date",
    "consecutive_months",
];

/// Words CEL reserves; a name in a definition that is one of them could not be written as
/// `inputs.NAME` in an expression.
const RESERVED_WORDS: &[&str] = &[
    "as",
    "break",
    "const",
    "continue",
    "else",
    "false",
    "for",
    "function",
    "if",
    "import",
    "in",
    "let",
    "loop",
    "package",
    "namespace",
    "null",
    "return",
    "true",
    "var",
    "void",
    "while",
];

/// The fields of the `run` variable.
pub(crate) const RUN_FIELDS: &[&str] = &["date", "month", "previous_month"];

/// The longest expression a definition may hold, in characters.
pub(crate) const MAX_EXPRESSION_LENGTH: usize = 4_000;
/// The most operators an expression may hold (`.`, `[`, `(` and each character of the others
/// count): CEL's parser, the checks and the evaluator recurse once per nesting level, and a long
/// left-nested chain (`0 + 0 + … == 0`, `x[0][0]…`) is as deep as it is long, so an unbounded one
/// would exhaust a thread's stack and abort the server.
pub(crate) const MAX_EXPRESSION_OPERATORS: usize = 300;
/// The deepest an expression may nest brackets: `(`, `[`, `{`.
pub(crate) const MAX_EXPRESSION_NESTING: usize = 24;
/// The deepest comprehensions (`all`, `exists`, `exists_one`, `map`, `filter`) may nest: the
/// work multiplies with each level, so 30 nested `all`s over ten elements would never finish.
pub(crate) const MAX_COMPREHENSION_NESTING: usize = 2;

/// Checks `source` against the size limits before it is parsed: `None` when it is within them,
/// else what is wrong. Characters in string literals count too: telling literals apart would need
/// CEL's whole lexer (raw, triple-quoted and bytes literals), and a count that is too high only
/// refuses an expression that is needlessly long anyway.
fn exceeds_limits(source: &str) -> Option<String> {
    let length = source.chars().count();
    if length > MAX_EXPRESSION_LENGTH {
        return Some(format!(
            "the expression has {length} characters; at most {MAX_EXPRESSION_LENGTH} are allowed"
        ));
    }
    let mut operators = 0usize;
    let mut depth = 0usize;
    let mut deepest = 0usize;
    let mut word = String::new();
    for character in source.chars().chain([' ']) {
        if character.is_alphanumeric() || character == '_' {
            word.push(character);
            continue;
        }
        if word == "in" {
            operators += 1;
        }
        word.clear();
        match character {
            '(' | '[' | '{' => {
                operators += 1;
                depth += 1;
                deepest = deepest.max(depth);
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            '+' | '-' | '*' | '/' | '%' | '=' | '!' | '<' | '>' | '&' | '|' | '?' | ':' | '.' => {
                operators += 1;
            }
            _ => {}
        }
    }
    if deepest > MAX_EXPRESSION_NESTING {
        return Some(format!(
            "the expression nests brackets {deepest} deep; at most {MAX_EXPRESSION_NESTING} are allowed"
        ));
    }
    if operators > MAX_EXPRESSION_OPERATORS {
        return Some(format!(
            "the expression has {operators} operators, selections and brackets; at most \
             {MAX_EXPRESSION_OPERATORS} are allowed"
        ));
    }
    None
}

/// The CEL environment every scenario compiles and runs with: the standard library and macros.
pub(crate) fn environment() -> Arc<Env> {
    Arc::new(Env::stdlib())
}

/// Whether `name` can name an input, parameter, step, output or computed value: it must read as a
/// CEL field name, so lower-case ASCII letters, digits and `_`, starting with a letter.
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    let mut characters = name.chars();
    let first_ok = characters
        .next()
        .is_some_and(|first| first.is_ascii_lowercase());
    let rest_ok = characters.all(|character| {
        character.is_ascii_lowercase() || character.is_ascii_digit() || character == '_'
    });
    if !first_ok || !rest_ok || name.len() > 64 {
        return Err(format!(
            "`{name}` is not a valid name: use up to 64 lower-case letters, digits and `_`, starting with a letter"
        ));
    }
    if RESERVED_WORDS.contains(&name) {
        return Err(format!("`{name}` is a word CEL reserves"));
    }
    Ok(())
}

/// What an expression may refer to besides inputs, parameters, steps and `run`.
pub(crate) enum Section<'a> {
    Rule,
    /// A computed value, which may use the computed values declared before it.
    Computed {
        earlier: &'a [String],
    },
}

/// An expression compiled at publication, with the steps it reads (so a rule over a failed step is
/// reported as not evaluated rather than as false).
pub(crate) struct CompiledExpression {
    pub(crate) program: Program,
    pub(crate) steps_used: BTreeSet<String>,
}

/// Compiles `source` and checks every name it uses against `definition`. Problems are added to
/// `problems`, placed at `place`; `None` when there was any.
pub(crate) fn compile(
    environment: &Env,
    definition: &Definition,
    section: Section<'_>,
    source: &str,
    place: &str,
    problems: &mut Vec<Problem>,
) -> Option<CompiledExpression> {
    if source.trim().is_empty() {
        problems.push(Problem::new(place, "the expression is empty"));
        return None;
    }
    if let Some(message) = exceeds_limits(source) {
        problems.push(Problem::new(place, message));
        return None;
    }
    let program = match environment.compile(source) {
        Ok(program) => program,
        Err(errors) => {
            for error in &errors.errors {
                // The parser counts lines and columns from 1.
                let (line, column) = error.pos;
                let message = error
                    .msg
                    .strip_prefix("Syntax error: ")
                    .unwrap_or(&error.msg);
                problems.push(Problem::new(
                    place,
                    format!(
                        "CEL syntax error at {}: {message}",
                        describe_position(source, line.max(1) as usize, column.max(1) as usize)
                    ),
                ));
            }
            if errors.errors.is_empty() {
                problems.push(Problem::new(place, "the expression does not parse as CEL"));
            }
            return None;
        }
    };
    let mut walker = Walker {
        definition,
        section,
        source,
        program: &program,
        place,
        bound: Vec::new(),
        comprehension_depth: 0,
        steps_used: BTreeSet::new(),
        problem_count: 0,
        problems,
    };
    walker.walk(program.expression());
    if walker.problem_count > 0 {
        return None;
    }
    let steps_used = walker.steps_used;
    Some(CompiledExpression {
        program,
        steps_used,
    })
}

fn describe_position(source: &str, line: usize, column: usize) -> String {
    if source.trim_end().contains('\n') {
        format!("line {line}, column {column} of the expression")
    } else {
        format!("column {column}")
    }
}

/// Walks an expression's syntax tree, checking each variable reference and function name.
struct Walker<'a> {
    definition: &'a Definition,
    section: Section<'a>,
    source: &'a str,
    program: &'a Program,
    place: &'a str,
    /// Variables bound by the comprehensions around the current node (`x` in `all(x, …)`).
    bound: Vec<String>,
    /// How many comprehension bodies the current node is in.
    comprehension_depth: usize,
    steps_used: BTreeSet<String>,
    problem_count: usize,
    problems: &'a mut Vec<Problem>,
}

impl Walker<'_> {
    fn report(&mut self, node: &IdedExpr, message: String) {
        let position = self
            .program
            .source_info()
            .offset_for(node.id)
            .map(|(start, _)| {
                let (line, column) = line_and_column(self.source, start as usize);
                format!(" (at {})", describe_position(self.source, line, column))
            })
            .unwrap_or_default();
        self.problem_count += 1;
        self.problems
            .push(Problem::new(self.place, format!("{message}{position}")));
    }

    fn walk(&mut self, node: &IdedExpr) {
        match &node.expr {
            Expr::Unspecified | Expr::Literal(_) => {}
            Expr::Ident(_) | Expr::Select(_) => {
                if let Some(segments) = qualified_name(node) {
                    self.check_reference(node, &segments);
                } else if let Expr::Select(select) = &node.expr {
                    self.walk(&select.operand);
                }
            }
            Expr::Call(call) => {
                let name = call.func_name.as_str();
                let operator = name.starts_with(['_', '!', '-', '@']);
                if !operator
                    && !STANDARD_FUNCTIONS.contains(&name)
                    && !HELPER_FUNCTIONS.contains(&name)
                {
                    self.report(
                        node,
                        format!(
                            "unknown function `{name}`; scenarios may call {} and the helpers {}",
                            STANDARD_FUNCTIONS.join(", "),
                            HELPER_FUNCTIONS.join(", ")
                        ),
                    );
                }
                if let Some(target) = &call.target {
                    self.walk(target);
                }
                for argument in &call.args {
                    self.walk(argument);
                }
            }
            Expr::Comprehension(comprehension) => {
                self.walk(&comprehension.iter_range);
                self.walk(&comprehension.accu_init);
                if self.comprehension_depth == MAX_COMPREHENSION_NESTING {
                    self.report(
                        node,
                        format!(
                            "comprehensions (all, exists, exists_one, map, filter) nest at most \
                             {MAX_COMPREHENSION_NESTING} deep: each level multiplies the work"
                        ),
                    );
                    return;
                }
                self.comprehension_depth += 1;
                let depth = self.bound.len();
                self.bound.push(comprehension.iter_var.clone());
                if let Some(second) = &comprehension.iter_var2 {
                    self.bound.push(second.clone());
                }
                self.bound.push(comprehension.accu_var.clone());
                self.walk(&comprehension.loop_cond);
                self.walk(&comprehension.loop_step);
                self.walk(&comprehension.result);
                self.bound.truncate(depth);
                self.comprehension_depth -= 1;
            }
            Expr::List(list) => {
                for element in &list.elements {
                    self.walk(element);
                }
            }
            Expr::Map(map) => {
                for entry in &map.entries {
                    if let EntryExpr::MapEntry(entry) = &entry.expr {
                        self.walk(&entry.key);
                        self.walk(&entry.value);
                    }
                }
            }
            Expr::Struct(structure) => {
                self.report(
                    node,
                    format!(
                        "`{}{{…}}` builds a message, which scenarios do not have",
                        structure.type_name
                    ),
                );
            }
        }
    }

    fn check_reference(&mut self, node: &IdedExpr, segments: &[&str]) {
        // Problems point at the start of the reference (`inputs` in `inputs.month`), where the
        // author reads it, rather than at the last selection.
        let node = root_identifier(node);
        let root = segments[0];
        if self.bound.iter().any(|bound| bound == root) {
            return;
        }
        let definition = self.definition;
        match root {
            "inputs" => match segments.get(1) {
                None => self.report(
                    node,
                    "`inputs` must be followed by an input's name, as in `inputs.NAME`".into(),
                ),
                Some(name) if !definition.inputs.contains(name) => self.report(
                    node,
                    format!(
                        "unknown input `{name}`; the inputs are {}",
                        list_names(definition.inputs.names())
                    ),
                ),
                Some(_) => {}
            },
            "params" => match segments.get(1) {
                None => self.report(
                    node,
                    "`params` must be followed by a parameter's name, as in `params.NAME`".into(),
                ),
                Some(name) if !definition.parameters.contains(name) => self.report(
                    node,
                    format!(
                        "unknown parameter `{name}`; the parameters are {}",
                        list_names(definition.parameters.names())
                    ),
                ),
                Some(_) => {}
            },
            "steps" => {
                let Some(step_name) = segments.get(1) else {
                    self.report(
                        node,
                        "`steps` must be followed by a step and an output, as in `steps.STEP.found`"
                            .into(),
                    );
                    return;
                };
                let Some(step) = definition.steps.get(step_name) else {
                    self.report(
                        node,
                        format!(
                            "unknown step `{step_name}`; the steps are {}",
                            list_names(definition.steps.names())
                        ),
                    );
                    return;
                };
                self.steps_used.insert((*step_name).to_owned());
                match segments.get(2) {
                    None => self.report(
                        node,
                        format!(
                            "`steps.{step_name}` must be followed by `found` or a declared output, as in `steps.{step_name}.found`"
                        ),
                    ),
                    Some(&"found") => {}
                    Some(output) if !step.outputs.contains(output) => self.report(
                        node,
                        format!(
                            "unknown output `{output}` of step `{step_name}`; its outputs are found, {}",
                            list_names(step.outputs.names())
                        ),
                    ),
                    Some(_) => {}
                }
            }
            "run" => match segments.get(1) {
                Some(field) if RUN_FIELDS.contains(field) => {}
                _ => self.report(
                    node,
                    format!(
                        "`run` has the fields {}",
                        list_names(RUN_FIELDS.iter().copied())
                    ),
                ),
            },
            "computed" => match &self.section {
                Section::Rule => self.report(
                    node,
                    "rules cannot use computed values: those are computed once every rule held"
                        .into(),
                ),
                Section::Computed { earlier } => match segments.get(1) {
                    Some(name) if earlier.iter().any(|earlier| earlier == name) => {}
                    Some(name) => self.report(
                        node,
                        format!(
                            "`computed.{name}` is not a computed value declared before this one"
                        ),
                    ),
                    None => self.report(
                        node,
                        "`computed` must be followed by a computed value's name".into(),
                    ),
                },
            },
            other => self.report(
                node,
                format!(
                    "unknown name `{other}`; expressions use inputs.NAME, params.NAME, steps.STEP.OUTPUT and run.FIELD"
                ),
            ),
        }
    }
}

fn root_identifier(node: &IdedExpr) -> &IdedExpr {
    match &node.expr {
        Expr::Select(select) => root_identifier(&select.operand),
        _ => node,
    }
}

/// The dotted name a chain of field selections on an identifier spells, such as
/// `["steps", "fund", "balance"]`, including a presence test (`has(steps.fund.balance)`).
fn qualified_name(node: &IdedExpr) -> Option<Vec<&str>> {
    let mut segments = Vec::new();
    let mut current = node;
    loop {
        match &current.expr {
            Expr::Ident(name) => {
                segments.push(name.as_str());
                segments.reverse();
                return Some(segments);
            }
            Expr::Select(select) => {
                segments.push(select.field.as_str());
                current = &select.operand;
            }
            _ => return None,
        }
    }
}

fn list_names<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<String> = names.map(|name| format!("`{name}`")).collect();
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

/// The line and column (both from 1) of the character at `offset` in `source`.
fn line_and_column(source: &str, offset: usize) -> (usize, usize) {
    let mut line = 1;
    let mut column = 1;
    for character in source.chars().take(offset) {
        if character == '\n' {
            line += 1;
            column = 1;
        } else {
            column += 1;
        }
    }
    (line, column)
}

/// The context a run evaluates its expressions in: the variables, and the helpers bound to the
/// run's date.
pub(crate) fn run_context(
    environment: &Arc<Env>,
    run_date: Date,
    variables: Vec<(&'static str, Value)>,
) -> Context<'static, 'static> {
    let mut context = Context::with_env(Arc::clone(environment));
    // The standard environment declares none of these names, so adding them cannot conflict.
    let added = [
        context.add_function("min", cel::functions::min),
        context.add_function("max", cel::functions::max),
        context.add_function("round", |number: Value, places: Value| {
            round(&number, &places)
        }),
        context.add_function("age", move |id: Value| age(&id, run_date)),
        context.add_function("birth_date", |id: Value| birth_date(&id)),
        context.add_function("consecutive_months", |months: Value, end: Value| {
            consecutive_months(&months, &end)
        }),
    ];
    debug_assert!(added.iter().all(Result::is_ok));
    for (name, value) in variables {
        context.add_variable_from_value(name, value);
    }
    context
}

fn helper_error(function: &str, message: impl Into<String>) -> ExecutionError {
    ExecutionError::function_error(function, message.into())
}

fn citizen_id_argument(function: &str, id: &Value) -> Result<CitizenId, ExecutionError> {
    let Value::String(text) = id else {
        return Err(helper_error(
            function,
            format!(
                "expects a citizen ID number as a string, got {}",
                cel_type_name(id)
            ),
        ));
    };
    CitizenId::parse(text).map_err(|error| helper_error(function, error.message))
}

/// Most decimal places `round` rounds to.
const MAX_ROUND_PLACES: i64 = 9;

/// `round(number, places)`: `number` rounded to `places` decimal places (0 to 9), halves away from
/// zero, as amounts of money are rounded (四舍五入). A double is rounded as the decimal it is
/// written as (its shortest form that reads back the same), not as its binary value: 2.675 gives
/// 2.68, and 1800.1 * 3.0 (5400.299999999999) gives 5400.3 at one place or more. An int is
/// already whole and is returned as it is.
fn round(number: &Value, places: &Value) -> Result<Value, ExecutionError> {
    const FUNCTION: &str = "round";
    let places = match places {
        Value::Int(places) if (0..=MAX_ROUND_PLACES).contains(places) => *places as usize,
        Value::Int(places) => {
            return Err(helper_error(
                FUNCTION,
                format!("rounds to 0 to {MAX_ROUND_PLACES} decimal places, not {places}"),
            ));
        }
        other => {
            return Err(helper_error(
                FUNCTION,
                format!(
                    "expects the decimal places as an int, got {}",
                    cel_type_name(other)
                ),
            ));
        }
    };
    match number {
        Value::Int(_) | Value::UInt(_) => Ok(number.clone()),
        Value::Float(number) if number.is_finite() => {
            Ok(Value::Float(round_decimal(*number, places)))
        }
        Value::Float(number) => Err(helper_error(
            FUNCTION,
            format!("{number} is not a finite number"),
        )),
        other => Err(helper_error(
            FUNCTION,
            format!("expects a number, got {}", cel_type_name(other)),
        )),
    }
}

/// A finite `number` rounded to `places` decimal places, halves away from zero, working on the
/// digits of its shortest decimal form.
fn round_decimal(number: f64, places: usize) -> f64 {
    // `{:e}` writes the shortest digits that read back as `number`: `d.ddde±x`.
    let text = format!("{:e}", number.abs());
    let (mantissa, exponent) = text.split_once('e').expect("{:e} writes an exponent");
    let exponent: i64 = exponent.parse().expect("{:e} writes an integer exponent");
    let digits: Vec<u8> = mantissa
        .bytes()
        .filter(u8::is_ascii_digit)
        .map(|digit| digit - b'0')
        .collect();
    // The digits kept are those worth at least 10^-places; the first digit is worth 10^exponent.
    let kept = exponent + 1 + places as i64;
    if kept >= digits.len() as i64 {
        return number;
    }
    let mut whole: u128 = 0;
    for &digit in &digits[..kept.max(0) as usize] {
        whole = whole * 10 + u128::from(digit);
    }
    if kept >= 0 && digits[kept as usize] >= 5 {
        whole += 1;
    }
    let rounded: f64 = format!("{whole}e-{places}")
        .parse()
        .expect("digits and an exponent read as a number");
    rounded.copysign(number)
}

/// `age(id_number)`: the holder's age in whole years on the run's date, from the birth date in the
/// ID number. Someone born on 29 February turns a year older on 1 March in common years.
fn age(id: &Value, run_date: Date) -> Result<Value, ExecutionError> {
    let id = citizen_id_argument("age", id)?;
    let (year, month, day) = id.birth_date();
    let mut years = i64::from(run_date.year()) - i64::from(year);
    let birthday_passed = (run_date.month() as u32, run_date.day() as u32) >= (month, day);
    if !birthday_passed {
        years -= 1;
    }
    if years < 0 {
        return Err(helper_error(
            "age",
            "the birth date is after the run's date",
        ));
    }
    Ok(Value::Int(years))
}

/// `birth_date(id_number)`: the birth date in the ID number, as `YYYY-MM-DD`.
fn birth_date(id: &Value) -> Result<Value, ExecutionError> {
    let id = citizen_id_argument("birth_date", id)?;
    let (year, month, day) = id.birth_date();
    Ok(Value::String(Arc::new(format!(
        "{year:04}-{month:02}-{day:02}"
    ))))
}

/// `consecutive_months(months, end)`: how many calendar months in a row, going back from `end`
/// (a `YYYY-MM` string), appear in the list `months`. Zero when `end` is not in it. The list's
/// order does not matter; null counts as an empty list, so a step that found nothing gives 0.
fn consecutive_months(months: &Value, end: &Value) -> Result<Value, ExecutionError> {
    const FUNCTION: &str = "consecutive_months";
    let listed: BTreeSet<(i32, u32)> = match months {
        Value::Null => BTreeSet::new(),
        Value::List(list) => list
            .iter()
            .map(|element| match element {
                Value::String(text) => parse_month(text).ok_or_else(|| {
                    helper_error(FUNCTION, format!("{text:?} is not a month as YYYY-MM"))
                }),
                other => Err(helper_error(
                    FUNCTION,
                    format!(
                        "expects a list of YYYY-MM strings, got {}",
                        cel_type_name(other)
                    ),
                )),
            })
            .collect::<Result<_, _>>()?,
        other => {
            return Err(helper_error(
                FUNCTION,
                format!("expects a list of months, got {}", cel_type_name(other)),
            ));
        }
    };
    let Value::String(end_text) = end else {
        return Err(helper_error(
            FUNCTION,
            "expects the last month as a YYYY-MM string",
        ));
    };
    let (mut year, mut month) = parse_month(end_text)
        .ok_or_else(|| helper_error(FUNCTION, format!("{end_text:?} is not a month as YYYY-MM")))?;
    let mut count = 0;
    while listed.contains(&(year, month)) {
        count += 1;
        (year, month) = previous_month(year, month);
    }
    Ok(Value::Int(count))
}

fn parse_month(text: &str) -> Option<(i32, u32)> {
    let (year, month) = text.split_once('-')?;
    if year.len() != 4 || month.len() != 2 {
        return None;
    }
    let year: i32 = year.parse().ok()?;
    let month: u32 = month.parse().ok()?;
    (1..=12).contains(&month).then_some((year, month))
}

pub(crate) fn previous_month(year: i32, month: u32) -> (i32, u32) {
    if month == 1 {
        (year - 1, 12)
    } else {
        (year, month - 1)
    }
}

pub(crate) fn cel_type_name(value: &Value) -> &'static str {
    match value {
        Value::List(_) => "a list",
        Value::Map(_) => "a map",
        Value::Function(..) => "a function",
        Value::Int(_) => "an int",
        Value::UInt(_) => "a uint",
        Value::Float(_) => "a double",
        Value::String(_) => "a string",
        Value::Bytes(_) => "bytes",
        Value::Bool(_) => "a bool",
        Value::Null => "null",
        _ => "a value of another type",
    }
}

/// A JSON value as CEL sees it: whole numbers are `int` (so `x == 3` holds), others `double`.
pub(crate) fn json_to_cel(value: &serde_json::Value) -> Value {
    match value {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(flag) => Value::Bool(*flag),
        serde_json::Value::Number(number) => match number.as_i64() {
            Some(integer) => Value::Int(integer),
            None => Value::Float(number.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(text) => Value::String(Arc::new(text.clone())),
        serde_json::Value::Array(list) => {
            Value::List(Arc::new(list.iter().map(json_to_cel).collect()))
        }
        serde_json::Value::Object(map) => cel_map(
            map.iter()
                .map(|(key, value)| (key.clone(), json_to_cel(value))),
        ),
    }
}

/// A CEL map with string keys.
pub(crate) fn cel_map(entries: impl Iterator<Item = (String, Value)>) -> Value {
    let map: HashMap<Key, Value> = entries
        .map(|(key, value)| (Key::String(Arc::new(key)), value))
        .collect();
    Value::Map(Map { map: Arc::new(map) })
}

/// A CEL result as JSON, for computed values. Functions, bytes and the like have no JSON form.
pub(crate) fn cel_to_json(value: &Value) -> Result<serde_json::Value, String> {
    Ok(match value {
        Value::Null => serde_json::Value::Null,
        Value::Bool(flag) => serde_json::Value::Bool(*flag),
        Value::Int(integer) => serde_json::Value::from(*integer),
        Value::UInt(integer) => serde_json::Value::from(*integer),
        Value::Float(number) => serde_json::Number::from_f64(*number)
            .map(serde_json::Value::Number)
            .ok_or_else(|| format!("{number} is not a finite number"))?,
        Value::String(text) => serde_json::Value::String(text.as_ref().clone()),
        Value::List(list) => serde_json::Value::Array(
            list.iter()
                .map(cel_to_json)
                .collect::<Result<Vec<_>, _>>()?,
        ),
        Value::Map(map) => {
            let mut object = serde_json::Map::new();
            for (key, value) in map.map.iter() {
                let key = match key {
                    Key::String(text) => text.as_ref().clone(),
                    Key::Int(integer) => integer.to_string(),
                    Key::Uint(integer) => integer.to_string(),
                    Key::Bool(flag) => flag.to_string(),
                };
                object.insert(key, cel_to_json(value)?);
            }
            serde_json::Value::Object(object)
        }
        other => return Err(format!("{} has no JSON form", cel_type_name(other))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(text: &str) -> Date {
        text.parse().unwrap()
    }

    #[test]
    fn age_counts_whole_years() {
        let id = Value::String(Arc::new("11010519491231002X".into()));
        assert_eq!(age(&id, date("2029-12-30")).unwrap(), Value::Int(79));
        assert_eq!(age(&id, date("2029-12-31")).unwrap(), Value::Int(80));
        let bad = Value::String(Arc::new("110105194912310021".into()));
        assert!(age(&bad, date("2029-12-31")).is_err());
    }

    #[test]
    fn round_rounds_the_decimal_as_written_halves_away_from_zero() {
        let round_to =
            |number: f64, places: i64| match round(&Value::Float(number), &Value::Int(places))
                .unwrap()
            {
                Value::Float(rounded) => rounded,
                other => panic!("{other:?}"),
            };
        assert_eq!(1800.1 * 3.0, 5400.299999999999);
        assert_eq!(round_to(1800.1 * 3.0, 2), 5400.3);
        assert_eq!(round_to(1800.1 * 3.0, 0), 5400.0);
        assert_eq!(
            round_to(2.675, 2),
            2.68,
            "binary 2.67499999… is written 2.675"
        );
        assert_eq!(round_to(-2.675, 2), -2.68);
        assert_eq!(round_to(0.125, 2), 0.13);
        assert_eq!(round_to(0.124, 2), 0.12);
        assert_eq!(round_to(9.995, 2), 10.0);
        assert_eq!(round_to(0.004, 2), 0.0);
        assert_eq!(round_to(0.005, 2), 0.01);
        assert_eq!(round_to(0.0004, 2), 0.0);
        assert_eq!(round_to(1234.5, 0), 1235.0);
        assert_eq!(round_to(1e20, 2), 1e20);
        assert_eq!(round_to(1.5e-12, 9), 0.0);
        assert_eq!(round_to(5400.25, 9), 5400.25);
        assert_eq!(
            round(&Value::Int(5400), &Value::Int(2)).unwrap(),
            Value::Int(5400)
        );
        for (number, places) in [
            (Value::Float(1.0), Value::Int(10)),
            (Value::Float(1.0), Value::Int(-1)),
            (Value::Float(1.0), Value::Float(2.0)),
            (Value::String(Arc::new("1".into())), Value::Int(2)),
            (Value::Float(f64::INFINITY), Value::Int(2)),
        ] {
            assert!(round(&number, &places).is_err(), "{number:?} {places:?}");
        }
    }

    #[test]
    fn consecutive_months_counts_back_from_the_end() {
        let months = Value::List(Arc::new(
            [
                "2026-10", "2026-09", "2026-08", "2026-06", "2026-01", "2025-12",
            ]
            .iter()
            .map(|month| Value::String(Arc::new((*month).to_owned())))
            .collect(),
        ));
        let end = |text: &str| Value::String(Arc::new(text.to_owned()));
        assert_eq!(
            consecutive_months(&months, &end("2026-10")).unwrap(),
            Value::Int(3)
        );
        assert_eq!(
            consecutive_months(&months, &end("2026-11")).unwrap(),
            Value::Int(0)
        );
        assert_eq!(
            consecutive_months(&months, &end("2026-01")).unwrap(),
            Value::Int(2)
        );
        assert_eq!(
            consecutive_months(&Value::Null, &end("2026-01")).unwrap(),
            Value::Int(0)
        );
    }

    #[test]
    fn names_must_read_as_cel_fields() {
        assert!(check_name("id_number").is_ok());
        for bad in ["Id", "id-number", "1st", "", "in", "null"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
