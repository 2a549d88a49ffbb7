//! The index over generated catalog data: conversion from catalog entries, and facet counts
//! checked against counting by hand.

use std::collections::HashMap;

use civitas_core::NodeCode;
use civitas_core::catalog::Resource;
use civitas_search::{Facet, SearchDocument, SearchRequest};
use civitas_synth::catalog::{self, CatalogConfig};
use jiff::Timestamp;

use crate::support::{index_with, query};

fn generated(count: u64) -> Vec<SearchDocument> {
    let organizations = civitas_synth::organizations(7);
    let registry: HashMap<_, _> = organizations
        .iter()
        .map(|o| (o.code.clone(), o.to_registry(Timestamp::UNIX_EPOCH)))
        .collect();
    let node = NodeCode::parse("cn-js-nanjing").unwrap();
    catalog::directories(7, CatalogConfig::scaled(count, organizations))
        .enumerate()
        .map(|(position, draft)| {
            let at = Timestamp::from_second(1_700_000_000 + position as i64).unwrap();
            let resource = Resource {
                draft,
                version: 1,
                active: true,
                created_at: at,
                updated_at: at,
            };
            let provider = &registry[&resource.draft.provider];
            let payload = serde_json::json!({ "name": resource.draft.name }).to_string();
            SearchDocument::from_resource(&resource, provider, &node, payload)
        })
        .collect()
}

#[tokio::test]
async fn generated_entries_are_found_and_counted_exactly() {
    let documents = generated(3_000);
    let index = index_with(documents.clone()).await;
    assert_eq!(index.document_count(), 3_000);

    // Every facet over everything, against counting the documents directly.
    let request = SearchRequest {
        facets: Facet::ALL.to_vec(),
        facet_limit: 10_000,
        ..query("")
    };
    let response = index.search(&request).unwrap();
    assert_eq!(response.total, 3_000);
    for counts in &response.facets {
        let mut expected: HashMap<String, u64> = HashMap::new();
        for document in &documents {
            let values: Vec<&String> = match counts.facet {
                Facet::Provider => vec![&document.provider_code],
                Facet::Level => vec![&document.provider_level],
                Facet::Kind => vec![&document.kind],
                Facet::SharingType => vec![&document.sharing_type],
                Facet::OpenType => vec![&document.open_type],
                Facet::Classification => vec![&document.classification],
                Facet::UpdateCycle => vec![&document.update_cycle],
                Facet::OriginNode => vec![&document.origin_node],
                Facet::Tag => document.tags.iter().collect(),
            };
            for value in values {
                *expected.entry(value.clone()).or_default() += 1;
            }
        }
        let actual: HashMap<String, u64> = counts.values.iter().cloned().collect();
        assert_eq!(actual, expected, "{}", counts.facet);
    }

    // A district and a topic: every hit mentions both somewhere.
    let response = index
        .search(&SearchRequest {
            paging: civitas_search::Paging::Offset {
                offset: 0,
                limit: 1000,
            },
            ..query("玄武区 公积金")
        })
        .unwrap();
    assert!(response.total > 0);
    for hit in &response.hits {
        let document = documents.iter().find(|d| d.code == hit.code).unwrap();
        let text = format!(
            "{} {} {:?} {:?}",
            document.name, document.summary, document.tags, document.items
        );
        assert!(text.contains("玄武") && text.contains("公积金"), "{text}");
    }
    let english = index.search(&query("registrations")).unwrap();
    assert!(english.total > 0);
}
