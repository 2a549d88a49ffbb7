//! Field-level control of JSON answers: every field whose information item is not granted is
//! removed, personal items are masked as the grant says, and fields that map to no item never
//! leave. Pure: the gateway compiles a service's field mappings into a [`FieldTree`] once and
//! filters each answer with the treatment the decision gave.
//!
//! Two implementations of one rule: [`FieldTree::filter`] works on a parsed [`Value`], and
//! [`FieldTree::filter_json`], which the gateway uses, filters JSON text as it parses it, without
//! building the answer's tree (the property test checks that they agree).

use std::{borrow::Cow, collections::BTreeSet, fmt};

use civitas_access::mask;
use civitas_core::{
    CitizenId,
    catalog::MaskKind,
    service::{FieldMapping, FieldPath, FieldStep},
};
use serde::{
    Deserialize, Deserializer,
    de::{DeserializeSeed, Error as _, IgnoredAny, MapAccess, SeqAccess, Visitor},
};
use serde_json::{Value, value::RawValue};

/// What happens to one item's values in this answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Treatment {
    Deliver,
    Mask(MaskKind),
    Drop,
}

#[derive(Debug, Default)]
struct Node {
    /// The item whose values sit at this node; a node with an item is treated as a whole.
    item: Option<usize>,
    /// The object keys below this node. A handful per node: a list compares faster than a hash
    /// map hashes.
    keys: Vec<(String, Node)>,
    each: Option<Box<Node>>,
}

impl Node {
    fn child(&self, key: &str) -> Option<&Node> {
        self.keys
            .iter()
            .find(|(candidate, _)| candidate == key)
            .map(|(_, node)| node)
    }
}

/// A service's field mappings, compiled: a tree of the answer's shape with items at its leaves.
#[derive(Debug, Default)]
pub struct FieldTree {
    root: Node,
    items: Vec<String>,
}

/// What a filtered answer delivered.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Delivered {
    /// Items with at least one value delivered (plain or masked).
    pub items: BTreeSet<String>,
    /// Items with at least one value delivered masked.
    pub masked: BTreeSet<String>,
    /// Valid citizen ID numbers among the delivered values of citizen-ID items, before masking.
    pub citizen_ids: BTreeSet<String>,
}

impl FieldTree {
    /// Compiles mappings; paths were validated when the service was registered, so a path that
    /// does not parse here is skipped (and so its field is never delivered).
    pub fn compile(mappings: &[FieldMapping]) -> FieldTree {
        let mut tree = FieldTree::default();
        for mapping in mappings {
            let Ok(path) = FieldPath::parse(&mapping.path) else {
                continue;
            };
            let index = match tree.items.iter().position(|item| *item == mapping.item) {
                Some(index) => index,
                None => {
                    tree.items.push(mapping.item.clone());
                    tree.items.len() - 1
                }
            };
            let mut node = &mut tree.root;
            for step in &path.steps {
                node = match step {
                    FieldStep::Key(key) => {
                        let position = match node.keys.iter().position(|(k, _)| k == key) {
                            Some(position) => position,
                            None => {
                                node.keys.push((key.clone(), Node::default()));
                                node.keys.len() - 1
                            }
                        };
                        &mut node.keys[position].1
                    }
                    FieldStep::Each => node.each.get_or_insert_with(Default::default),
                };
            }
            node.item = Some(index);
        }
        tree
    }

    /// The item codes the mappings mention.
    pub fn items(&self) -> &[String] {
        &self.items
    }

    /// Filters `value` in place. `treatment` says what happens to each item (by code);
    /// `citizen_id_items` are the items whose values are citizen ID numbers, collected for the
    /// personal-data access index.
    pub fn filter(
        &self,
        value: &mut Value,
        treatment: &dyn Fn(&str) -> Treatment,
        is_citizen_id_item: &dyn Fn(&str) -> bool,
    ) -> Delivered {
        let treatments: Vec<(Treatment, bool)> = self
            .items
            .iter()
            .map(|item| (treatment(item), is_citizen_id_item(item)))
            .collect();
        let mut seen = Seen::new(self.items.len());
        if !self.walk(value, &self.root, &treatments, &mut seen) {
            *value = Value::Null;
        }
        seen.into_delivered(self)
    }

    /// Returns whether `value` stays.
    fn walk(
        &self,
        value: &mut Value,
        node: &Node,
        treatments: &[(Treatment, bool)],
        seen: &mut Seen,
    ) -> bool {
        if let Some(index) = node.item {
            let (treatment, citizen_ids) = treatments[index];
            return apply(value, index, treatment, citizen_ids, seen);
        }
        match value {
            Value::Object(map) => {
                map.retain(|key, child| match node.child(key) {
                    Some(child_node) => self.walk(child, child_node, treatments, seen),
                    None => false,
                });
                true
            }
            Value::Array(elements) => match &node.each {
                Some(each) => {
                    elements.retain_mut(|element| self.walk(element, each, treatments, seen));
                    true
                }
                None => false,
            },
            // A scalar that maps to no item never leaves.
            _ => false,
        }
    }
}

impl FieldTree {
    /// Filters the JSON text `input` as [`FieldTree::filter`] filters its parsed value, and
    /// returns the filtered text. Delivered values are copied as they came (checked by the
    /// parser), masked ones are parsed, masked and written, and everything else is skipped (but
    /// still checked): the whole input must be one well-formed JSON value, or nothing is
    /// returned. Numbers and strings keep their original spelling (escapes included, even of a
    /// lone surrogate, which the JSON grammar allows and a parsed [`Value`] cannot hold). An
    /// object that names a key twice keeps both members, each filtered the same way.
    pub fn filter_json(
        &self,
        input: &[u8],
        treatment: &dyn Fn(&str) -> Treatment,
        is_citizen_id_item: &dyn Fn(&str) -> bool,
    ) -> serde_json::Result<(Vec<u8>, Delivered)> {
        let mut filtering = Filtering {
            treatments: self
                .items
                .iter()
                .map(|item| (treatment(item), is_citizen_id_item(item)))
                .collect(),
            seen: Seen::new(self.items.len()),
            out: Vec::with_capacity(input.len()),
        };
        let mut deserializer = serde_json::Deserializer::from_slice(input);
        let kept = NodeSeed {
            filtering: &mut filtering,
            node: &self.root,
        }
        .deserialize(&mut deserializer)?;
        deserializer.end()?;
        if !kept {
            filtering.out.clear();
            filtering.out.extend_from_slice(b"null");
        }
        Ok((filtering.out, filtering.seen.into_delivered(self)))
    }
}

/// What a filter delivered so far, by item index.
struct Seen {
    items: Vec<bool>,
    masked: Vec<bool>,
    citizen_ids: BTreeSet<String>,
}

impl Seen {
    fn new(items: usize) -> Seen {
        Seen {
            items: vec![false; items],
            masked: vec![false; items],
            citizen_ids: BTreeSet::new(),
        }
    }

    fn into_delivered(self, tree: &FieldTree) -> Delivered {
        let codes = |flags: Vec<bool>| {
            flags
                .into_iter()
                .zip(&tree.items)
                .filter(|(flag, _)| *flag)
                .map(|(_, code)| code.clone())
                .collect()
        };
        Delivered {
            items: codes(self.items),
            masked: codes(self.masked),
            citizen_ids: self.citizen_ids,
        }
    }
}

/// The state of one streaming filter: the treatments by item index and what was written.
struct Filtering {
    treatments: Vec<(Treatment, bool)>,
    seen: Seen,
    out: Vec<u8>,
}

/// Filters the next value at `node`, writing what stays; yields whether anything was written.
struct NodeSeed<'f, 't> {
    filtering: &'f mut Filtering,
    node: &'t Node,
}

impl<'de> DeserializeSeed<'de> for NodeSeed<'_, '_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        let Some(index) = self.node.item else {
            return deserializer.deserialize_any(self);
        };
        let filtering = self.filtering;
        let (treatment, citizen_ids) = filtering.treatments[index];
        match treatment {
            Treatment::Drop => {
                IgnoredAny::deserialize(deserializer)?;
                Ok(false)
            }
            Treatment::Deliver if !citizen_ids => {
                let raw = <&RawValue>::deserialize(deserializer)?;
                filtering.out.extend_from_slice(raw.get().as_bytes());
                filtering.seen.items[index] = true;
                Ok(true)
            }
            Treatment::Deliver | Treatment::Mask(_) => {
                let mut value = Value::deserialize(deserializer)?;
                let kept = apply(
                    &mut value,
                    index,
                    treatment,
                    citizen_ids,
                    &mut filtering.seen,
                );
                if kept {
                    serde_json::to_writer(&mut filtering.out, &value).map_err(D::Error::custom)?;
                }
                Ok(kept)
            }
        }
    }
}

impl<'de> Visitor<'de> for NodeSeed<'_, '_> {
    type Value = bool;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a JSON value")
    }

    // A scalar where the mappings expect a structure maps to no item: it never leaves.
    fn visit_bool<E>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_i64<E>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_u64<E>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_f64<E>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_str<E>(self, _: &str) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_unit<E>(self) -> Result<bool, E> {
        Ok(false)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let filtering = self.filtering;
        filtering.out.push(b'{');
        let mut empty = true;
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let Some(child) = self.node.child(&key) else {
                map.next_value::<IgnoredAny>()?;
                continue;
            };
            let mark = filtering.out.len();
            if !empty {
                filtering.out.push(b',');
            }
            serde_json::to_writer(&mut filtering.out, key.as_ref()).map_err(A::Error::custom)?;
            filtering.out.push(b':');
            let kept = map.next_value_seed(NodeSeed {
                filtering: &mut *filtering,
                node: child,
            })?;
            if kept {
                empty = false;
            } else {
                filtering.out.truncate(mark);
            }
        }
        filtering.out.push(b'}');
        Ok(true)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        let Some(each) = self.node.each.as_deref() else {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            return Ok(false);
        };
        let filtering = self.filtering;
        filtering.out.push(b'[');
        let mut empty = true;
        loop {
            let mark = filtering.out.len();
            if !empty {
                filtering.out.push(b',');
            }
            match seq.next_element_seed(NodeSeed {
                filtering: &mut *filtering,
                node: each,
            })? {
                Some(true) => empty = false,
                Some(false) => filtering.out.truncate(mark),
                None => {
                    filtering.out.truncate(mark);
                    break;
                }
            }
        }
        filtering.out.push(b']');
        Ok(true)
    }
}

/// An object's key, borrowed from the input unless it had escapes.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Cow<'de, str>, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a key")
    }

    fn visit_borrowed_str<E>(self, key: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(key))
    }

    fn visit_str<E>(self, key: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(key.to_owned()))
    }

    fn visit_string<E>(self, key: String) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(key))
    }
}

/// Applies an item's treatment to one of its values; returns whether the value stays.
fn apply(
    value: &mut Value,
    index: usize,
    treatment: Treatment,
    citizen_ids: bool,
    seen: &mut Seen,
) -> bool {
    if treatment == Treatment::Drop {
        return false;
    }
    if citizen_ids {
        collect_citizen_ids(value, &mut seen.citizen_ids);
    }
    match treatment {
        Treatment::Drop => false,
        Treatment::Deliver => {
            seen.items[index] = true;
            true
        }
        Treatment::Mask(kind) => {
            let text = match value {
                Value::String(text) => std::mem::take(text),
                Value::Number(number) => number.to_string(),
                Value::Bool(flag) => flag.to_string(),
                Value::Null => {
                    seen.items[index] = true;
                    return true;
                }
                // A structure cannot be masked field by field here: it does not leave.
                Value::Array(_) | Value::Object(_) => return false,
            };
            match mask::mask(kind, &text) {
                Some(masked) => {
                    *value = Value::String(masked);
                    seen.items[index] = true;
                    seen.masked[index] = true;
                    true
                }
                None => false,
            }
        }
    }
}

fn collect_citizen_ids(value: &Value, into: &mut BTreeSet<String>) {
    match value {
        Value::String(text) => {
            if let Ok(id) = CitizenId::parse(text) {
                into.insert(id.as_str().to_owned());
            }
        }
        // An ID number whose check character is a digit fits in a JSON number, and a provider
        // may send it as one: the person's data was delivered all the same.
        Value::Number(number) => {
            if let Some(id) = number
                .as_u64()
                .and_then(|n| CitizenId::parse(&n.to_string()).ok())
            {
                into.insert(id.as_str().to_owned());
            }
        }
        Value::Array(elements) => elements.iter().for_each(|e| collect_citizen_ids(e, into)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// Filters `answer` both ways, checks that they agree, and returns the result.
    fn filter_both(
        tree: &FieldTree,
        answer: &Value,
        treatment: &dyn Fn(&str) -> Treatment,
        is_citizen_id_item: &dyn Fn(&str) -> bool,
    ) -> (Value, Delivered) {
        // Both from the same text, as the gateway gets it: parsing a float may round it.
        let input = answer.to_string();
        let mut parsed: Value = serde_json::from_str(&input).unwrap();
        let delivered = tree.filter(&mut parsed, treatment, is_citizen_id_item);
        let (text, streamed) = tree
            .filter_json(input.as_bytes(), treatment, is_citizen_id_item)
            .expect("well-formed JSON filters");
        let streamed_value: Value = serde_json::from_slice(&text).expect("the output is JSON");
        assert_eq!(streamed_value, parsed, "{}", String::from_utf8_lossy(&text));
        assert_eq!(streamed, delivered);
        (parsed, delivered)
    }

    fn tree(mappings: &[(&str, &str)]) -> FieldTree {
        FieldTree::compile(
            &mappings
                .iter()
                .map(|(item, path)| FieldMapping {
                    item: (*item).into(),
                    path: (*path).into(),
                })
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn drops_ungranted_and_unmapped_fields_and_masks_personal_ones() {
        let tree = tree(&[
            ("id_number", "$.id_number"),
            ("name", "$.name"),
            ("balance", "$.balance"),
            ("deposit", "$.deposits[*].amount"),
            ("month", "$.deposits[*].month"),
        ]);
        let answer = json!({
            "id_number": "11010519491231002X",
            "name": "欧阳娜娜",
            "balance": 36512.4,
            "secret_note": "never leaves",
            "deposits": [{"month": "2026-10", "amount": 1824.0, "operator": "x"}],
            "nested": {"a": 1}
        });
        let treatment = |item: &str| match item {
            "id_number" => Treatment::Mask(MaskKind::CitizenId),
            "name" => Treatment::Mask(MaskKind::Name),
            "balance" => Treatment::Drop,
            _ => Treatment::Deliver,
        };
        let (answer, delivered) =
            filter_both(&tree, &answer, &treatment, &|item| item == "id_number");
        assert_eq!(
            answer,
            json!({
                "id_number": "110105********002X",
                "name": "欧阳**",
                "deposits": [{"month": "2026-10", "amount": 1824.0}]
            })
        );
        assert_eq!(
            delivered
                .items
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
            ["deposit", "id_number", "month", "name"]
        );
        assert_eq!(delivered.masked.len(), 2);
        assert_eq!(
            delivered.citizen_ids.iter().next().unwrap(),
            "11010519491231002X"
        );
    }

    #[test]
    fn citizen_ids_sent_as_numbers_are_found() {
        let tree = tree(&[("id_number", "$[*].id"), ("name", "$[*].name")]);
        let answer = json!([
            {"id": 320102199003071239_u64, "name": "张三"},
            {"id": 320104198812120457_u64, "name": "李四"},
            {"id": 12345, "name": "not an ID number"}
        ]);
        for treatment in [Treatment::Deliver, Treatment::Mask(MaskKind::CitizenId)] {
            let (_, delivered) =
                filter_both(&tree, &answer, &|_| treatment, &|item| item == "id_number");
            assert_eq!(
                delivered.citizen_ids,
                BTreeSet::from([
                    "320102199003071239".to_owned(),
                    "320104198812120457".to_owned()
                ]),
                "{treatment:?}"
            );
        }
    }

    #[test]
    fn arrays_of_records_and_unmapped_roots() {
        let tree = tree(&[("name", "$[*].name")]);
        let answer = json!([{"name": "张三", "phone": "13812345678"}, {"name": "李四"}]);
        let (answer, _) = filter_both(&tree, &answer, &|_| Treatment::Deliver, &|_| false);
        assert_eq!(answer, json!([{"name": "张三"}, {"name": "李四"}]));
        let scalar = json!("just a string");
        let (scalar, _) = filter_both(&tree, &scalar, &|_| Treatment::Deliver, &|_| false);
        assert_eq!(scalar, Value::Null);
    }

    #[test]
    fn streaming_keeps_spelling_and_refuses_malformed_json() {
        let tree = tree(&[("name", "$.name"), ("amount", "$.amounts[*]")]);
        let deliver = |_: &str| Treatment::Deliver;
        let check = |input: &str, expected: &str| {
            let (text, _) = tree
                .filter_json(input.as_bytes(), &deliver, &|_| false)
                .unwrap();
            assert_eq!(String::from_utf8(text).unwrap(), expected, "{input}");
        };
        check(
            r#"{ "n\u0061me" : "\u738b\u82b3", "amounts": [1e2, 12345678901234567890123, "x"], "other": {"deep": [1, {"a": null}]} }"#,
            r#"{"name":"\u738b\u82b3","amounts":[1e2,12345678901234567890123,"x"]}"#,
        );
        check(r#"{"amounts": 3, "name": null}"#, r#"{"name":null}"#);
        check("[1, 2]", "null");
        check(
            r#"{"name": "a", "name": "b"}"#,
            r#"{"name":"a","name":"b"}"#,
        );
        // The grammar allows escapes of lone surrogates; a delivered value keeps them as written.
        check(r#"{"name": "\ud800"}"#, r#"{"name":"\ud800"}"#);
        for malformed in [
            "",
            "{",
            r#"{"name": "a",}"#,
            r#"{"name": "a"} trailing"#,
            r#"{"other": [1, 2,]}"#,
            r#"{"other": tru}"#,
            "{\"name\": \"\u{1}\"}",
        ] {
            assert!(
                tree.filter_json(malformed.as_bytes(), &deliver, &|_| false)
                    .is_err(),
                "{malformed:?} is not JSON"
            );
        }
    }

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            (-1e6f64..1e6).prop_map(Value::from),
            prop_oneof![
                Just("11010519491231002X".to_owned()),
                Just("13812345678".to_owned()),
                Just("欧阳娜娜".to_owned()),
                "[a-z\\\"\u{0}-\u{7f}\u{4e00}-\u{4e10}]{0,8}",
            ]
            .prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..5).prop_map(Value::from),
                prop::collection::vec(
                    (
                        prop::sample::select(vec!["a", "b", "c", "id", "name", "list", "z"]),
                        inner
                    ),
                    0..6
                )
                .prop_map(|members| {
                    Value::Object(
                        members
                            .into_iter()
                            .map(|(key, value)| (key.to_owned(), value))
                            .collect(),
                    )
                }),
            ]
        })
    }

    fn treatment() -> impl Strategy<Value = Treatment> {
        prop_oneof![
            Just(Treatment::Deliver),
            Just(Treatment::Drop),
            Just(Treatment::Mask(MaskKind::CitizenId)),
            Just(Treatment::Mask(MaskKind::Name)),
            Just(Treatment::Mask(MaskKind::FreeText)),
        ]
    }

    proptest! {
        #[test]
        fn streaming_and_parsed_filters_agree(
            answer in json_value(),
            treatments in prop::collection::vec(treatment(), 6),
        ) {
            let tree = tree(&[
                ("a", "$.a"),
                ("id", "$.id"),
                ("name", "$.list[*].name"),
                ("deep", "$.b.c"),
                ("ids", "$.list[*].id"),
                ("each", "$[*].a"),
            ]);
            let items = ["a", "id", "name", "deep", "ids", "each"];
            let treatment = |item: &str| {
                treatments[items.iter().position(|known| *known == item).unwrap()]
            };
            filter_both(&tree, &answer, &treatment, &|item| item == "id" || item == "ids");
        }
    }

    #[test]
    fn a_masked_number_is_masked_as_spelled() {
        let tree = tree(&[("id", "$.id")]);
        let mask = |_: &str| Treatment::Mask(MaskKind::Generic);
        filter_both(
            &tree,
            &json!({"id": -421_512.340_781_526_3}),
            &mask,
            &|_| true,
        );
        filter_both(&tree, &json!({"id": 12}), &mask, &|_| true);
    }
}
