//! Field-level control of JSON answers: every field whose information item is not granted is
//! removed, personal items are masked as the grant says, and fields that map to no item never
//! leave. Pure: the gateway compiles a service's field mappings into a [`FieldTree`] once and
//! filters each answer with the treatment the decision gave.

use std::collections::{BTreeSet, HashMap};

use civitas_access::mask;
use civitas_core::{
    CitizenId,
    catalog::MaskKind,
    service::{FieldMapping, FieldPath, FieldStep},
};
use serde_json::Value;

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
    keys: HashMap<String, Node>,
    each: Option<Box<Node>>,
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
                    FieldStep::Key(key) => node.keys.entry(key.clone()).or_default(),
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
        let mut delivered = Delivered::default();
        if !self.walk(value, &self.root, &treatments, &mut delivered) {
            *value = Value::Null;
        }
        delivered
    }

    /// Returns whether `value` stays.
    fn walk(
        &self,
        value: &mut Value,
        node: &Node,
        treatments: &[(Treatment, bool)],
        delivered: &mut Delivered,
    ) -> bool {
        if let Some(index) = node.item {
            let (treatment, citizen_ids) = treatments[index];
            let code = &self.items[index];
            return apply(value, code, treatment, citizen_ids, delivered);
        }
        match value {
            Value::Object(map) => {
                map.retain(|key, child| match node.keys.get(key) {
                    Some(child_node) => self.walk(child, child_node, treatments, delivered),
                    None => false,
                });
                true
            }
            Value::Array(elements) => match &node.each {
                Some(each) => {
                    elements.retain_mut(|element| self.walk(element, each, treatments, delivered));
                    true
                }
                None => false,
            },
            // A scalar that maps to no item never leaves.
            _ => false,
        }
    }
}

fn apply(
    value: &mut Value,
    code: &str,
    treatment: Treatment,
    citizen_ids: bool,
    delivered: &mut Delivered,
) -> bool {
    if treatment == Treatment::Drop {
        return false;
    }
    if citizen_ids {
        collect_citizen_ids(value, &mut delivered.citizen_ids);
    }
    match treatment {
        Treatment::Drop => false,
        Treatment::Deliver => {
            delivered.items.insert(code.to_owned());
            true
        }
        Treatment::Mask(kind) => {
            let text = match value {
                Value::String(text) => std::mem::take(text),
                Value::Number(number) => number.to_string(),
                Value::Bool(flag) => flag.to_string(),
                Value::Null => {
                    delivered.items.insert(code.to_owned());
                    return true;
                }
                // A structure cannot be masked field by field here: it does not leave.
                Value::Array(_) | Value::Object(_) => return false,
            };
            match mask::mask(kind, &text) {
                Some(masked) => {
                    *value = Value::String(masked);
                    delivered.items.insert(code.to_owned());
                    delivered.masked.insert(code.to_owned());
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
        Value::Array(elements) => elements.iter().for_each(|e| collect_citizen_ids(e, into)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
        let mut answer = json!({
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
        let delivered = tree.filter(&mut answer, &treatment, &|item| item == "id_number");
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
    fn arrays_of_records_and_unmapped_roots() {
        let tree = tree(&[("name", "$[*].name")]);
        let mut answer = json!([{"name": "张三", "phone": "13812345678"}, {"name": "李四"}]);
        tree.filter(&mut answer, &|_| Treatment::Deliver, &|_| false);
        assert_eq!(answer, json!([{"name": "张三"}, {"name": "李四"}]));
        let mut scalar = json!("just a string");
        tree.filter(&mut scalar, &|_| Treatment::Deliver, &|_| false);
        assert_eq!(scalar, Value::Null);
    }
}
