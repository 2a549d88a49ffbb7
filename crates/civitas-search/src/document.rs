//! Building index documents from catalog entries.

use civitas_core::NodeCode;
use civitas_core::catalog::Resource;
use civitas_core::registry::Organization;

use crate::SearchDocument;

impl SearchDocument {
    /// The index document of a catalog entry published by `provider` on the node `local_node`
    /// (the origin of entries that were not mounted from elsewhere). Items are searchable by
    /// name and code. The caller chooses the payload, typically the JSON a result list renders.
    ///
    /// Inactive entries are not meant to be found: delete them from the index instead.
    pub fn from_resource(
        resource: &Resource,
        provider: &Organization,
        local_node: &NodeCode,
        payload: String,
    ) -> SearchDocument {
        let draft = &resource.draft;
        debug_assert_eq!(
            draft.provider, provider.code,
            "the provider publishes the entry"
        );
        SearchDocument {
            code: draft.code.as_str().to_owned(),
            name: draft.name.clone(),
            name_en: draft.name_en.clone(),
            summary: draft.summary.clone(),
            tags: draft.tags.clone(),
            items: draft
                .items
                .iter()
                .map(|item| format!("{} {}", item.name, item.code))
                .collect(),
            provider_code: provider.code.as_str().to_owned(),
            provider_name: provider.name.clone(),
            provider_level: provider.level.as_str().to_owned(),
            kind: draft.kind.as_str().to_owned(),
            sharing_type: draft.sharing.sharing_type.as_str().to_owned(),
            open_type: draft.open_type.as_str().to_owned(),
            classification: draft.classification.as_string(),
            update_cycle: draft.update_cycle.as_str().to_owned(),
            origin_node: draft
                .origin_node
                .as_ref()
                .unwrap_or(local_node)
                .as_str()
                .to_owned(),
            modified_at: resource.updated_at.as_microsecond(),
            payload,
        }
    }
}
