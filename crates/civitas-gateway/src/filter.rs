//! Field-level control of JSON answers: every field whose information item is not granted is
//! removed, personal items are masked as the grant says, and fields that map to no item never
//! leave. Pure: the gateway compiles a service's field mappings into a [`FieldTree`] once and
//! filters each answer with the treatment the decision gave.
//!
//! Two implementations of one rule: [`FieldTree::filter`] works on a parsed [`Value`], and
//! [`FieldTree::filter_json`], which the gateway uses, filters JSON text as it parses it, without
//! building the answer's tree (the property test checks that they agree).
//!
//! A mapped field is delivered as a whole. Registration refuses mappings whose fields overlap, but
//! a service stored before that (or by another version) may have them, and a field inside
//! another's must not leave with it regardless of its own item's treatment. So every value gets
//! the strictest treatment of the items whose fields hold it: when a field's item is delivered and
//! other items are mapped inside it, it is delivered with their fields treated as their items
//! are (dropped, masked or delivered) and everything else in it as it is; a field that is dropped,
//! or masked (a structure cannot be masked, so it is dropped), takes the fields inside it along.
//! Items mapped to one path share the strictest of their treatments (two different masks drop
//! the value). A tree without nested items takes none of these detours.

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
    /// The items whose values sit at this node, as an index into the tree's `groups` (one item,
    /// unless stored mappings gave one path to several); a node with items is treated as a
    /// whole, except for the nodes with items below it.
    group: Option<usize>,
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

    /// Whether items are mapped below this node: every node leads to one.
    fn has_children(&self) -> bool {
        !self.keys.is_empty() || self.each.is_some()
    }
}

/// A service's field mappings, compiled: a tree of the answer's shape with items at its leaves
/// (and, from overlapping mappings, above them).
#[derive(Debug, Default)]
pub struct FieldTree {
    root: Node,
    items: Vec<String>,
    /// The items of each node that has some, by index into `items`.
    groups: Vec<Vec<usize>>,
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
        let FieldTree {
            root,
            items,
            groups,
        } = &mut tree;
        for mapping in mappings {
            let Ok(path) = FieldPath::parse(&mapping.path) else {
                continue;
            };
            let index = match items.iter().position(|item| *item == mapping.item) {
                Some(index) => index,
                None => {
                    items.push(mapping.item.clone());
                    items.len() - 1
                }
            };
            let mut node = &mut *root;
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
            match node.group {
                Some(group) if !groups[group].contains(&index) => groups[group].push(index),
                Some(_) => {}
                None => {
                    groups.push(vec![index]);
                    node.group = Some(groups.len() - 1);
                }
            }
        }
        tree
    }

    /// The item codes the mappings mention.
    pub fn items(&self) -> &[String] {
        &self.items
    }

    /// The treatment of each group of items (the strictest of its items') and whether its values
    /// are citizen ID numbers (any of its items' are).
    fn treatments(
        &self,
        treatment: &dyn Fn(&str) -> Treatment,
        is_citizen_id_item: &dyn Fn(&str) -> bool,
    ) -> Vec<(Treatment, bool)> {
        self.groups
            .iter()
            .map(|group| {
                group
                    .iter()
                    .fold((Treatment::Deliver, false), |(so_far, ids), &item| {
                        let code = self.items[item].as_str();
                        (
                            strictest(so_far, treatment(code)),
                            ids || is_citizen_id_item(code),
                        )
                    })
            })
            .collect()
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
        let treatments = self.treatments(treatment, is_citizen_id_item);
        let mut seen = Seen::new(self.groups.len());
        if !walk(value, &self.root, false, &treatments, &mut seen) {
            *value = Value::Null;
        }
        seen.into_delivered(self)
    }
}

/// Filters `value` at `node`; returns whether it stays. `covered`: the value lies inside the
/// value of a delivered item, so what maps to no item stays.
fn walk(
    value: &mut Value,
    node: &Node,
    covered: bool,
    treatments: &[(Treatment, bool)],
    seen: &mut Seen,
) -> bool {
    if let Some(group) = node.group {
        let (treatment, citizen_ids) = treatments[group];
        if treatment == Treatment::Deliver && node.has_children() {
            cover(value, node, treatments, seen);
            seen.delivered[group] = true;
            // After the items inside had their treatment: what they dropped was not delivered.
            if citizen_ids {
                collect_citizen_ids(value, &mut seen.citizen_ids);
            }
            return true;
        }
        return apply(value, group, treatment, citizen_ids, seen);
    }
    if covered {
        cover(value, node, treatments, seen);
        return true;
    }
    match value {
        Value::Object(map) => {
            map.retain(|key, child| match node.child(key) {
                Some(child_node) => walk(child, child_node, false, treatments, seen),
                None => false,
            });
            true
        }
        Value::Array(elements) => match &node.each {
            Some(each) => {
                elements.retain_mut(|element| walk(element, each, false, treatments, seen));
                true
            }
            None => false,
        },
        // A scalar that maps to no item never leaves.
        _ => false,
    }
}

/// Filters `value`, which a delivered item covers, at `node`: the fields of the items mapped
/// below `node` get their treatment, everything else stays as it is.
fn cover(value: &mut Value, node: &Node, treatments: &[(Treatment, bool)], seen: &mut Seen) {
    match value {
        Value::Object(map) => map.retain(|key, child| match node.child(key) {
            Some(child_node) => walk(child, child_node, true, treatments, seen),
            None => true,
        }),
        Value::Array(elements) => {
            if let Some(each) = &node.each {
                elements.retain_mut(|element| walk(element, each, true, treatments, seen));
            }
        }
        _ => {}
    }
}

/// The stricter of two treatments of one value. Two different masks each leave visible what the
/// other hides, so the value is dropped.
fn strictest(a: Treatment, b: Treatment) -> Treatment {
    match (a, b) {
        (Treatment::Drop, _) | (_, Treatment::Drop) => Treatment::Drop,
        (Treatment::Deliver, other) | (other, Treatment::Deliver) => other,
        (Treatment::Mask(a), Treatment::Mask(b)) if a == b => Treatment::Mask(a),
        (Treatment::Mask(_), Treatment::Mask(_)) => Treatment::Drop,
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
            treatments: self.treatments(treatment, is_citizen_id_item),
            seen: Seen::new(self.groups.len()),
            out: Vec::with_capacity(input.len()),
        };
        let mut deserializer = serde_json::Deserializer::from_slice(input);
        let kept = NodeSeed {
            filtering: &mut filtering,
            node: &self.root,
            covered: false,
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

/// What a filter delivered so far, by group of items.
struct Seen {
    delivered: Vec<bool>,
    masked: Vec<bool>,
    citizen_ids: BTreeSet<String>,
}

impl Seen {
    fn new(groups: usize) -> Seen {
        Seen {
            delivered: vec![false; groups],
            masked: vec![false; groups],
            citizen_ids: BTreeSet::new(),
        }
    }

    fn into_delivered(self, tree: &FieldTree) -> Delivered {
        let codes = |flags: Vec<bool>| {
            flags
                .into_iter()
                .zip(&tree.groups)
                .filter(|(flag, _)| *flag)
                .flat_map(|(_, group)| group.iter().map(|&item| tree.items[item].clone()))
                .collect()
        };
        Delivered {
            items: codes(self.delivered),
            masked: codes(self.masked),
            citizen_ids: self.citizen_ids,
        }
    }
}

/// The state of one streaming filter: the treatments by group and what was written.
struct Filtering {
    treatments: Vec<(Treatment, bool)>,
    seen: Seen,
    out: Vec<u8>,
}

impl Filtering {
    /// Writes `raw`, which a delivered item covers, filtered at `node` as [`cover`] filters a
    /// parsed value. Only an object or array with items mapped inside is parsed again (the
    /// value was checked when it was read); anything else is copied as it came.
    fn cover(&mut self, raw: &RawValue, node: &Node) -> serde_json::Result<()> {
        let text = raw.get();
        let filtered = match text.as_bytes().first() {
            Some(b'{') => !node.keys.is_empty(),
            Some(b'[') => node.each.is_some(),
            _ => false,
        };
        if !filtered {
            self.out.extend_from_slice(text.as_bytes());
            return Ok(());
        }
        let mut deserializer = serde_json::Deserializer::from_str(text);
        deserializer.deserialize_any(NodeSeed {
            filtering: self,
            node,
            covered: true,
        })?;
        Ok(())
    }
}

/// Filters the next value at `node`, writing what stays; yields whether anything was written.
/// `covered`: the value lies inside the value of a delivered item, so what maps to no item stays.
struct NodeSeed<'f, 't> {
    filtering: &'f mut Filtering,
    node: &'t Node,
    covered: bool,
}

impl<'de> DeserializeSeed<'de> for NodeSeed<'_, '_> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<bool, D::Error> {
        let Some(group) = self.node.group else {
            if self.covered {
                let raw = <&RawValue>::deserialize(deserializer)?;
                self.filtering
                    .cover(raw, self.node)
                    .map_err(D::Error::custom)?;
                return Ok(true);
            }
            return deserializer.deserialize_any(self);
        };
        let filtering = self.filtering;
        let (treatment, citizen_ids) = filtering.treatments[group];
        match treatment {
            Treatment::Drop => {
                IgnoredAny::deserialize(deserializer)?;
                Ok(false)
            }
            // Only from overlapping mappings.
            Treatment::Deliver if self.node.has_children() => {
                let raw = <&RawValue>::deserialize(deserializer)?;
                let start = filtering.out.len();
                filtering.cover(raw, self.node).map_err(D::Error::custom)?;
                filtering.seen.delivered[group] = true;
                // From what the items inside left, as the parsed filter collects them.
                if citizen_ids {
                    let delivered: Value = serde_json::from_slice(&filtering.out[start..])
                        .map_err(D::Error::custom)?;
                    collect_citizen_ids(&delivered, &mut filtering.seen.citizen_ids);
                }
                Ok(true)
            }
            Treatment::Deliver if !citizen_ids => {
                let raw = <&RawValue>::deserialize(deserializer)?;
                filtering.out.extend_from_slice(raw.get().as_bytes());
                filtering.seen.delivered[group] = true;
                Ok(true)
            }
            Treatment::Deliver | Treatment::Mask(_) => {
                let mut value = Value::deserialize(deserializer)?;
                let kept = apply(
                    &mut value,
                    group,
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
            let child = self.node.child(&key);
            if child.is_none() && !self.covered {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let mark = filtering.out.len();
            if !empty {
                filtering.out.push(b',');
            }
            serde_json::to_writer(&mut filtering.out, key.as_ref()).map_err(A::Error::custom)?;
            filtering.out.push(b':');
            let kept = match child {
                Some(child) => map.next_value_seed(NodeSeed {
                    filtering: &mut *filtering,
                    node: child,
                    covered: self.covered,
                })?,
                None => {
                    let raw: &RawValue = map.next_value()?;
                    filtering.out.extend_from_slice(raw.get().as_bytes());
                    true
                }
            };
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
            // Covered arrays with nothing mapped inside are copied whole.
            debug_assert!(
                !self.covered,
                "a covered array is filtered only at an each node"
            );
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
                covered: self.covered,
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

/// Applies a group of items' treatment to one of its values; returns whether the value stays.
fn apply(
    value: &mut Value,
    group: usize,
    treatment: Treatment,
    citizen_ids: bool,
    seen: &mut Seen,
) -> bool {
    match treatment {
        Treatment::Drop => false,
        Treatment::Deliver => {
            if citizen_ids {
                collect_citizen_ids(value, &mut seen.citizen_ids);
            }
            seen.delivered[group] = true;
            true
        }
        Treatment::Mask(kind) => {
            let text = match value {
                Value::String(text) => Cow::Borrowed(text.as_str()),
                Value::Number(number) => Cow::Owned(number.to_string()),
                Value::Bool(flag) => Cow::Owned(flag.to_string()),
                Value::Null => {
                    seen.delivered[group] = true;
                    return true;
                }
                // A structure cannot be masked field by field here: it does not leave (and so
                // neither do the ID numbers in it).
                Value::Array(_) | Value::Object(_) => return false,
            };
            match mask::mask(kind, &text) {
                Some(masked) => {
                    // Only a value that leaves, masked, counts as delivered.
                    if citizen_ids {
                        collect_citizen_ids(value, &mut seen.citizen_ids);
                    }
                    *value = Value::String(masked);
                    seen.delivered[group] = true;
                    seen.masked[group] = true;
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

    const ITEMS: [&str; 6] = ["a", "id", "name", "deep", "ids", "each"];

    /// Mappings of [`ITEMS`] over the keys [`json_value`] makes: some items at several paths, and
    /// some paths inside others or given to two items, as services stored before overlaps were
    /// refused may have them.
    fn mappings() -> impl Strategy<Value = Vec<(&'static str, &'static str)>> {
        let paths = vec![
            "$.a",
            "$.id",
            "$.list[*].name",
            "$.b.c",
            "$.list[*].id",
            "$[*].a",
            "$.b",
            "$.list",
            "$.list[*]",
            "$[*]",
            "$.a.id",
            "$.a[*]",
            "$.a.list[*].name",
            "$[*].a.z",
        ];
        prop::collection::vec(
            (
                prop::sample::select(ITEMS.to_vec()),
                prop::sample::select(paths),
            ),
            1..8,
        )
    }

    /// Mappings and an answer: any JSON value, or one with a value at every mapped path (a
    /// random answer seldom reaches a field inside another's).
    fn mappings_and_answer() -> impl Strategy<Value = (Vec<(&'static str, &'static str)>, Value)> {
        mappings().prop_flat_map(|mappings| {
            let leaves = prop::collection::vec(json_value(), mappings.len());
            let shaped = (Just(mappings.clone()), leaves).prop_map(|(mappings, leaves)| {
                let mut paths: Vec<Vec<FieldStep>> = mappings
                    .iter()
                    .map(|(_, path)| FieldPath::parse(path).unwrap().steps)
                    .collect();
                // Longest first, so that a path inside another is there before its outer one
                // finds its value.
                paths.sort_by_key(|steps| std::cmp::Reverse(steps.len()));
                let mut answer = Value::Null;
                for (steps, leaf) in paths.iter().zip(leaves) {
                    place(&mut answer, steps, &leaf);
                }
                answer
            });
            (Just(mappings), prop_oneof![json_value(), shaped])
        })
    }

    /// Puts `leaf` at the end of `steps` in `value`, making objects (with an unmapped member) and
    /// arrays (of two elements) on the way; a value already there stays.
    fn place(value: &mut Value, steps: &[FieldStep], leaf: &Value) {
        match steps.split_first() {
            None => {
                if value.is_null() {
                    *value = leaf.clone();
                }
            }
            Some((FieldStep::Key(key), rest)) => {
                if !value.is_object() {
                    *value = json!({"unmapped": leaf});
                }
                let child = value
                    .as_object_mut()
                    .unwrap()
                    .entry(key.clone())
                    .or_insert(Value::Null);
                place(child, rest, leaf);
            }
            Some((FieldStep::Each, rest)) => {
                if !value.is_array() {
                    *value = json!([null, null]);
                }
                for element in value.as_array_mut().unwrap() {
                    place(element, rest, leaf);
                }
            }
        }
    }

    /// The values at the end of `steps` in `value`.
    fn values_at<'v>(value: &'v Value, steps: &[FieldStep], into: &mut Vec<&'v Value>) {
        match steps.split_first() {
            None => into.push(value),
            Some((FieldStep::Key(key), rest)) => {
                if let Some(child) = value.as_object().and_then(|map| map.get(key)) {
                    values_at(child, rest, into);
                }
            }
            Some((FieldStep::Each, rest)) => {
                for element in value.as_array().into_iter().flatten() {
                    values_at(element, rest, into);
                }
            }
        }
    }

    proptest! {
        #[test]
        fn streaming_and_parsed_filters_agree(
            (mappings, answer) in mappings_and_answer(),
            treatments in prop::collection::vec(treatment(), ITEMS.len()),
        ) {
            let tree = tree(&mappings);
            let treatment = |item: &str| {
                treatments[ITEMS.iter().position(|known| *known == item).unwrap()]
            };
            let (filtered, delivered) =
                filter_both(&tree, &answer, &treatment, &|item| item == "id" || item == "ids");
            // Whatever the overlaps: no value at a dropped item's path leaves, every one at a
            // masked item's path leaves masked (or null), and the items delivered are those with
            // values in the answer.
            for item in ITEMS {
                let mut found = Vec::new();
                for (_, path) in mappings.iter().filter(|(mapped, _)| *mapped == item) {
                    values_at(&filtered, &FieldPath::parse(path).unwrap().steps, &mut found);
                }
                match treatment(item) {
                    Treatment::Drop => prop_assert!(found.is_empty(), "{item}: {found:?}"),
                    Treatment::Mask(_) => prop_assert!(
                        found.iter().all(|value| value.is_string() || value.is_null()),
                        "{item}: {found:?}"
                    ),
                    Treatment::Deliver => {}
                }
                prop_assert_eq!(delivered.items.contains(item), !found.is_empty(), "{}", item);
            }
            prop_assert!(delivered.masked.is_subset(&delivered.items));
        }
    }

    #[test]
    fn stored_overlapping_mappings_keep_the_treatment_of_the_items_inside() {
        let tree = tree(&[
            ("record", "$.person"),
            ("id_number", "$.person.id_number"),
            ("name", "$.person.name"),
        ]);
        let answer = json!({
            "person": {
                "id_number": "11010519491231002X",
                "name": "欧阳娜娜",
                "address": "玄武区",
                "household": {"id": 7}
            },
            "unmapped": 1
        });
        let mask_id = Treatment::Mask(MaskKind::CitizenId);
        let mask_name = Treatment::Mask(MaskKind::Name);
        let deliver = Treatment::Deliver;
        let drop = Treatment::Drop;
        // The treatments of record, id_number and name; the answer; the items delivered and
        // masked; whether the ID number was delivered.
        type Case = (
            (Treatment, Treatment, Treatment),
            Value,
            &'static [&'static str],
            &'static [&'static str],
            bool,
        );
        let cases: [Case; 5] = [
            (
                (deliver, drop, mask_name),
                json!({"person": {"name": "欧阳**", "address": "玄武区", "household": {"id": 7}}}),
                &["name", "record"],
                &["name"],
                false,
            ),
            (
                (deliver, mask_id, deliver),
                json!({"person": {
                    "id_number": "110105********002X",
                    "name": "欧阳娜娜",
                    "address": "玄武区",
                    "household": {"id": 7}
                }}),
                &["id_number", "name", "record"],
                &["id_number"],
                true,
            ),
            (
                (deliver, deliver, deliver),
                json!({"person": answer["person"]}),
                &["id_number", "name", "record"],
                &[],
                true,
            ),
            // Dropped, or masked (which a structure cannot be), the field takes those inside
            // along, whatever their own treatment.
            ((drop, deliver, deliver), json!({}), &[], &[], false),
            (
                (Treatment::Mask(MaskKind::FreeText), deliver, deliver),
                json!({}),
                &[],
                &[],
                false,
            ),
        ];
        for ((record, id_number, name), expected, items, masked, found_id) in cases {
            let treatment = |item: &str| match item {
                "record" => record,
                "id_number" => id_number,
                _ => name,
            };
            let (filtered, delivered) =
                filter_both(&tree, &answer, &treatment, &|item| item == "id_number");
            let case = format!("{record:?} {id_number:?} {name:?}");
            assert_eq!(filtered, expected, "{case}");
            assert_eq!(
                delivered,
                Delivered {
                    items: items.iter().map(|item| (*item).to_owned()).collect(),
                    masked: masked.iter().map(|item| (*item).to_owned()).collect(),
                    citizen_ids: found_id
                        .then(|| "11010519491231002X".to_owned())
                        .into_iter()
                        .collect(),
                },
                "{case}"
            );
        }
    }

    #[test]
    fn nested_items_in_arrays_are_treated_and_the_rest_keeps_its_spelling() {
        let tree = tree(&[
            ("records", "$.data"),
            ("amount", "$.data[*].amount"),
            ("id_number", "$.data[*].owner.id"),
        ]);
        let input = r#"{"data": [{"amount": 1e2, "owner": {"id": "11010519491231002X", "n\u0061me": "\u738b"}, "note": 1.50}, 3, {"amount": 5}], "total": 2}"#;
        let is_id = |item: &str| item == "id_number";
        let dropping = |item: &str| match item {
            "records" => Treatment::Deliver,
            _ => Treatment::Drop,
        };
        let (text, delivered) = tree
            .filter_json(input.as_bytes(), &dropping, &is_id)
            .unwrap();
        assert_eq!(
            String::from_utf8(text).unwrap(),
            r#"{"data":[{"owner":{"name":"\u738b"},"note":1.50},3,{}]}"#
        );
        assert_eq!(delivered.items, BTreeSet::from(["records".to_owned()]));
        assert!(delivered.citizen_ids.is_empty());
        let answer: Value = serde_json::from_str(input).unwrap();
        for treatment in [Treatment::Deliver, Treatment::Mask(MaskKind::CitizenId)] {
            let (_, delivered) = filter_both(
                &tree,
                &answer,
                &|item| match item {
                    "id_number" => treatment,
                    _ => Treatment::Deliver,
                },
                &is_id,
            );
            assert_eq!(
                delivered.citizen_ids,
                BTreeSet::from(["11010519491231002X".to_owned()]),
                "{treatment:?}"
            );
        }
        // An item of citizen ID numbers is collected from what the items inside it left.
        let tree = self::tree(&[("ids", "$.ids"), ("first", "$.ids[*]")]);
        let answer = json!({"ids": ["11010519491231002X"]});
        for (first, expected) in [
            (Treatment::Deliver, vec!["11010519491231002X".to_owned()]),
            (Treatment::Drop, vec![]),
        ] {
            let treatment = |item: &str| match item {
                "first" => first,
                _ => Treatment::Deliver,
            };
            let (_, delivered) = filter_both(&tree, &answer, &treatment, &|item| item == "ids");
            assert_eq!(
                delivered.citizen_ids,
                expected.into_iter().collect(),
                "{first:?}"
            );
        }
    }

    #[test]
    fn items_mapped_to_one_path_share_the_strictest_treatment() {
        let tree = tree(&[("holder", "$.holder"), ("person", "$[\"holder\"]")]);
        let answer = json!({"holder": "11010519491231002X"});
        let mask_id = Treatment::Mask(MaskKind::CitizenId);
        let cases = [
            (
                (Treatment::Deliver, Treatment::Deliver),
                json!({"holder": "11010519491231002X"}),
            ),
            (
                (Treatment::Deliver, mask_id),
                json!({"holder": "110105********002X"}),
            ),
            ((mask_id, mask_id), json!({"holder": "110105********002X"})),
            ((Treatment::Deliver, Treatment::Drop), json!({})),
            ((mask_id, Treatment::Mask(MaskKind::Name)), json!({})),
        ];
        for ((holder, person), expected) in cases {
            let treatment = |item: &str| if item == "holder" { holder } else { person };
            let (filtered, delivered) =
                filter_both(&tree, &answer, &treatment, &|item| item == "holder");
            assert_eq!(filtered, expected, "{holder:?} {person:?}");
            let both = || BTreeSet::from(["holder".to_owned(), "person".to_owned()]);
            let delivered_any = expected != json!({});
            assert_eq!(
                delivered.items,
                if delivered_any {
                    both()
                } else {
                    BTreeSet::new()
                }
            );
            assert_eq!(
                delivered.masked,
                if delivered_any && expected["holder"] != answer["holder"] {
                    both()
                } else {
                    BTreeSet::new()
                }
            );
            assert_eq!(delivered.citizen_ids.len(), usize::from(delivered_any));
        }
    }

    #[test]
    fn citizen_ids_are_collected_only_from_values_that_leave() {
        let tree = tree(&[("ids", "$.ids"), ("id", "$.id")]);
        let answer = json!({"ids": ["11010519491231002X"], "id": "11010519491231002X"});
        let is_id = |_: &str| true;
        // An array cannot be masked, and a free-text mask leaves nothing of a value: neither
        // leaves, so nobody's data was delivered.
        for mask in [
            Treatment::Mask(MaskKind::CitizenId),
            Treatment::Mask(MaskKind::FreeText),
        ] {
            let treatment = |item: &str| match item {
                "ids" => mask,
                _ => Treatment::Mask(MaskKind::FreeText),
            };
            let (_, delivered) = filter_both(&tree, &answer, &treatment, &is_id);
            assert_eq!(delivered, Delivered::default(), "{mask:?}");
        }
        let (_, delivered) = filter_both(
            &tree,
            &answer,
            &|_| Treatment::Mask(MaskKind::CitizenId),
            &is_id,
        );
        assert_eq!(
            delivered.citizen_ids,
            BTreeSet::from(["11010519491231002X".to_owned()])
        );
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
