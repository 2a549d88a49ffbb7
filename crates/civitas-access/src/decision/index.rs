//! The in-memory index of grants the gateway decides with.

use std::collections::HashMap;

use civitas_core::access::{Grant, SystemRef};
use civitas_core::catalog::ResourceCode;
use jiff::Timestamp;

use super::{GrantError, GrantStatus, Result, grant_status, validate_grant};

/// All grants of a node, indexed for the questions the gateway asks on every exchange.
///
/// Grants live in a slab (a vector with reusable slots) and the indexes hold slot numbers, so a
/// lookup by (consumer, resource) is two hash lookups with borrowed keys and no allocation, and
/// replacing or revoking a grant touches only its own entries.
#[derive(Debug, Clone, Default)]
pub struct GrantIndex {
    slots: Vec<Option<Grant>>,
    free_slots: Vec<usize>,
    slot_by_id: HashMap<String, usize>,
    /// consumer → resource code → slots. Nested rather than keyed by a pair so that a lookup can
    /// borrow both parts of the key.
    by_consumer: HashMap<SystemRef, HashMap<ResourceCode, Vec<usize>>>,
    by_resource: HashMap<ResourceCode, Vec<usize>>,
}

impl GrantIndex {
    pub fn new() -> GrantIndex {
        GrantIndex::default()
    }

    /// Builds the index from every grant of the node. Ids must be unique.
    pub fn from_grants(grants: Vec<Grant>) -> Result<GrantIndex> {
        let mut index = GrantIndex {
            slots: Vec::with_capacity(grants.len()),
            slot_by_id: HashMap::with_capacity(grants.len()),
            ..GrantIndex::default()
        };
        for grant in grants {
            if index.slot_by_id.contains_key(&grant.id) {
                return Err(GrantError::DuplicateId { id: grant.id });
            }
            index.upsert(grant)?;
        }
        Ok(index)
    }

    /// Adds a grant, or replaces the grant with the same id (which may have changed consumer,
    /// resource, items or period). Returns the replaced grant.
    pub fn upsert(&mut self, grant: Grant) -> Result<Option<Grant>> {
        validate_grant(&grant)?;
        let replaced = self.remove(&grant.id);
        let (id, consumer, resource) = (
            grant.id.clone(),
            grant.consumer.clone(),
            grant.resource.clone(),
        );
        let slot = match self.free_slots.pop() {
            Some(slot) => {
                self.slots[slot] = Some(grant);
                slot
            }
            None => {
                self.slots.push(Some(grant));
                self.slots.len() - 1
            }
        };
        self.slot_by_id.insert(id, slot);
        self.by_resource
            .entry(resource.clone())
            .or_default()
            .push(slot);
        self.by_consumer
            .entry(consumer)
            .or_default()
            .entry(resource)
            .or_default()
            .push(slot);
        Ok(replaced)
    }

    /// Revokes a grant from `at` on. A grant already revoked earlier keeps its earlier time, so
    /// revoking twice never extends a grant's life.
    pub fn revoke(&mut self, grant_id: &str, at: Timestamp) -> Result<&Grant> {
        let slot = *self
            .slot_by_id
            .get(grant_id)
            .ok_or_else(|| GrantError::UnknownGrant {
                id: grant_id.to_owned(),
            })?;
        let grant = self.slots[slot]
            .as_mut()
            .expect("an indexed slot holds a grant");
        grant.revoked_at = Some(grant.revoked_at.map_or(at, |earlier| earlier.min(at)));
        Ok(grant)
    }

    /// Removes a grant from the index entirely (for grants deleted, not revoked).
    pub fn remove(&mut self, grant_id: &str) -> Option<Grant> {
        let slot = self.slot_by_id.remove(grant_id)?;
        let grant = self.slots[slot]
            .take()
            .expect("an indexed slot holds a grant");
        self.free_slots.push(slot);
        if let Some(resources) = self.by_consumer.get_mut(&grant.consumer) {
            if let Some(slots) = resources.get_mut(&grant.resource) {
                slots.retain(|&other| other != slot);
                if slots.is_empty() {
                    resources.remove(&grant.resource);
                }
            }
            if resources.is_empty() {
                self.by_consumer.remove(&grant.consumer);
            }
        }
        if let Some(slots) = self.by_resource.get_mut(&grant.resource) {
            slots.retain(|&other| other != slot);
            if slots.is_empty() {
                self.by_resource.remove(&grant.resource);
            }
        }
        Some(grant)
    }

    pub fn get(&self, grant_id: &str) -> Option<&Grant> {
        let slot = *self.slot_by_id.get(grant_id)?;
        self.slots[slot].as_ref()
    }

    pub fn len(&self) -> usize {
        self.slot_by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slot_by_id.is_empty()
    }

    /// Every grant, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Grant> {
        self.slots.iter().flatten()
    }

    /// The grants of `consumer` for `resource`, whatever their status. O(1) in the number of
    /// grants of the node.
    pub fn grants_for<'a>(
        &'a self,
        consumer: &SystemRef,
        resource: &ResourceCode,
    ) -> impl Iterator<Item = &'a Grant> + 'a {
        self.by_consumer
            .get(consumer)
            .and_then(|resources| resources.get(resource))
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter_map(|&slot| self.slots[slot].as_ref())
    }

    /// What `consumer` may read at `at`: its valid grants, ordered by resource code then id.
    pub fn readable_by(&self, consumer: &SystemRef, at: Timestamp) -> Vec<&Grant> {
        let mut grants: Vec<&Grant> = self
            .by_consumer
            .get(consumer)
            .into_iter()
            .flat_map(|resources| resources.values().flatten())
            .filter_map(|&slot| self.slots[slot].as_ref())
            .filter(|grant| grant_status(grant, at) == GrantStatus::Valid)
            .collect();
        grants.sort_by(|a, b| (&a.resource, &a.id).cmp(&(&b.resource, &b.id)));
        grants
    }

    /// Who may read `resource` at `at`: its valid grants, ordered by consumer then id.
    pub fn readers_of(&self, resource: &ResourceCode, at: Timestamp) -> Vec<&Grant> {
        let mut grants: Vec<&Grant> = self
            .by_resource
            .get(resource)
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter_map(|&slot| self.slots[slot].as_ref())
            .filter(|grant| grant_status(grant, at) == GrantStatus::Valid)
            .collect();
        grants.sort_by(|a, b| (&a.consumer, &a.id).cmp(&(&b.consumer, &b.id)));
        grants
    }
}
