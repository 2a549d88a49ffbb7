//! A small RDF graph with Turtle and JSON-LD writers: enough for the DCAT-AP export, so that both
//! serializations come from one mapping and cannot drift apart.

use std::fmt::Write;

use serde_json::{Map, Value, json};

/// The prefixes used in civitas RDF, as (prefix, namespace IRI).
pub const PREFIXES: &[(&str, &str)] = &[
    ("dcat", "http://www.w3.org/ns/dcat#"),
    ("dct", "http://purl.org/dc/terms/"),
    ("foaf", "http://xmlns.com/foaf/0.1/"),
    ("vcard", "http://www.w3.org/2006/vcard/ns#"),
    ("skos", "http://www.w3.org/2004/02/skos/core#"),
    ("xsd", "http://www.w3.org/2001/XMLSchema#"),
    ("rdfs", "http://www.w3.org/2000/01/rdf-schema#"),
    ("hydra", "http://www.w3.org/ns/hydra/core#"),
    ("civ", "urn:civitas:vocab:"),
];

#[derive(Debug, Clone, PartialEq)]
pub enum Term {
    /// An absolute IRI.
    Iri(String),
    /// A prefixed name from [`PREFIXES`], e.g. `dcat:Dataset`.
    Name(&'static str),
    Blank(u32),
    Literal {
        value: String,
        language: Option<&'static str>,
        /// A prefixed datatype name such as `xsd:dateTime`.
        datatype: Option<&'static str>,
    },
}

impl Term {
    pub fn iri(iri: impl Into<String>) -> Term {
        Term::Iri(iri.into())
    }

    pub fn text(value: impl Into<String>) -> Term {
        Term::Literal {
            value: value.into(),
            language: None,
            datatype: None,
        }
    }

    pub fn lang(value: impl Into<String>, language: &'static str) -> Term {
        Term::Literal {
            value: value.into(),
            language: Some(language),
            datatype: None,
        }
    }

    pub fn typed(value: impl Into<String>, datatype: &'static str) -> Term {
        Term::Literal {
            value: value.into(),
            language: None,
            datatype: Some(datatype),
        }
    }
}

/// Triples grouped by subject, in the order subjects were first seen.
#[derive(Debug, Default)]
pub struct Graph {
    subjects: Vec<(Term, Vec<(&'static str, Term)>)>,
    next_blank: u32,
}

impl Graph {
    pub fn blank(&mut self) -> Term {
        self.next_blank += 1;
        Term::Blank(self.next_blank)
    }

    pub fn add(&mut self, subject: &Term, predicate: &'static str, object: Term) {
        debug_assert!(matches!(subject, Term::Iri(_) | Term::Blank(_)));
        match self.subjects.iter_mut().find(|(s, _)| s == subject) {
            Some((_, properties)) => properties.push((predicate, object)),
            None => self
                .subjects
                .push((subject.clone(), vec![(predicate, object)])),
        }
    }

    pub fn to_turtle(&self) -> String {
        let mut out = String::new();
        for (prefix, namespace) in PREFIXES {
            let _ = writeln!(out, "@prefix {prefix}: <{namespace}> .");
        }
        for (subject, properties) in &self.subjects {
            out.push('\n');
            out.push_str(&turtle_term(subject));
            let mut index = 0;
            while index < properties.len() {
                let predicate = properties[index].0;
                let objects: Vec<String> = properties[index..]
                    .iter()
                    .take_while(|(p, _)| *p == predicate)
                    .map(|(_, object)| turtle_term(object))
                    .collect();
                index += objects.len();
                let predicate = if predicate == "rdf:type" {
                    "a"
                } else {
                    predicate
                };
                let separator = if index == objects.len() {
                    "\n    "
                } else {
                    " ;\n    "
                };
                let _ = write!(out, "{separator}{predicate} {}", objects.join(" , "));
            }
            out.push_str(" .\n");
        }
        out
    }

    pub fn to_jsonld(&self) -> Value {
        let mut context = Map::new();
        for (prefix, namespace) in PREFIXES {
            context.insert((*prefix).to_owned(), json!(namespace));
        }
        let graph: Vec<Value> = self
            .subjects
            .iter()
            .map(|(subject, properties)| {
                let mut node = Map::new();
                node.insert("@id".into(), json!(jsonld_id(subject)));
                for (predicate, object) in properties {
                    if *predicate == "rdf:type" {
                        let types = node.entry("@type").or_insert_with(|| json!([]));
                        if let Term::Name(name) = object {
                            types.as_array_mut().expect("array").push(json!(name));
                        }
                        continue;
                    }
                    let values = node
                        .entry((*predicate).to_owned())
                        .or_insert_with(|| json!([]));
                    values
                        .as_array_mut()
                        .expect("array")
                        .push(jsonld_value(object));
                }
                Value::Object(node)
            })
            .collect();
        json!({ "@context": context, "@graph": graph })
    }
}

fn turtle_term(term: &Term) -> String {
    match term {
        Term::Iri(iri) => format!("<{iri}>"),
        Term::Name(name) => (*name).to_owned(),
        Term::Blank(id) => format!("_:b{id}"),
        Term::Literal {
            value,
            language,
            datatype,
        } => {
            let mut text = String::with_capacity(value.len() + 2);
            text.push('"');
            for character in value.chars() {
                match character {
                    '"' => text.push_str("\\\""),
                    '\\' => text.push_str("\\\\"),
                    '\n' => text.push_str("\\n"),
                    '\r' => text.push_str("\\r"),
                    '\t' => text.push_str("\\t"),
                    c => text.push(c),
                }
            }
            text.push('"');
            if let Some(language) = language {
                text.push('@');
                text.push_str(language);
            } else if let Some(datatype) = datatype {
                text.push_str("^^");
                text.push_str(datatype);
            }
            text
        }
    }
}

fn jsonld_id(term: &Term) -> String {
    match term {
        Term::Iri(iri) => iri.clone(),
        Term::Name(name) => (*name).to_owned(),
        Term::Blank(id) => format!("_:b{id}"),
        Term::Literal { .. } => unreachable!("literals are never subjects"),
    }
}

fn jsonld_value(term: &Term) -> Value {
    match term {
        Term::Literal {
            value,
            language: Some(language),
            ..
        } => json!({ "@value": value, "@language": language }),
        Term::Literal {
            value,
            datatype: Some(datatype),
            ..
        } => json!({ "@value": value, "@type": datatype }),
        Term::Literal { value, .. } => json!({ "@value": value }),
        other => json!({ "@id": jsonld_id(other) }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_serializations_carry_the_same_statements() {
        let mut graph = Graph::default();
        let dataset = Term::iri("http://x.test/dataset/1");
        graph.add(&dataset, "rdf:type", Term::Name("dcat:Dataset"));
        graph.add(&dataset, "dct:title", Term::lang("住房\"公积金\"", "zh"));
        graph.add(&dataset, "dct:title", Term::lang("Housing fund", "en"));
        let distribution = graph.blank();
        graph.add(&dataset, "dcat:distribution", distribution.clone());
        graph.add(
            &distribution,
            "dct:modified",
            Term::typed("2026-01-01T00:00:00Z", "xsd:dateTime"),
        );
        let turtle = graph.to_turtle();
        assert!(turtle.contains("<http://x.test/dataset/1>\n    a dcat:Dataset ;\n    dct:title \"住房\\\"公积金\\\"\"@zh , \"Housing fund\"@en ;\n    dcat:distribution _:b1 ."), "{turtle}");
        assert!(
            turtle.contains("_:b1\n    dct:modified \"2026-01-01T00:00:00Z\"^^xsd:dateTime ."),
            "{turtle}"
        );
        let jsonld = graph.to_jsonld();
        assert_eq!(jsonld["@graph"][0]["@type"], json!(["dcat:Dataset"]));
        assert_eq!(
            jsonld["@graph"][0]["dct:title"][1],
            json!({ "@value": "Housing fund", "@language": "en" })
        );
        assert_eq!(jsonld["@graph"][1]["@id"], "_:b1");
    }
}
