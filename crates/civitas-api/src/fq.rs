//! CKAN's `fq`, the Solr filter query CKAN clients send to `package_search`, read into a
//! [`Condition`] for the search index, clause by clause so that a harvest listing can serve the
//! clauses the store can filter on.
//!
//! The syntax is that of Solr's standard query parser, over the fields of CKAN's facets
//! (`organization`, `tags`, `groups`, … as `ckan_facet` names them):
//!
//! - `field:value`, the value quoted when it holds spaces or parentheses
//!   (`tags:"住房 公积金"`), a backslash taking the character after it as it is;
//! - clauses separated by spaces (or `AND`) must all hold, as in CKAN, whose Solr schema makes
//!   AND the default operator: `tags:a tags:b` is the datasets with both tags, and two values of
//!   a field of one value per dataset (`organization:a organization:b`) match nothing;
//! - `OR` between clauses: either holds, across fields too (`organization:a OR tags:b`);
//! - `-clause` or `NOT clause` must not hold; `+clause` must, as every clause must anyway;
//! - parentheses group clauses, and `field:( … )` groups values of one field with the same
//!   operators (`tags:(a OR "b c")`), nested at most [`MAX_DEPTH`] levels;
//! - `metadata_modified:[FROM TO *]`, below.
//!
//! NOT binds tightest, then OR; the clauses that spaces separate are what must all hold. So
//! `organization:a OR organization:b groups:x OR groups:y` is (a or b) and (x or y), as
//! ckanext-harvest means it when it sends its organization and group filters so, and as a
//! reader of a filter list takes it; `a OR b -c` is `(a OR b) AND NOT c`. An explicit AND and
//! an OR in one group are refused: whether `a OR b AND c` is `(a OR b) AND c` or
//! `a OR (b AND c)` is anyone's guess, and parentheses say it. Solr's own reading differs from
//! both: it makes every clause next to an OR optional, so that in ckanext-harvest's filters
//! above any one of the four values lets a dataset through.
//!
//! `metadata_modified:[FROM TO *]`, with which CKAN's harvester asks for the datasets changed
//! since its last run, is the listing's "changed since" rather than a condition on a field: at
//! most one, outside parentheses and joined to the other clauses by spaces only (not by OR, AND,
//! NOT or `-`), it applies to the whole `fq` wherever it stands. So `organization:a OR
//! organization:b metadata_modified:[…]`, as ckanext-harvest writes it, is the datasets of
//! either organization changed since.

use std::ops::Range;

use civitas_search::{Condition, Facet};

use crate::search::{MAX_FILTERS, ckan_facet, from_ckan_value};

/// How deeply parentheses (and `field:( … )` groups) nest.
const MAX_DEPTH: usize = 8;

/// A parsed `fq`.
#[derive(Debug, Default)]
pub(crate) struct Fq {
    /// The clauses that must all hold: those joined by spaces or AND at the top level, or the
    /// whole `fq` when OR joins its top level.
    pub clauses: Vec<FqClause>,
    /// The `metadata_modified:[FROM TO *]` range, when there is one.
    pub modified: Option<ModifiedRange>,
}

/// One clause of an `fq`.
#[derive(Debug)]
pub(crate) struct FqClause {
    /// The clause as written, for messages.
    pub text: String,
    pub condition: Condition,
}

impl Fq {
    /// What the clauses say together; `None` without clauses.
    pub fn condition(self) -> Option<Condition> {
        let conditions: Vec<Condition> = self
            .clauses
            .into_iter()
            .map(|clause| clause.condition)
            .collect();
        (!conditions.is_empty()).then(|| join(conditions, Joined::All))
    }
}

/// `metadata_modified:[FROM TO *]`.
#[derive(Debug, PartialEq)]
pub(crate) struct ModifiedRange {
    /// `None` for `*`.
    pub from: Option<jiff::Timestamp>,
}

/// Parses an `fq` (see the module documentation). The message of an error names the clause or
/// the character at fault, counting characters from 1.
pub(crate) fn parse_fq(fq: &str) -> Result<Fq, String> {
    let mut tokens = lex(fq)?;
    let modified = take_modified_range(&mut tokens, fq)?;
    let mut parser = Parser {
        tokens,
        position: 0,
        values: usize::from(modified.is_some()),
    };
    if parser.tokens.is_empty() {
        return Ok(Fq {
            clauses: Vec::new(),
            modified,
        });
    }
    let terms = parser.expression(0, None)?;
    if let Some(unread) = parser.tokens.get(parser.position) {
        // Only a ')' ends the top level early.
        return Err(format!(
            "unbalanced parentheses: ')' at character {} closes no '('",
            unread.at
        ));
    }
    let clauses = terms
        .into_iter()
        .map(|(condition, span)| FqClause {
            text: fq[span].to_owned(),
            condition,
        })
        .collect();
    Ok(Fq { clauses, modified })
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Open,
    Close,
    And,
    Or,
    Not,
    /// `+` or `-` glued to the clause it precedes.
    Sign {
        negated: bool,
    },
    /// `name:value`, the value unquoted and unescaped.
    Field {
        facet: Facet,
        value: String,
    },
    /// `name:(`, opening a group of the field's values.
    FieldGroup {
        facet: Facet,
        name: String,
    },
    /// A value without a field, unquoted and unescaped: one of a group's values (anywhere
    /// else it is refused).
    Value(String),
    /// `metadata_modified:[…]`: the range, brackets included.
    Modified(String),
}

/// A token and where it stands: its first character (counted from 1, for messages) and its
/// bytes.
#[derive(Debug)]
struct Lexed {
    token: Token,
    at: usize,
    bytes: Range<usize>,
}

/// Splits an `fq` into tokens.
fn lex(fq: &str) -> Result<Vec<Lexed>, String> {
    let mut lexer = Lexer {
        fq,
        chars: fq.char_indices().collect(),
        index: 0,
        tokens: Vec::new(),
    };
    while let Some(c) = lexer.peek() {
        let start = lexer.index;
        if c.is_whitespace() {
            lexer.index += 1;
        } else if c == '(' || c == ')' {
            lexer.index += 1;
            let token = if c == '(' { Token::Open } else { Token::Close };
            lexer.push(token, start);
        } else if (c == '+' || c == '-') && lexer.starts_clause() {
            lexer.index += 1;
            if lexer.peek().is_none_or(char::is_whitespace) {
                return Err(format!(
                    "'{c}' at character {} must be followed by a clause, without a space",
                    start + 1
                ));
            }
            lexer.push(Token::Sign { negated: c == '-' }, start);
        } else if let Some(name) = lexer.field_name() {
            lexer.field(name, start)?;
        } else if c == '"' {
            let value = lexer.quoted(start)?;
            lexer.delimited(start)?;
            lexer.push(Token::Value(value), start);
        } else {
            let value = lexer.word();
            let token = match value.as_str() {
                "AND" => Token::And,
                "OR" => Token::Or,
                "NOT" => Token::Not,
                _ => {
                    lexer.delimited(start)?;
                    Token::Value(value)
                }
            };
            lexer.push(token, start);
        }
    }
    Ok(lexer.tokens)
}

struct Lexer<'a> {
    fq: &'a str,
    /// Each character and its byte offset.
    chars: Vec<(usize, char)>,
    /// The next character.
    index: usize,
    tokens: Vec<Lexed>,
}

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.index).map(|&(_, c)| c)
    }

    /// The byte offset of the character at `index`, or the end.
    fn byte(&self, index: usize) -> usize {
        self.chars
            .get(index)
            .map_or(self.fq.len(), |&(byte, _)| byte)
    }

    /// Adds the token read from the character at `start` to the current one.
    fn push(&mut self, token: Token, start: usize) {
        self.tokens.push(Lexed {
            token,
            at: start + 1,
            bytes: self.byte(start)..self.byte(self.index),
        });
    }

    /// Whether a `+` or `-` here is a sign: at the start, after a space, a `(` or another sign.
    /// Inside a word (`e-government`) it is a character of the word.
    fn starts_clause(&self) -> bool {
        let Some(before) = self.index.checked_sub(1) else {
            return true;
        };
        let before = self.chars[before].1;
        before.is_whitespace()
            || before == '('
            || (matches!(before, '+' | '-')
                && matches!(
                    self.tokens.last(),
                    Some(Lexed {
                        token: Token::Sign { .. },
                        ..
                    })
                ))
    }

    /// The field name of a `name:` here (a letter, then letters, digits or `_`), moving past
    /// the colon; a word like `12:30` is no field.
    fn field_name(&mut self) -> Option<String> {
        let rest = &self.chars[self.index..];
        if !rest.first()?.1.is_ascii_alphabetic() {
            return None;
        }
        let length = rest
            .iter()
            .position(|&(_, c)| !(c.is_ascii_alphanumeric() || c == '_'))?;
        if rest[length].1 != ':' {
            return None;
        }
        let name = rest[..length].iter().map(|&(_, c)| c).collect();
        self.index += length + 1;
        Some(name)
    }

    /// The value after `name:` (the field started at character `start`): a word, a quoted
    /// value, or a `(` opening a group of values; for `metadata_modified` a range.
    fn field(&mut self, name: String, start: usize) -> Result<(), String> {
        let Some(first) = self.peek().filter(|&c| !c.is_whitespace() && c != ')') else {
            return Err(format!("fq clause {:?} has no value", format!("{name}:")));
        };
        if name == "metadata_modified" {
            if first != '[' {
                return Err(format!(
                    "metadata_modified takes a range, [FROM TO *], not {:?}",
                    self.text_to_space(self.index)
                ));
            }
            let range = self.range(start)?;
            self.delimited(start)?;
            self.push(Token::Modified(range), start);
            return Ok(());
        }
        let facet = ckan_facet(&name).ok_or_else(|| format!("fq cannot filter on {name:?}"))?;
        let token = match first {
            '[' => {
                let range = self.range(start)?;
                return Err(format!("{name} takes a value, not the range {range}"));
            }
            '(' => {
                self.index += 1;
                Token::FieldGroup { facet, name }
            }
            '"' => {
                let value = self.quoted(start)?;
                self.delimited(start)?;
                Token::Field { facet, value }
            }
            _ => {
                let value = self.word();
                self.delimited(start)?;
                Token::Field { facet, value }
            }
        };
        self.push(token, start);
        Ok(())
    }

    /// An unquoted value: up to a space, a parenthesis or a quote; a backslash takes the
    /// character after it as it is.
    fn word(&mut self) -> String {
        let mut value = String::new();
        while let Some(c) = self.peek() {
            if c.is_whitespace() || matches!(c, '(' | ')' | '"') {
                break;
            }
            self.index += 1;
            if c == '\\'
                && let Some(escaped) = self.peek()
            {
                self.index += 1;
                value.push(escaped);
            } else {
                value.push(c);
            }
        }
        value
    }

    /// A quoted value, at its opening quote, of the clause started at character `clause`; a
    /// backslash takes the character after it as it is.
    fn quoted(&mut self, clause: usize) -> Result<String, String> {
        self.index += 1;
        let mut value = String::new();
        while let Some(c) = self.peek() {
            self.index += 1;
            match c {
                '"' => return Ok(value),
                '\\' => {
                    // A backslash at the end leaves the quote open.
                    if let Some(escaped) = self.peek() {
                        value.push(escaped);
                        self.index += 1;
                    }
                }
                _ => value.push(c),
            }
        }
        Err(format!(
            "unbalanced quote in fq clause {:?}",
            self.text_to_space(clause)
        ))
    }

    /// A range, at its `[`, of the clause started at character `clause`; brackets included.
    fn range(&mut self, clause: usize) -> Result<String, String> {
        let opening = self.index;
        let Some(length) = self.chars[opening..].iter().position(|&(_, c)| c == ']') else {
            return Err(format!(
                "unbalanced bracket in fq clause {:?}",
                self.text_to_space(clause)
            ));
        };
        self.index += length + 1;
        Ok(self.fq[self.byte(opening)..self.byte(self.index)].to_owned())
    }

    /// Checks that the clause started at character `clause` ends here: at a space, a `)` or the
    /// end.
    fn delimited(&self, clause: usize) -> Result<(), String> {
        match self.peek() {
            Some(c) if !c.is_whitespace() && c != ')' => Err(format!(
                "cannot read fq clause {:?}: clauses are field:value",
                self.text_to_space(clause)
            )),
            _ => Ok(()),
        }
    }

    /// The text from character `start` to the next space, for messages.
    fn text_to_space(&self, start: usize) -> &str {
        let end = self.chars[start..]
            .iter()
            .position(|&(_, c)| c.is_whitespace())
            .map_or(self.chars.len(), |length| start + length);
        &self.fq[self.byte(start)..self.byte(end)]
    }
}

/// Takes the `metadata_modified` range out of the tokens: it applies to the whole `fq`, so it
/// stands outside parentheses and next to no operator but a `+`.
fn take_modified_range(tokens: &mut Vec<Lexed>, fq: &str) -> Result<Option<ModifiedRange>, String> {
    let mut modified = None;
    let mut depth = 0_usize;
    let mut index = 0;
    while index < tokens.len() {
        let range = match &tokens[index].token {
            Token::Open | Token::FieldGroup { .. } => {
                depth += 1;
                None
            }
            Token::Close => {
                depth = depth.saturating_sub(1);
                None
            }
            Token::Modified(range) => Some(range.clone()),
            _ => None,
        };
        let Some(range) = range else {
            index += 1;
            continue;
        };
        let clause = &fq[tokens[index].bytes.clone()];
        let token_before =
            |position: usize| position.checked_sub(1).map(|before| &tokens[before].token);
        let first = match token_before(index) {
            Some(Token::Sign { negated: false }) => index - 1,
            _ => index,
        };
        let excludes = |token: Option<&Token>| {
            matches!(token, Some(Token::Sign { negated: true } | Token::Not))
        };
        if excludes(token_before(index)) || excludes(token_before(first)) {
            return Err(format!(
                "a metadata_modified range cannot be excluded: {clause:?}"
            ));
        }
        if depth > 0 {
            return Err(format!(
                "a metadata_modified range applies to the whole fq and cannot stand inside \
                 parentheses: {clause:?}"
            ));
        }
        for neighbour in [
            token_before(first),
            tokens.get(index + 1).map(|after| &after.token),
        ] {
            let operator = match neighbour {
                Some(Token::Or) => "OR",
                Some(Token::And) => "AND",
                _ => continue,
            };
            return Err(format!(
                "{operator} cannot join a metadata_modified range: {clause:?} applies to the \
                 whole fq; separate it from the other clauses with a space"
            ));
        }
        if modified.is_some() {
            return Err(format!(
                "fq may hold one metadata_modified range, and {clause:?} is a second"
            ));
        }
        modified = Some(modified_range(&range)?);
        tokens.drain(first..=index);
        index = first;
    }
    Ok(modified)
}

/// The `[FROM TO *]` of a `metadata_modified` clause, brackets included.
fn modified_range(range: &str) -> Result<ModifiedRange, String> {
    let inner = &range[1..range.len() - 1];
    let (from, to) = inner
        .split_once(" TO ")
        .ok_or_else(|| format!("cannot read the range {range}"))?;
    if !matches!(to.trim(), "*" | "NOW") {
        return Err("a metadata_modified range may only be open-ended: [FROM TO *]".into());
    }
    let from = match from.trim() {
        "*" => None,
        from => Some(
            from.parse::<jiff::Timestamp>()
                .map_err(|error| format!("metadata_modified from {from:?}: {error}"))?,
        ),
    };
    Ok(ModifiedRange { from })
}

/// A condition and its bytes in the `fq`.
type Spanned = (Condition, Range<usize>);

struct Parser {
    tokens: Vec<Lexed>,
    position: usize,
    /// Values read so far, toward [`MAX_FILTERS`].
    values: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.position).map(|lexed| &lexed.token)
    }

    /// Where the next token stands, for messages.
    fn at(&self) -> usize {
        self.tokens.get(self.position).map_or(0, |lexed| lexed.at)
    }

    fn ends_group(&self) -> bool {
        matches!(self.peek(), None | Some(Token::Close))
    }

    fn ends_operand(&self) -> bool {
        self.ends_group() || matches!(self.peek(), Some(Token::Or | Token::And))
    }

    /// The clauses of a group (or of the whole `fq`) that must all hold, joined by spaces or
    /// AND, each an OR of clauses; each with its bytes in the `fq`. `field` is the facet of a
    /// `field:( … )` group being read. An AND and an OR at one level are refused, as their
    /// grouping is anyone's guess: parentheses say which is meant.
    fn expression(&mut self, depth: usize, field: Option<Facet>) -> Result<Vec<Spanned>, String> {
        let mut terms = Vec::new();
        let (mut and_at, mut or_at) = (None, None);
        loop {
            match self.peek() {
                None | Some(Token::Close) => break,
                Some(Token::Or) => {
                    return Err(format!(
                        "OR at character {} must stand between two clauses",
                        self.at()
                    ));
                }
                Some(Token::And) => {
                    let at = self.at();
                    self.position += 1;
                    if terms.is_empty() || self.ends_operand() {
                        return Err(format!(
                            "AND at character {at} must stand between two clauses"
                        ));
                    }
                    and_at.get_or_insert(at);
                }
                Some(_) => {
                    let (term, first_or) = self.alternatives(depth, field)?;
                    if let Some(at) = first_or {
                        or_at.get_or_insert(at);
                    }
                    terms.push(term);
                }
            }
        }
        if let (Some(and), Some(or)) = (and_at, or_at) {
            return Err(format!(
                "AND at character {and} and OR at character {or} stand in one group: say which \
                 binds first with parentheses, as in (a OR b) AND c or a OR (b AND c)"
            ));
        }
        debug_assert!(!terms.is_empty(), "groups and the fq are not empty");
        Ok(terms)
    }

    /// Clauses joined by OR, any of which holds: its condition and bytes, and where its first
    /// OR stands.
    fn alternatives(
        &mut self,
        depth: usize,
        field: Option<Facet>,
    ) -> Result<(Spanned, Option<usize>), String> {
        let (first, mut bytes) = self.clause(depth, field)?;
        let mut conditions = vec![first];
        let mut first_or = None;
        while self.peek() == Some(&Token::Or) {
            let at = self.at();
            self.position += 1;
            if self.ends_operand() {
                return Err(format!(
                    "OR at character {at} must stand between two clauses"
                ));
            }
            first_or.get_or_insert(at);
            let (condition, clause_bytes) = self.clause(depth, field)?;
            bytes.end = clause_bytes.end;
            conditions.push(condition);
        }
        Ok(((join(conditions, Joined::Any), bytes), first_or))
    }

    /// A clause, negated by `-` or NOT: a field's value or values, or a group.
    fn clause(&mut self, depth: usize, field: Option<Facet>) -> Result<Spanned, String> {
        let first = self.position;
        let negated = match self.peek() {
            Some(&Token::Sign { negated }) => {
                let sign = if negated { '-' } else { '+' };
                self.operand_follows(&format!("'{sign}'"))?;
                negated
            }
            Some(Token::Not) => {
                self.operand_follows("NOT")?;
                true
            }
            _ => false,
        };
        let condition = self.operand(depth, field)?;
        let bytes = self.tokens[first].bytes.start..self.tokens[self.position - 1].bytes.end;
        let condition = if negated {
            Condition::Not(Box::new(condition))
        } else {
            condition
        };
        Ok((condition, bytes))
    }

    /// Moves past a sign or NOT, which must be followed by what it applies to.
    fn operand_follows(&mut self, operator: &str) -> Result<(), String> {
        let at = self.at();
        self.position += 1;
        match self.peek() {
            Some(
                Token::Field { .. } | Token::FieldGroup { .. } | Token::Open | Token::Value(_),
            ) => Ok(()),
            _ => Err(format!(
                "{operator} at character {at} must be followed by a clause"
            )),
        }
    }

    /// A field's value or group of values, a value in such a group, or a group in parentheses.
    fn operand(&mut self, depth: usize, field: Option<Facet>) -> Result<Condition, String> {
        let lexed = &self.tokens[self.position];
        let at = lexed.at;
        let token = lexed.token.clone();
        self.position += 1;
        match (token, field) {
            (Token::Open, _) => self.group(at, depth, field),
            (Token::Field { facet, value }, None) => self.value(facet, &value),
            (Token::FieldGroup { facet, name }, None) => {
                let opening = at + name.chars().count() + 1;
                self.group(opening, depth, Some(facet))
            }
            (Token::Value(value), Some(facet)) => self.value(facet, &value),
            (Token::Value(value), None) => Err(format!(
                "cannot read fq clause {value:?} at character {at}: clauses are field:value"
            )),
            (Token::Field { .. } | Token::FieldGroup { .. }, Some(_)) => Err(format!(
                "the clause at character {at} names a field inside a group of one field's values"
            )),
            (other, _) => unreachable!("{other:?} is read before an operand"),
        }
    }

    /// A group in parentheses, whose `(` is at character `at`.
    fn group(
        &mut self,
        at: usize,
        depth: usize,
        field: Option<Facet>,
    ) -> Result<Condition, String> {
        if depth >= MAX_DEPTH {
            return Err(format!(
                "parentheses are nested too deeply at character {at}: at most {MAX_DEPTH} levels"
            ));
        }
        if self.peek() == Some(&Token::Close) {
            return Err(format!("empty parentheses at character {at}"));
        }
        let terms = self.expression(depth + 1, field)?;
        if self.peek() != Some(&Token::Close) {
            return Err(format!(
                "unbalanced parentheses: '(' at character {at} is not closed"
            ));
        }
        self.position += 1;
        let conditions = terms.into_iter().map(|(condition, _)| condition).collect();
        Ok(join(conditions, Joined::All))
    }

    fn value(&mut self, facet: Facet, value: &str) -> Result<Condition, String> {
        self.values += 1;
        if self.values > MAX_FILTERS {
            return Err(format!("fq may hold at most {MAX_FILTERS} clauses"));
        }
        Ok(Condition::Value(facet, from_ckan_value(facet, value)))
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Joined {
    All,
    Any,
}

/// `All` or `Any` of the conditions, those of the same kind spliced in; one condition as it is.
fn join(conditions: Vec<Condition>, joined: Joined) -> Condition {
    let mut parts = Vec::with_capacity(conditions.len());
    for condition in conditions {
        match condition {
            Condition::All(inner) if joined == Joined::All => parts.extend(inner),
            Condition::Any(inner) if joined == Joined::Any => parts.extend(inner),
            other => parts.push(other),
        }
    }
    if parts.len() == 1 {
        return parts.pop().expect("one part");
    }
    match joined {
        Joined::All => Condition::All(parts),
        Joined::Any => Condition::Any(parts),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A condition in a short form: `tag=a`, `(all …)`, `(any …)`, `(not …)`.
    fn show(condition: &Condition) -> String {
        let list = |name: &str, conditions: &[Condition]| {
            let parts: Vec<String> = conditions.iter().map(show).collect();
            format!("({name} {})", parts.join(" "))
        };
        match condition {
            Condition::Value(facet, value) => format!("{facet}={value}"),
            Condition::All(conditions) => list("all", conditions),
            Condition::Any(conditions) => list("any", conditions),
            Condition::Not(condition) => format!("(not {})", show(condition)),
        }
    }

    fn check(fq: &str, expected: &str) {
        let parsed = parse_fq(fq).unwrap_or_else(|message| panic!("{fq}: {message}"));
        let shown = parsed.condition().as_ref().map_or(String::new(), show);
        assert_eq!(shown, expected, "{fq}");
    }

    fn check_error(fq: &str, fragment: &str) {
        let message = parse_fq(fq).expect_err(fq);
        assert!(message.contains(fragment), "{fq}: {message}");
    }

    #[test]
    fn clauses_values_signs_and_quotes() {
        check("", "");
        check("   ", "");
        check(
            "organization:a +tags:社保 tags:\"住房 公积金\"",
            "(all provider=A tag=社保 tag=住房 公积金)",
        );
        check(
            "  owner_org:a   groups:b01 ",
            "(all provider=A classification=B01)",
        );
        check("tags:a\\ b", "tag=a b");
        check("tags:\"say \\\"hi\\\"\"", "tag=say \"hi\"");
        check("tags:12:30 tags:e-gov", "(all tag=12:30 tag=e-gov)");
        check("(tags:a)", "tag=a");
    }

    /// CKAN's Solr makes AND the default operator: clauses next to each other must all hold, two
    /// of one field too. NOT binds tighter than OR, and OR tighter than the spaces between
    /// the clauses that must all hold.
    #[test]
    fn all_clauses_hold_and_or_joins_alternatives_of_one() {
        check("tags:a tags:b", "(all tag=a tag=b)");
        check("tags:a AND tags:b", "(all tag=a tag=b)");
        check(
            "organization:a organization:b",
            "(all provider=A provider=B)",
        );
        check("tags:a OR tags:b", "(any tag=a tag=b)");
        check("organization:a OR tags:b", "(any provider=A tag=b)");
        check("tags:a OR tags:b tags:c", "(all (any tag=a tag=b) tag=c)");
        check("tags:a tags:b OR tags:c", "(all tag=a (any tag=b tag=c))");
        check(
            "organization:a OR organization:b groups:x OR groups:y",
            "(all (any provider=A provider=B) (any classification=X classification=Y))",
        );
        check(
            "tags:a OR tags:b -tags:c",
            "(all (any tag=a tag=b) (not tag=c))",
        );
        check("tags:a OR -tags:b", "(any tag=a (not tag=b))");
        check(
            "(organization:x OR organization:y) AND tags:z",
            "(all (any provider=X provider=Y) tag=z)",
        );
        check(
            "tags:a OR (tags:b AND tags:c)",
            "(any tag=a (all tag=b tag=c))",
        );
        check(
            "((tags:a OR tags:b) OR tags:c) (tags:d (tags:e))",
            "(all (any tag=a tag=b tag=c) tag=d tag=e)",
        );
        check("-tags:a", "(not tag=a)");
        check("NOT tags:a", "(not tag=a)");
        check("NOT tags:a tags:b", "(all (not tag=a) tag=b)");
        check("NOT(tags:a OR tags:b)", "(not (any tag=a tag=b))");
        check("-(tags:a tags:b)", "(not (all tag=a tag=b))");
        check("+tags:a", "tag=a");
        check(
            "open_type:closed OR NOT open_type:open",
            "(any open_type=closed (not open_type=open))",
        );
        for mixed in [
            "tags:a OR tags:b AND tags:c",
            "tags:a AND tags:b OR tags:c",
            "tags:(a AND b OR c)",
        ] {
            check_error(mixed, "stand in one group: say which binds first");
        }
        check_error(
            "tags:a OR tags:b tags:c AND tags:d",
            "AND at character 25 and OR at character 8",
        );
    }

    #[test]
    fn groups_of_one_fields_values() {
        check("tags:(a OR b)", "(any tag=a tag=b)");
        check("tags:(\"x y\" OR z)", "(any tag=x y tag=z)");
        check("tags:(a b)", "(all tag=a tag=b)");
        check("tags:(a AND NOT b)", "(all tag=a (not tag=b))");
        check("tags:(a -b)", "(all tag=a (not tag=b))");
        check("tags:((a OR b) c)", "(all (any tag=a tag=b) tag=c)");
        check(
            "-organization:(a OR b)",
            "(not (any provider=A provider=B))",
        );
        check(
            "organization:(a OR b) groups:b01",
            "(all (any provider=A provider=B) classification=B01)",
        );
    }

    /// The clauses that must all hold, as written: a listing refuses one by its text.
    #[test]
    fn clauses_keep_their_text() {
        let texts = |fq: &str| -> Vec<String> {
            parse_fq(fq)
                .unwrap()
                .clauses
                .into_iter()
                .map(|clause| clause.text)
                .collect()
        };
        assert_eq!(
            texts("(organization:a OR organization:b)  -groups:b01 tags:(x OR \"y z\")"),
            [
                "(organization:a OR organization:b)",
                "-groups:b01",
                "tags:(x OR \"y z\")"
            ]
        );
        assert_eq!(
            texts(" organization:a OR organization:b -groups:b01 "),
            ["organization:a OR organization:b", "-groups:b01"]
        );
        assert_eq!(
            texts("NOT tags:a metadata_modified:[* TO *] tags:社保"),
            ["NOT tags:a", "tags:社保"]
        );
    }

    /// The range applies to the whole fq, wherever it stands among the top-level clauses, as
    /// ckanext-harvest appends it to its organization and group filters.
    #[test]
    fn a_modified_range_applies_to_the_whole_fq() {
        let fq = "organization:a OR owner_org:b metadata_modified:[2026-01-01T00:00:00Z TO *]";
        check(fq, "(any provider=A provider=B)");
        assert_eq!(
            parse_fq(fq).unwrap().modified,
            Some(ModifiedRange {
                from: Some("2026-01-01T00:00:00Z".parse().unwrap())
            })
        );
        check(
            "+metadata_modified:[* TO NOW] -organization:a",
            "(not provider=A)",
        );
        assert_eq!(
            parse_fq("metadata_modified:[* TO NOW]").unwrap().modified,
            Some(ModifiedRange { from: None })
        );
        // Two OR lists, as ckanext-harvest means them.
        check(
            "organization:a OR organization:b groups:b01 OR groups:t03 \
             metadata_modified:[2026-01-01T00:00:00Z TO *]",
            "(all (any provider=A provider=B) (any classification=B01 classification=T03))",
        );
    }

    #[test]
    fn mistakes_are_explained() {
        for (fq, fragment) in [
            (
                "OR organization:a",
                "OR at character 1 must stand between two clauses",
            ),
            ("organization:a OR", "OR at character 16 must stand between"),
            ("tags:社保 OR", "OR at character 9"),
            ("organization:a OR OR organization:b", "OR at character 16"),
            ("(OR tags:a)", "OR at character 2"),
            (
                "AND tags:a",
                "AND at character 1 must stand between two clauses",
            ),
            ("tags:a AND", "AND at character 8"),
            ("tags:a AND OR tags:b", "AND at character 8"),
            (
                "organization:a OR metadata_modified:[* TO *]",
                "OR cannot join a metadata_modified range",
            ),
            (
                "metadata_modified:[* TO *] AND tags:a",
                "AND cannot join a metadata_modified range",
            ),
            (
                "(metadata_modified:[* TO *])",
                "cannot stand inside parentheses",
            ),
            (
                "tags:a OR (tags:b metadata_modified:[* TO *])",
                "cannot stand inside parentheses",
            ),
            ("-metadata_modified:[* TO *]", "cannot be excluded"),
            ("NOT metadata_modified:[* TO *]", "cannot be excluded"),
            ("-+metadata_modified:[* TO *]", "cannot be excluded"),
            (
                "metadata_modified:[* TO *] metadata_modified:[* TO *]",
                "one metadata_modified range",
            ),
            (
                "-",
                "'-' at character 1 must be followed by a clause, without a space",
            ),
            ("- organization:a", "'-' at character 1 must be followed"),
            ("organization:a +", "'+' at character 16 must be followed"),
            (
                "--organization:a",
                "'-' at character 1 must be followed by a clause",
            ),
            ("(-)", "'-' at character 2 must be followed by a clause"),
            ("NOT", "NOT at character 1 must be followed by a clause"),
            ("NOT NOT tags:a", "NOT at character 1 must be followed"),
            ("-OR tags:a", "'-' at character 1 must be followed"),
            ("organization", "cannot read fq clause \"organization\""),
            (
                "公积金 organization:a",
                "cannot read fq clause \"公积金\" at character 1",
            ),
            (":a", "cannot read fq clause \":a\""),
            ("tags:a(b)", "cannot read fq clause \"tags:a(b)\""),
            ("organization:\"a\"b", "cannot read fq clause"),
            (
                "organization: tags:a",
                "fq clause \"organization:\" has no value",
            ),
            ("organization:", "has no value"),
            ("tags:()", "empty parentheses at character 6"),
            ("()", "empty parentheses at character 1"),
            ("(tags:a", "'(' at character 1 is not closed"),
            ("tags:(a", "'(' at character 6 is not closed"),
            ("tags:a)", "')' at character 7 closes no '('"),
            ("tags:(organization:a)", "names a field inside a group"),
            ("organization:\"a b", "unbalanced quote in fq clause"),
            (
                "metadata_modified:[2026-01-01T00:00:00Z TO *",
                "unbalanced bracket",
            ),
            ("metadata_modified:2026", "takes a range"),
            ("metadata_modified:(a)", "takes a range"),
            (
                "metadata_modified:[2026 TO *]",
                "metadata_modified from \"2026\"",
            ),
            (
                "metadata_modified:[* TO 2027-01-01T00:00:00Z]",
                "open-ended",
            ),
            (
                "tags:[a TO b]",
                "tags takes a value, not the range [a TO b]",
            ),
            ("title:x", "cannot filter on \"title\""),
        ] {
            check_error(fq, fragment);
        }
        let deepest = format!("{}tags:a{}", "(".repeat(MAX_DEPTH), ")".repeat(MAX_DEPTH));
        check(&deepest, "tag=a");
        let deeper = format!("({deepest})");
        check_error(
            &deeper,
            &format!("nested too deeply at character {}", MAX_DEPTH + 1),
        );
        check_error(
            &format!("tags:({deepest})"),
            &format!("nested too deeply at character {}", MAX_DEPTH + 6),
        );
    }

    #[test]
    fn every_value_counts_toward_the_limit() {
        let at_limit = vec!["tags:x"; MAX_FILTERS].join(" OR ");
        assert!(parse_fq(&at_limit).is_ok());
        let over = vec!["-tags:x"; MAX_FILTERS + 1].join(" ");
        check_error(&over, &format!("at most {MAX_FILTERS} clauses"));
        let over = format!("tags:({})", vec!["x"; MAX_FILTERS + 1].join(" OR "));
        check_error(&over, &format!("at most {MAX_FILTERS} clauses"));
        let over = format!("{at_limit} metadata_modified:[* TO *]");
        check_error(&over, &format!("at most {MAX_FILTERS} clauses"));
    }
}
