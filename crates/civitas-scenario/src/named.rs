//! An ordered map from names to definitions.
//!
//! Inputs, parameters, steps, outputs and computed values are written as YAML/JSON mappings keyed
//! by name. The order the author wrote them in is kept, because explanations and results follow it,
//! and a name given twice is an error rather than silently replacing the first.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, PartialEq)]
pub struct NamedMap<T>(Vec<(String, T)>);

impl<T> NamedMap<T> {
    pub fn new() -> NamedMap<T> {
        NamedMap(Vec::new())
    }

    /// Appends `value` under `name`; false (and nothing added) when the name is already there.
    pub fn insert(&mut self, name: impl Into<String>, value: T) -> bool {
        let name = name.into();
        if self.get(&name).is_some() {
            return false;
        }
        self.0.push((name, value));
        true
    }

    pub fn get(&self, name: &str) -> Option<&T> {
        self.0
            .iter()
            .find(|(entry_name, _)| entry_name == name)
            .map(|(_, value)| value)
    }

    pub fn position(&self, name: &str) -> Option<usize> {
        self.0.iter().position(|(entry_name, _)| entry_name == name)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.position(name).is_some()
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &T)> {
        self.0.iter().map(|(name, value)| (name.as_str(), value))
    }

    pub fn names(&self) -> impl ExactSizeIterator<Item = &str> {
        self.0.iter().map(|(name, _)| name.as_str())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<T> Default for NamedMap<T> {
    fn default() -> NamedMap<T> {
        NamedMap::new()
    }
}

impl<T> FromIterator<(String, T)> for NamedMap<T> {
    fn from_iter<I: IntoIterator<Item = (String, T)>>(iterator: I) -> NamedMap<T> {
        let mut map = NamedMap::new();
        for (name, value) in iterator {
            map.insert(name, value);
        }
        map
    }
}

impl<T: Serialize> Serialize for NamedMap<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in &self.0 {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for NamedMap<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(NamedMapVisitor(PhantomData))
    }
}

struct NamedMapVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for NamedMapVisitor<T> {
    type Value = NamedMap<T>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a mapping from names to definitions")
    }

    // An empty YAML section (`parameters:` with nothing under it) reads as null.
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(NamedMap::new())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
        let mut map = NamedMap::new();
        while let Some(name) = access.next_key::<String>()? {
            if map.contains(&name) {
                return Err(de::Error::custom(format!(
                    "the name `{name}` is given twice"
                )));
            }
            let value = access.next_value::<T>()?;
            map.0.push((name, value));
        }
        Ok(map)
    }
}
