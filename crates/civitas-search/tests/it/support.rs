//! Documents and indexes for the tests.

use civitas_search::{CatalogIndex, IndexOptions, SearchDocument, SearchRequest, SearchResponse};
use std::time::Duration;

/// A small in-memory index that commits quickly.
pub fn memory_index() -> CatalogIndex {
    CatalogIndex::in_memory(small_options()).unwrap()
}

pub fn small_options() -> IndexOptions {
    IndexOptions {
        writer_memory_bytes: 32 << 20,
        writer_threads: 1,
        commit_interval: Duration::from_millis(200),
        max_pending_documents: 10_000,
    }
}

/// A document with plausible defaults; tests change what they look at.
pub fn document(code: &str, name: &str) -> SearchDocument {
    SearchDocument {
        code: code.to_owned(),
        name: name.to_owned(),
        name_en: None,
        summary: String::new(),
        tags: Vec::new(),
        items: Vec::new(),
        provider_code: "11320100MB0000001X".to_owned(),
        provider_name: "南京市数据局".to_owned(),
        provider_level: "municipal".to_owned(),
        kind: "file".to_owned(),
        sharing_type: "unconditional".to_owned(),
        open_type: "closed".to_owned(),
        classification: code.get(7..10).unwrap_or("B01").to_owned(),
        update_cycle: "daily".to_owned(),
        origin_node: "cn-js-nanjing".to_owned(),
        modified_at: 1_700_000_000_000_000,
        payload: format!("{{\"code\":\"{code}\"}}"),
    }
}

pub async fn index_with(documents: Vec<SearchDocument>) -> CatalogIndex {
    let index = memory_index();
    index.upsert(documents).await.unwrap();
    index.flush().await.unwrap();
    index
}

pub fn query(text: &str) -> SearchRequest {
    SearchRequest {
        query: text.to_owned(),
        ..SearchRequest::default()
    }
}

pub fn codes(response: &SearchResponse) -> Vec<&str> {
    response.hits.iter().map(|hit| hit.code.as_str()).collect()
}

pub fn search_codes(index: &CatalogIndex, text: &str) -> Vec<String> {
    let response = index.search(&query(text)).unwrap();
    codes(&response).into_iter().map(str::to_owned).collect()
}
