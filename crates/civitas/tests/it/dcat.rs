//! The DCAT-AP 3 export, parsed by a real RDF parser (rdflib).

use std::process::Command;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{
    catalog::resource,
    support::{ADMIN_KEY, TestServer, on_both_stores, python},
};

on_both_stores!(dcat_export_parses_with_mandatory_properties);

async fn fetch(server: &TestServer, path: &str, key: Option<&str>) -> (StatusCode, String, String) {
    let mut request = server.client.get(format!("{}{path}", server.base));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, content_type, response.text().await.unwrap())
}

fn check(document: &str, syntax: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("document");
    std::fs::write(&path, document).unwrap();
    let script = crate::support::manifest_dir().join("tests/it/check_dcat.py");
    let output = Command::new(python())
        .arg(script)
        .arg(&path)
        .arg(syntax)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "rdflib rejected the {syntax} document: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        &document[..document.len().min(2000)]
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

async fn dcat_export_parses_with_mandatory_properties(server: TestServer) {
    let org = server.create_org(1, None).await.to_string();
    for n in 1..=105u32 {
        let mut body = resource(&format!("320100-B01-{n:06}"), &org);
        body["name"] = json!(format!("住房公积金\"缴存\"信息 {n}\n第二行"));
        if n % 2 == 0 {
            body["open_type"] = json!("open");
        }
        let (status, created) = server.post("/api/v1/resources", ADMIN_KEY, body).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
    }

    let (status, content_type, turtle) = fetch(&server, "/catalog.ttl", Some(ADMIN_KEY)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(content_type.starts_with("text/turtle"));
    let summary = check(&turtle, "turtle");
    assert_eq!(summary["counts"]["Catalog"], 1);
    assert_eq!(
        summary["counts"]["Dataset"], 100,
        "a page holds 100 datasets"
    );
    assert_eq!(summary["total_items"], 105);
    assert!(
        summary["next"]
            .as_str()
            .unwrap()
            .ends_with("/catalog.ttl?page=2"),
        "{summary}"
    );
    assert!(
        summary["titles"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t.as_str().unwrap().contains("\"缴存\""))
    );

    let (_, content_type, jsonld) = fetch(&server, "/catalog.jsonld?page=2", Some(ADMIN_KEY)).await;
    assert_eq!(content_type, "application/ld+json");
    let summary = check(&jsonld, "json-ld");
    assert_eq!(summary["counts"]["Dataset"], 5);
    assert_eq!(summary["next"], Value::Null);

    // Anonymous harvesters see open data only.
    let (_, _, open) = fetch(&server, "/catalog.ttl", None).await;
    let summary = check(&open, "turtle");
    assert_eq!(
        summary["counts"]["Dataset"], 52,
        "a page holds open datasets only, and is full"
    );
    assert_eq!(
        (&summary["total_items"], &summary["next"]),
        (&json!(52), &Value::Null),
        "the counts tell nothing of closed datasets"
    );
    assert_eq!(
        summary["access_rights"],
        json!(["http://publications.europa.eu/resource/authority/access-right/PUBLIC"])
    );

    let (status, _, single) =
        fetch(&server, "/dataset/320100-B01-000001.ttl", Some(ADMIN_KEY)).await;
    assert_eq!(status, StatusCode::OK);
    let summary = check(&single, "turtle");
    assert_eq!(summary["counts"]["Dataset"], 1);
    let (status, _, single) = fetch(&server, "/dataset/320100-B01-000002.jsonld", None).await;
    assert_eq!(status, StatusCode::OK);
    check(&single, "json-ld");
    let (status, _, _) = fetch(&server, "/dataset/320100-B01-000001.jsonld", None).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "closed data is not shown to anonymous callers"
    );
    let (status, _, _) = fetch(&server, "/dataset/320100-B01-000001.rdf", Some(ADMIN_KEY)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let future = "2099-01-01T00:00:00Z";
    let (_, _, none) = fetch(
        &server,
        &format!("/catalog.ttl?modified_since={future}"),
        Some(ADMIN_KEY),
    )
    .await;
    assert_eq!(check(&none, "turtle")["total_items"], 0);
    let (status, _, _) = fetch(&server, "/catalog.ttl?page=0", Some(ADMIN_KEY)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    // A page whose offset does not fit is refused, not wrapped into a negative offset.
    for key in [Some(ADMIN_KEY), None] {
        let (status, _, body) = fetch(&server, "/catalog.ttl?page=100000000000000000", key).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(body.contains("page"), "{body}");
    }
    let (status, _, beyond) = fetch(&server, "/catalog.jsonld?page=92233720368547758", None).await;
    assert_eq!(status, StatusCode::OK, "{beyond}");
    assert_eq!(check(&beyond, "json-ld")["counts"]["Dataset"], 0);
}
