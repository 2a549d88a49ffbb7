//! The query language (see the crate documentation) and its translation into tantivy queries.
//!
//! The parser is our own rather than tantivy's: it gives readable messages for the mistakes
//! people make in a search box, and lets a Chinese word become "all of its segmented words, in
//! any field" instead of a phrase query that would depend on how jieba cut the text.

use std::collections::{BTreeMap, BTreeSet};

use tantivy::query::{
    AllQuery, BooleanQuery, BoostQuery, ConstScoreQuery, EmptyQuery, Occur, PhraseQuery, Query,
    TermQuery,
};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::tokenizer::TextAnalyzer;
use tantivy::{Index, Searcher, Term};

use crate::schema::{self, Fields};
use crate::{Condition, Facet, Result, SearchError};

const MAX_QUERY_CHARS: usize = 500;
const MAX_TERMS: usize = 64;
const MAX_DEPTH: usize = 8;
/// Weight of an exact code match: someone who types a resource code wants that entry first.
const CODE_BOOST: f32 = 10.0;

/// A parsed query: its words, its filters and the words to highlight in snippets.
pub(crate) struct BuiltQuery {
    /// The query's words; `None` when it has none (filters alone), and so no relevance scores.
    text: Option<Box<dyn Query>>,
    /// Filters that must all pass, each a facet and values any of which passes: those the
    /// collector can check from its per-segment arrays.
    filters: Vec<(Facet, Vec<String>)>,
    /// The other conditions every match must meet: exclusions, and the parts of a request's
    /// condition that are not one facet's values.
    conditions: Vec<Condition>,
    /// Chinese-analyzed words of the positive clauses, to highlight in names and summaries.
    pub highlight_terms: BTreeSet<String>,
}

/// How a search runs.
pub(crate) struct Plan {
    pub query: Box<dyn Query>,
    /// Filters the collector applies from its per-segment arrays, outside the query.
    pub collector_filters: Vec<(Facet, Vec<String>)>,
    /// Whether the query may skip blocks of postings that score too low to be among the best
    /// hits (block-max WAND): see `CatalogCollector::collect_segment`.
    pub prune: bool,
    /// The words when the query is all of several, whose matches the collector may count from
    /// their postings.
    pub words: Vec<Term>,
}

impl BuiltQuery {
    pub(crate) fn has_text(&self) -> bool {
        self.text.is_some()
    }

    /// The query to run. Ranked by relevance, words of the text fields alone (one, or all of
    /// several) skip postings scoring too low to matter (block-max WAND), which a filter clause
    /// in the query would prevent: so filters that let through a large share of the entries
    /// (those the skipping pays off for) go to the collector instead. A narrow filter stays a
    /// clause of the query, whose postings then skip what the filter rules out. Exclusions and
    /// other conditions are always clauses of the query: they are rare, and the collector's
    /// filters admit values of one facet rather than rule one out.
    pub(crate) fn plan(self, fields: &Fields, by_relevance: bool, searcher: &Searcher) -> Plan {
        if by_relevance
            && self.conditions.is_empty()
            && let Some(text) = &self.text
            && let Some(words) = words_of_text_fields(text.as_ref(), fields)
            && (words.is_empty() || many_match_all(&words, searcher))
            && share_passing(&self.filters, fields, searcher) >= BROAD_FILTERS
        {
            return Plan {
                query: self.text.expect("checked"),
                collector_filters: self.filters,
                prune: true,
                words,
            };
        }
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        if let Some(text) = self.text {
            clauses.push((Occur::Must, text));
        }
        clauses.extend(filter_clauses(fields, self.filters));
        clauses.extend(self.conditions.iter().map(|condition| match condition {
            Condition::Not(excluded) => (Occur::MustNot, condition_query(fields, excluded)),
            other => (
                Occur::Must,
                Box::new(ConstScoreQuery::new(condition_query(fields, other), 0.0)) as _,
            ),
        }));
        require_a_match(&mut clauses);
        let query: Box<dyn Query> = match clauses.len() {
            0 => Box::new(AllQuery),
            1 if clauses[0].0 == Occur::Must => clauses.pop().expect("one clause").1,
            _ => Box::new(BooleanQuery::new(clauses)),
        };
        Plan {
            query,
            collector_filters: Vec::new(),
            prune: false,
            words: Vec::new(),
        }
    }
}

/// The share of entries filters must let through to be applied by the collector rather than
/// the query. Checking a filter for a match costs a few nanoseconds, scoring a match tens: a
/// filter clause pays off when it rules out most of a word's matches before they are scored.
const BROAD_FILTERS: f64 = 0.25;

/// The estimated share of entries that pass the filters, taking them as independent.
fn share_passing(filters: &[(Facet, Vec<String>)], fields: &Fields, searcher: &Searcher) -> f64 {
    let entries = searcher.num_docs().max(1) as f64;
    filters
        .iter()
        .map(|(facet, values)| {
            let field = fields.facet(*facet);
            let with_values: u64 = values
                .iter()
                .map(|value| {
                    searcher
                        .doc_freq(&Term::from_field_text(field, value))
                        .unwrap_or(0)
                })
                .sum();
            (with_values as f64 / entries).min(1.0)
        })
        .product()
}

/// All of several words are searched in two passes when their expected matches times this are
/// at least the length of their postings: counting the matches from the postings read whole,
/// then finding the best hits in a pass that skips what scores too low. (Measured on the
/// benchmark's mix at a million entries: against one pass that scores every match, the slowest
/// queries halve and the others cost the same.)
const MANY_MATCHES: f64 = 16.0;

/// Whether all of several words are expected to match many entries for the length of their
/// postings (at least a sixteenth of their sum), taking the words as independent, which
/// understates it for words used together. For few matches, one pass that scores every match
/// costs less than reading the postings whole.
fn many_match_all(words: &[Term], searcher: &Searcher) -> bool {
    let entries = searcher.num_docs().max(1) as f64;
    let postings: Vec<f64> = words
        .iter()
        .map(|word| searcher.doc_freq(word).unwrap_or(0) as f64)
        .collect();
    let expected = entries
        * postings
            .iter()
            .map(|count| count / entries)
            .product::<f64>();
    expected * MANY_MATCHES >= postings.iter().sum::<f64>()
}

/// Whether `query` is one word of a text field (`all` or `name`), or all of several such words:
/// then the words, when several. Those postings carry the frequencies tantivy bounds each
/// block's scores with; fields indexed without them (the facets, the code) bound every block
/// too low, and skipping by those bounds would lose hits.
fn words_of_text_fields(query: &dyn Query, fields: &Fields) -> Option<Vec<Term>> {
    let text_word = |query: &dyn Query| {
        query
            .downcast_ref::<TermQuery>()
            .map(TermQuery::term)
            .filter(|term| [fields.all, fields.name].contains(&term.field()))
            .cloned()
    };
    if text_word(query).is_some() {
        return Some(Vec::new());
    }
    let clauses = query.downcast_ref::<BooleanQuery>()?.clauses();
    if clauses.len() < 2 {
        return None;
    }
    clauses
        .iter()
        .map(|(occur, clause)| {
            (*occur == Occur::Must)
                .then(|| text_word(clause.as_ref()))
                .flatten()
        })
        .collect()
}

/// Parses `text` and keeps the filters beside it: `filters` grouped by facet (AND across facets,
/// OR within one), then each part of `condition` that is one facet's values (two tags stay two
/// filters, both of which must pass); the rest, `exclusions` among them, as conditions.
pub(crate) fn build(
    index: &Index,
    fields: &Fields,
    text: &str,
    filters: &[(Facet, String)],
    exclusions: &[(Facet, String)],
    condition: Option<&Condition>,
) -> Result<BuiltQuery> {
    let expression = parse(text).map_err(|message| SearchError::Syntax { message })?;
    let mut builder = Builder {
        fields,
        analyzer: analyzer(index, schema::QUERY_ANALYZER)?,
        highlight_terms: BTreeSet::new(),
    };
    let text = expression
        .as_ref()
        .map(|expression| builder.expression(expression, Scope::Everywhere, true));
    let mut by_facet: BTreeMap<Facet, Vec<String>> = BTreeMap::new();
    for (facet, value) in filters {
        by_facet.entry(*facet).or_default().push(value.clone());
    }
    let mut filters: Vec<(Facet, Vec<String>)> = by_facet.into_iter().collect();
    let mut conditions: Vec<Condition> = exclusions
        .iter()
        .map(|(facet, value)| Condition::Not(Box::new(Condition::Value(*facet, value.clone()))))
        .collect();
    let mut parts = Vec::new();
    if let Some(condition) = condition {
        conjuncts(condition, &mut parts);
    }
    for part in parts {
        match part.one_facet_values() {
            Some((facet, values)) => {
                filters.push((facet, values.into_iter().map(str::to_owned).collect()));
            }
            None => conditions.push(part.clone()),
        }
    }
    Ok(BuiltQuery {
        text,
        filters,
        conditions,
        highlight_terms: builder.highlight_terms,
    })
}

/// Collects the conditions that must all hold for `condition` to hold: itself, or the parts of
/// an `All` (and of the `All`s among them).
fn conjuncts<'a>(condition: &'a Condition, parts: &mut Vec<&'a Condition>) {
    match condition {
        Condition::All(conditions) => {
            for condition in conditions {
                conjuncts(condition, parts);
            }
        }
        other => parts.push(other),
    }
}

/// A condition as a query that matches the entries meeting it.
fn condition_query(fields: &Fields, condition: &Condition) -> Box<dyn Query> {
    match condition {
        Condition::Value(facet, value) => exact(fields.facet(*facet), value),
        Condition::All(conditions) => {
            let mut clauses: Vec<(Occur, Box<dyn Query>)> = conditions
                .iter()
                .map(|condition| match condition {
                    Condition::Not(excluded) => (Occur::MustNot, condition_query(fields, excluded)),
                    other => (Occur::Must, condition_query(fields, other)),
                })
                .collect();
            if clauses.is_empty() {
                return Box::new(AllQuery);
            }
            require_a_match(&mut clauses);
            Box::new(BooleanQuery::new(clauses))
        }
        Condition::Any(conditions) if conditions.is_empty() => Box::new(EmptyQuery),
        Condition::Any(conditions) => Box::new(BooleanQuery::union(
            conditions
                .iter()
                .map(|condition| condition_query(fields, condition))
                .collect(),
        )),
        Condition::Not(excluded) => Box::new(BooleanQuery::new(vec![
            (Occur::Must, Box::new(AllQuery) as Box<dyn Query>),
            (Occur::MustNot, condition_query(fields, excluded)),
        ])),
    }
}

/// Clauses that only rule entries out match nothing in tantivy: they are meant to leave those
/// entries out of everything, so everything is added.
fn require_a_match(clauses: &mut Vec<(Occur, Box<dyn Query>)>) {
    if !clauses.is_empty() && clauses.iter().all(|(occur, _)| *occur == Occur::MustNot) {
        clauses.push((Occur::Must, Box::new(AllQuery)));
    }
}

fn analyzer(index: &Index, name: &str) -> Result<TextAnalyzer> {
    index.tokenizers().get(name).ok_or_else(|| {
        SearchError::Index(tantivy::TantivyError::SchemaError(format!(
            "analyzer {name} is not registered"
        )))
    })
}

/// Filters restrict without scoring.
fn filter_clauses(
    fields: &Fields,
    filters: Vec<(Facet, Vec<String>)>,
) -> impl Iterator<Item = (Occur, Box<dyn Query>)> {
    filters.into_iter().map(|(facet, values)| {
        let field = fields.facet(facet);
        let mut alternatives: Vec<Box<dyn Query>> =
            values.iter().map(|value| exact(field, value)).collect();
        let matcher = if alternatives.len() == 1 {
            alternatives.pop().expect("one alternative")
        } else {
            Box::new(BooleanQuery::union(alternatives))
        };
        (
            Occur::Must,
            Box::new(ConstScoreQuery::new(matcher, 0.0)) as Box<dyn Query>,
        )
    })
}

fn exact(field: Field, value: &str) -> Box<dyn Query> {
    Box::new(TermQuery::new(
        Term::from_field_text(field, value),
        IndexRecordOption::Basic,
    ))
}

// ---------------------------------------------------------------------------------------------
// Syntax

/// Alternatives (`OR`) of conjunctions of clauses.
#[derive(Debug, PartialEq)]
struct Expression {
    alternatives: Vec<Vec<Clause>>,
}

#[derive(Debug, PartialEq)]
struct Clause {
    negated: bool,
    scope: Scope,
    atom: Atom,
}

#[derive(Debug, PartialEq)]
enum Atom {
    Word(String),
    Phrase(String),
    Group(Expression),
}

/// Where a clause looks.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Scope {
    Everywhere,
    /// `name:` searches the Chinese and the English name.
    Name,
    /// The provider's exact code or name.
    Provider,
    Code,
    /// An exact facet value.
    Facet(Facet),
}

impl Scope {
    fn parse(prefix: &str) -> Option<Scope> {
        Some(match prefix {
            "name" | "title" | "name_en" => Scope::Name,
            "tags" => Scope::Facet(Facet::Tag),
            "provider" | "organization" => Scope::Provider,
            "code" => Scope::Code,
            other => Scope::Facet(Facet::parse(other)?),
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word {
        text: String,
        at: usize,
    },
    Phrase {
        text: String,
        at: usize,
    },
    Open {
        at: usize,
    },
    Close {
        at: usize,
    },
    /// `+` or `-` glued to what follows.
    Sign {
        negated: bool,
        at: usize,
    },
    /// A field prefix glued to what follows, `name:`.
    Field {
        scope: Scope,
        name: String,
        at: usize,
    },
}

/// Splits the query into tokens. Positions are 1-based character positions, for messages.
fn lex(text: &str) -> std::result::Result<Vec<Token>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut index = 0;
    let is_delimiter = |c: char| c.is_whitespace() || matches!(c, '"' | '“' | '”' | '(' | ')');
    while index < chars.len() {
        let c = chars[index];
        let at = index + 1;
        if c.is_whitespace() {
            index += 1;
        } else if c == '"' || c == '“' {
            let closing = if c == '"' { '"' } else { '”' };
            let Some(length) = chars[index + 1..].iter().position(|&d| d == closing) else {
                return Err(format!(
                    "unbalanced quotes: the phrase opened at character {at} is not closed"
                ));
            };
            let phrase: String = chars[index + 1..index + 1 + length].iter().collect();
            tokens.push(Token::Phrase { text: phrase, at });
            index += length + 2;
        } else if c == '”' {
            return Err(format!(
                "unbalanced quotes: the quote at character {at} closes no phrase"
            ));
        } else if c == '(' {
            tokens.push(Token::Open { at });
            index += 1;
        } else if c == ')' {
            tokens.push(Token::Close { at });
            index += 1;
        } else if (c == '+' || c == '-')
            && starts_clause(&chars, index)
            && chars
                .get(index + 1)
                .is_some_and(|&next| !next.is_whitespace())
        {
            tokens.push(Token::Sign {
                negated: c == '-',
                at,
            });
            index += 1;
        } else if (c == '+' || c == '-') && starts_clause(&chars, index) {
            return Err(format!(
                "'{c}' at character {at} must be followed by a term, without a space"
            ));
        } else {
            let start = index;
            while index < chars.len() && !is_delimiter(chars[index]) {
                index += 1;
            }
            let word: String = chars[start..index].iter().collect();
            // A known field name before the first ':' makes a field prefix; anything else with a
            // colon (a time, a URL) stays a word.
            if let Some(colon) = word.find(':') {
                let prefix = &word[..colon];
                if let Some(scope) = Scope::parse(prefix) {
                    let rest = &word[colon + 1..];
                    tokens.push(Token::Field {
                        scope,
                        name: prefix.to_owned(),
                        at,
                    });
                    if !rest.is_empty() {
                        tokens.push(Token::Word {
                            text: rest.to_owned(),
                            at: at + prefix.chars().count() + 1,
                        });
                    }
                    continue;
                }
            }
            tokens.push(Token::Word { text: word, at });
        }
    }
    Ok(tokens)
}

/// `+` and `-` are operators at the start of a clause: at the start, after a space or an opening
/// parenthesis. Inside a word (`e-government`, `320100-B01-000123`) they are characters.
fn starts_clause(chars: &[char], index: usize) -> bool {
    index == 0 || chars[index - 1].is_whitespace() || chars[index - 1] == '('
}

/// Parses the query; `None` when it matches everything.
fn parse(text: &str) -> std::result::Result<Option<Expression>, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() || trimmed == "*" || trimmed == "*:*" {
        return Ok(None);
    }
    if trimmed.chars().count() > MAX_QUERY_CHARS {
        return Err(format!(
            "the query is too long: at most {MAX_QUERY_CHARS} characters"
        ));
    }
    let tokens = lex(trimmed)?;
    let mut parser = Parser {
        tokens,
        position: 0,
        terms: 0,
    };
    let expression = parser.expression(0)?;
    if let Some(token) = parser.peek() {
        return Err(match token {
            Token::Close { at } => {
                format!("unbalanced parentheses: ')' at character {at} closes no '('")
            }
            other => format!("unexpected {}", describe(other)),
        });
    }
    Ok(Some(expression))
}

struct Parser {
    tokens: Vec<Token>,
    position: usize,
    terms: usize,
}

fn describe(token: &Token) -> String {
    match token {
        Token::Word { text, at } => format!("{text:?} at character {at}"),
        Token::Phrase { at, .. } => format!("phrase at character {at}"),
        Token::Open { at } => format!("'(' at character {at}"),
        Token::Close { at } => format!("')' at character {at}"),
        Token::Sign { negated, at } => {
            format!("'{}' at character {at}", if *negated { '-' } else { '+' })
        }
        Token::Field { name, at, .. } => format!("{name}: at character {at}"),
    }
}

fn is_keyword(token: Option<&Token>, keyword: &str) -> bool {
    matches!(token, Some(Token::Word { text, .. }) if text == keyword)
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.position)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.position).cloned();
        self.position += 1;
        token
    }

    fn expression(&mut self, depth: usize) -> std::result::Result<Expression, String> {
        if depth > MAX_DEPTH {
            return Err(format!(
                "parentheses are nested too deeply: at most {MAX_DEPTH} levels"
            ));
        }
        let mut alternatives = vec![self.conjunction(depth)?];
        while is_keyword(self.peek(), "OR") {
            let at = self.token_position();
            self.position += 1;
            if self.at_end_of_group() {
                return Err(format!("OR at character {at} must stand between two terms"));
            }
            alternatives.push(self.conjunction(depth)?);
        }
        Ok(Expression { alternatives })
    }

    fn token_position(&self) -> usize {
        match self.peek() {
            Some(
                Token::Word { at, .. }
                | Token::Phrase { at, .. }
                | Token::Open { at }
                | Token::Close { at }
                | Token::Sign { at, .. }
                | Token::Field { at, .. },
            ) => *at,
            None => 0,
        }
    }

    fn at_end_of_group(&self) -> bool {
        matches!(self.peek(), None | Some(Token::Close { .. }))
    }

    fn conjunction(&mut self, depth: usize) -> std::result::Result<Vec<Clause>, String> {
        let mut clauses = Vec::new();
        loop {
            if self.at_end_of_group() {
                break;
            }
            if is_keyword(self.peek(), "OR") {
                if clauses.is_empty() {
                    let at = self.token_position();
                    return Err(format!("OR at character {at} must stand between two terms"));
                }
                break;
            }
            if is_keyword(self.peek(), "AND") {
                let at = self.token_position();
                self.position += 1;
                if clauses.is_empty()
                    || self.at_end_of_group()
                    || is_keyword(self.peek(), "OR")
                    || is_keyword(self.peek(), "AND")
                {
                    return Err(format!(
                        "AND at character {at} must stand between two terms"
                    ));
                }
                continue;
            }
            clauses.push(self.clause(depth)?);
        }
        if clauses.is_empty() {
            // Only reachable for an empty group; the caller reports it.
            return Err("empty query".to_owned());
        }
        Ok(clauses)
    }

    fn clause(&mut self, depth: usize) -> std::result::Result<Clause, String> {
        let mut negated = false;
        match self.peek() {
            Some(Token::Sign { negated: minus, .. }) => {
                negated = *minus;
                self.position += 1;
            }
            Some(Token::Word { text, at }) if text == "NOT" => {
                let at = *at;
                self.position += 1;
                if self.at_end_of_group() {
                    return Err(format!("NOT at character {at} must be followed by a term"));
                }
                negated = true;
            }
            _ => {}
        }
        let mut scope = Scope::Everywhere;
        if let Some(Token::Field {
            scope: field_scope,
            name,
            at,
        }) = self.peek().cloned()
        {
            self.position += 1;
            if matches!(
                self.peek(),
                None | Some(Token::Close { .. } | Token::Field { .. })
            ) || matches!(self.peek(), Some(Token::Sign { .. }))
            {
                return Err(format!(
                    "{name}: at character {at} must be followed by a term"
                ));
            }
            scope = field_scope;
        }
        let atom = match self.next() {
            Some(Token::Word { text, .. }) => {
                self.count_term()?;
                Atom::Word(text)
            }
            Some(Token::Phrase { text, .. }) => {
                self.count_term()?;
                Atom::Phrase(text)
            }
            Some(Token::Open { at }) => {
                if matches!(self.peek(), Some(Token::Close { .. })) {
                    return Err(format!("empty parentheses at character {at}"));
                }
                let inner = self.expression(depth + 1)?;
                match self.next() {
                    Some(Token::Close { .. }) => Atom::Group(inner),
                    _ => {
                        return Err(format!(
                            "unbalanced parentheses: '(' at character {at} is not closed"
                        ));
                    }
                }
            }
            Some(Token::Close { at }) => {
                return Err(format!(
                    "unbalanced parentheses: ')' at character {at} closes no '('"
                ));
            }
            Some(token @ (Token::Sign { .. } | Token::Field { .. })) => {
                return Err(format!("unexpected {}", describe(&token)));
            }
            None => return Err("the query ends where a term was expected".to_owned()),
        };
        Ok(Clause {
            negated,
            scope,
            atom,
        })
    }

    fn count_term(&mut self) -> std::result::Result<(), String> {
        self.terms += 1;
        if self.terms > MAX_TERMS {
            return Err(format!("the query has too many terms: at most {MAX_TERMS}"));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Translation

struct Builder<'a> {
    fields: &'a Fields,
    analyzer: TextAnalyzer,
    highlight_terms: BTreeSet<String>,
}

impl Builder<'_> {
    fn expression(
        &mut self,
        expression: &Expression,
        scope: Scope,
        positive: bool,
    ) -> Box<dyn Query> {
        let mut alternatives: Vec<Box<dyn Query>> = expression
            .alternatives
            .iter()
            .map(|clauses| self.conjunction(clauses, scope, positive))
            .collect();
        if alternatives.len() == 1 {
            alternatives.pop().expect("one alternative")
        } else {
            Box::new(BooleanQuery::union(alternatives))
        }
    }

    fn conjunction(&mut self, clauses: &[Clause], scope: Scope, positive: bool) -> Box<dyn Query> {
        let mut parts: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for clause in clauses {
            let clause_scope = if clause.scope == Scope::Everywhere {
                scope
            } else {
                clause.scope
            };
            let clause_positive = positive && !clause.negated;
            let query = match &clause.atom {
                Atom::Word(word) => self.word(word, clause_scope, clause_positive),
                Atom::Phrase(phrase) => self.phrase(phrase, clause_scope, clause_positive),
                Atom::Group(inner) => Some(self.expression(inner, clause_scope, clause_positive)),
            };
            // A word without any letter or digit (punctuation) constrains nothing.
            let Some(query) = query else { continue };
            let occur = if clause.negated {
                Occur::MustNot
            } else {
                Occur::Must
            };
            parts.push((occur, query));
        }
        if parts.is_empty() {
            // Only punctuation: nothing to look for, so nothing is found.
            return Box::new(EmptyQuery);
        }
        // `-word` alone means everything but the word.
        require_a_match(&mut parts);
        if parts.len() == 1 && parts[0].0 == Occur::Must {
            return parts.pop().expect("one part").1;
        }
        Box::new(BooleanQuery::new(parts))
    }

    /// The exact-value field of a scope, if it has one.
    fn exact_fields(&self, scope: Scope) -> Vec<Field> {
        match scope {
            Scope::Everywhere | Scope::Code => vec![self.fields.code],
            Scope::Provider => vec![
                self.fields.facet(Facet::Provider),
                self.fields.provider_name,
            ],
            Scope::Facet(facet) => vec![self.fields.facet(facet)],
            Scope::Name => Vec::new(),
        }
    }

    fn remember_highlights(&mut self, words: &[(String, usize)], positive: bool) {
        if positive {
            for (text, _) in words {
                self.highlight_terms.insert(text.clone());
            }
        }
    }

    /// A word matches where all of its segmented words occur (in any text, or in the names for
    /// `name:`), each scoring more in a name. A word that may be a code also matches the code.
    fn word(&mut self, word: &str, scope: Scope, positive: bool) -> Option<Box<dyn Query>> {
        let mut alternatives: Vec<Box<dyn Query>> = Vec::new();
        if matches!(scope, Scope::Everywhere | Scope::Name) {
            let words = analyze(&mut self.analyzer, word);
            self.remember_highlights(&words, positive);
            if !words.is_empty() {
                let matchers: Vec<Box<dyn Query>> = words
                    .iter()
                    .map(|(text, _)| self.segmented_word(text, scope))
                    .collect();
                alternatives.push(all_of(matchers.into_iter()));
            }
        }
        // Resource codes hold dashes: only such words are looked up as codes everywhere.
        if scope != Scope::Everywhere || word.contains('-') {
            let boost = if scope == Scope::Everywhere {
                CODE_BOOST
            } else {
                1.0
            };
            for field in self.exact_fields(scope) {
                alternatives.push(Box::new(BoostQuery::new(exact(field, word), boost)));
            }
        }
        match alternatives.len() {
            0 => None,
            1 => alternatives.pop(),
            _ => Some(Box::new(BooleanQuery::union(alternatives))),
        }
    }

    /// One word of the query's segmentation, in the names for `name:`. Where the text was cut
    /// across the word (`生态环境|监测数据` holds `环境监测`), the index holds the word too (see
    /// `schema.rs`), so one term finds it either way.
    fn segmented_word(&self, text: &str, scope: Scope) -> Box<dyn Query> {
        match scope {
            Scope::Name => term(self.fields.name, text),
            _ => self.scored_word(text),
        }
    }

    /// One segmented word anywhere. Names are in `all` twice (see `indexer.rs`), which is how
    /// a word in the name scores more: one posting list per word keeps broad words cheap to
    /// score, where an extra clause on the name field would double the work.
    fn scored_word(&self, text: &str) -> Box<dyn Query> {
        term(self.fields.all, text)
    }

    /// A phrase matches where its words occur in order at their distances, within one text of
    /// the entry; in the names (`name:`), where all its words occur in a name.
    fn phrase(&mut self, phrase: &str, scope: Scope, positive: bool) -> Option<Box<dyn Query>> {
        let mut alternatives: Vec<Box<dyn Query>> = Vec::new();
        if matches!(scope, Scope::Everywhere | Scope::Name) {
            let words = analyze(&mut self.analyzer, &join_chinese(phrase));
            self.remember_highlights(&words, positive);
            if !words.is_empty() {
                alternatives.push(match scope {
                    Scope::Name => {
                        all_of(words.iter().map(|(text, _)| term(self.fields.name, text)))
                    }
                    _ => phrase_in(self.fields.all, &words),
                });
            }
        }
        if scope != Scope::Everywhere {
            for field in self.exact_fields(scope) {
                alternatives.push(exact(field, phrase));
            }
        }
        match alternatives.len() {
            0 => None,
            1 => alternatives.pop(),
            _ => Some(Box::new(BooleanQuery::union(alternatives))),
        }
    }
}

fn term(field: Field, text: &str) -> Box<dyn Query> {
    Box::new(TermQuery::new(
        Term::from_field_text(field, text),
        IndexRecordOption::WithFreqs,
    ))
}

/// Removes spaces between two non-ASCII characters. Chinese text has no spaces between words,
/// but people type them in phrases (`"公积金 缴存"`); positions are character offsets, so a space
/// would break the phrase. Spaces next to Latin words stay, as they are in the text.
fn join_chinese(phrase: &str) -> String {
    let chars: Vec<char> = phrase.chars().collect();
    let mut joined = String::with_capacity(phrase.len());
    for (index, &c) in chars.iter().enumerate() {
        if c.is_whitespace() {
            let before = chars[..index].iter().rev().find(|c| !c.is_whitespace());
            let after = chars[index + 1..].iter().find(|c| !c.is_whitespace());
            if before.is_some_and(|c| !c.is_ascii()) && after.is_some_and(|c| !c.is_ascii()) {
                continue;
            }
        }
        joined.push(c);
    }
    joined
}

fn phrase_in(field: Field, words: &[(String, usize)]) -> Box<dyn Query> {
    debug_assert!(!words.is_empty(), "a phrase has words");
    match words {
        [(word, _)] => term(field, word),
        _ => {
            let first = words[0].1;
            Box::new(PhraseQuery::new_with_offset(
                words
                    .iter()
                    .map(|(word, position)| (position - first, Term::from_field_text(field, word)))
                    .collect(),
            ))
        }
    }
}

/// Tokens and positions of `text`.
fn analyze(analyzer: &mut TextAnalyzer, text: &str) -> Vec<(String, usize)> {
    let mut stream = analyzer.token_stream(text);
    let mut words = Vec::new();
    while let Some(token) = stream.next() {
        words.push((token.text.clone(), token.position));
    }
    words
}

fn all_of(queries: impl Iterator<Item = Box<dyn Query>>) -> Box<dyn Query> {
    let mut queries: Vec<Box<dyn Query>> = queries.collect();
    if queries.len() == 1 {
        queries.pop().expect("one query")
    } else {
        Box::new(BooleanQuery::intersection(queries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(text: &str) -> Atom {
        Atom::Word(text.to_owned())
    }

    fn clauses(text: &str) -> Vec<(bool, Scope, Atom)> {
        let expression = parse(text).unwrap().unwrap();
        assert_eq!(expression.alternatives.len(), 1);
        expression
            .alternatives
            .into_iter()
            .next()
            .unwrap()
            .into_iter()
            .map(|clause| (clause.negated, clause.scope, clause.atom))
            .collect()
    }

    #[test]
    fn words_signs_fields_and_phrases() {
        assert_eq!(
            clauses("公积金 -贷款 +name:缴存 \"住房 公积金\" kind:dataset"),
            vec![
                (false, Scope::Everywhere, word("公积金")),
                (true, Scope::Everywhere, word("贷款")),
                (false, Scope::Name, word("缴存")),
                (false, Scope::Everywhere, Atom::Phrase("住房 公积金".into())),
                (false, Scope::Facet(Facet::Kind), word("dataset")),
            ]
        );
        assert_eq!(
            clauses("320100-B01-000123 e-government 12:30"),
            vec![
                (false, Scope::Everywhere, word("320100-B01-000123")),
                (false, Scope::Everywhere, word("e-government")),
                (false, Scope::Everywhere, word("12:30")),
            ]
        );
        assert_eq!(
            clauses("“公积金” NOT 贷款"),
            vec![
                (false, Scope::Everywhere, Atom::Phrase("公积金".into())),
                (true, Scope::Everywhere, word("贷款")),
            ]
        );
    }

    #[test]
    fn or_and_groups() {
        let expression = parse("(公积金 OR 社保) AND 玄武区").unwrap().unwrap();
        assert_eq!(expression.alternatives.len(), 1);
        let expression = parse("公积金 OR 社保 玄武区").unwrap().unwrap();
        assert_eq!(expression.alternatives.len(), 2);
        assert_eq!(expression.alternatives[1].len(), 2);
        assert_eq!(parse("*:*").unwrap(), None);
        assert_eq!(parse("   ").unwrap(), None);
    }

    /// A condition whose parts are each one facet's values leaves them to the collector, two of
    /// one facet as two filters, when the query is one broad word; any other part makes the
    /// query check the whole condition.
    #[tokio::test]
    async fn one_facets_values_of_a_condition_stay_collector_filters() {
        let index = crate::CatalogIndex::in_memory(crate::IndexOptions {
            writer_memory_bytes: 32 << 20,
            writer_threads: 1,
            ..crate::IndexOptions::default()
        })
        .unwrap();
        let documents = (0..4)
            .map(|i| crate::SearchDocument {
                code: format!("320100-B01-00000{i}"),
                name: "人口信息".into(),
                name_en: None,
                summary: String::new(),
                tags: vec!["a".into(), "b".into()],
                items: Vec::new(),
                provider_code: "11320100MB0000001X".into(),
                provider_name: "南京市数据局".into(),
                provider_level: "municipal".into(),
                kind: "dataset".into(),
                sharing_type: "unconditional".into(),
                open_type: "open".into(),
                classification: "B01".into(),
                update_cycle: "daily".into(),
                origin_node: "cn-js-nanjing".into(),
                modified_at: 1_700_000_000_000_000 + i,
                payload: "{}".into(),
            })
            .collect();
        index.upsert(documents).await.unwrap();
        index.flush().await.unwrap();
        let shared = &*index.shared;
        let searcher = shared.reader.searcher();
        let plan = |condition: Condition| {
            build(
                &shared.index,
                &shared.fields,
                "人口",
                &[],
                &[],
                Some(&condition),
            )
            .unwrap()
            .plan(&shared.fields, true, &searcher)
        };
        let tag = |value: &str| Condition::Value(Facet::Tag, value.to_owned());
        let values = |facet, values: &[&str]| {
            (
                facet,
                values.iter().map(|value| value.to_string()).collect(),
            )
        };
        let both = plan(Condition::All(vec![tag("a"), tag("b")]));
        assert!(both.prune);
        assert_eq!(
            both.collector_filters,
            vec![values(Facet::Tag, &["a"]), values(Facet::Tag, &["b"])]
        );
        let either = plan(Condition::Any(vec![tag("a"), tag("b")]));
        assert!(either.prune);
        assert_eq!(
            either.collector_filters,
            vec![values(Facet::Tag, &["a", "b"])]
        );
        for condition in [
            Condition::Any(vec![
                tag("a"),
                Condition::Value(Facet::OpenType, "open".into()),
            ]),
            Condition::All(vec![tag("a"), Condition::Not(Box::new(tag("b")))]),
        ] {
            let planned = plan(condition.clone());
            assert!(!planned.prune, "{condition:?}");
            assert!(planned.collector_filters.is_empty(), "{condition:?}");
        }
    }

    #[test]
    fn spaces_between_chinese_words_of_a_phrase_are_dropped() {
        assert_eq!(join_chinese("公积金 缴存"), "公积金缴存");
        assert_eq!(join_chinese("公积金  缴存 信息"), "公积金缴存信息");
        assert_eq!(join_chinese("housing fund"), "housing fund");
        assert_eq!(join_chinese("Housing 公积金"), "Housing 公积金");
    }

    #[test]
    fn mistakes_are_explained() {
        for (query, fragment) in [
            ("\"公积金", "unbalanced quotes"),
            ("“公积金", "unbalanced quotes"),
            ("公积金”", "unbalanced quotes"),
            ("(公积金 社保", "unbalanced parentheses"),
            ("公积金)", "unbalanced parentheses"),
            ("()", "empty parentheses"),
            ("公积金 OR", "OR at character 5"),
            ("OR 公积金", "OR at character 1"),
            ("公积金 AND", "AND"),
            ("- 公积金", "'-' at character 1 must be followed"),
            ("公积金 name:", "name: at character 5 must be followed"),
            ("公积金 NOT", "NOT at character 5"),
            ("((((((((((a))))))))))", "nested too deeply"),
        ] {
            let message = parse(query).unwrap_err();
            assert!(message.contains(fragment), "{query}: {message}");
        }
        let long = "字".repeat(MAX_QUERY_CHARS + 1);
        assert!(parse(&long).unwrap_err().contains("too long"));
        let many = "a ".repeat(MAX_TERMS + 1);
        assert!(parse(&many).unwrap_err().contains("too many terms"));
    }
}
