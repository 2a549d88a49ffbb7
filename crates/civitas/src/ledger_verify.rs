//! `civitas ledger verify`: recomputes the ledger's tree from its records and checks every signed
//! checkpoint, either in a local data dir or against a running node over HTTP.

use std::{path::Path, time::Instant};

use anyhow::{Context, bail};
use base64::{Engine, engine::general_purpose::STANDARD};
use civitas_ledger::{
    Verifier, VerifyReport,
    tiles::{self, TILE_WIDTH, TileId, TileKind},
    verify_dir,
};
use ed25519_dalek::pkcs8::DecodePrivateKey;

/// What a verification found, for the summary line.
pub struct Outcome {
    pub report: VerifyReport,
    pub seconds: f64,
}

fn progress_bar(total: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} verifying {bar:30} {pos}/{len} records {per_sec} eta {eta}",
        )
        .expect("a valid template"),
    );
    bar
}

/// GET requests to a running node, with the API key when one is given.
pub(crate) struct NodeClient<'a> {
    client: reqwest::Client,
    base: &'a str,
    api_key: Option<&'a str>,
}

impl<'a> NodeClient<'a> {
    pub(crate) fn new(base: &'a str, api_key: Option<&'a str>) -> NodeClient<'a> {
        NodeClient {
            client: reqwest::Client::new(),
            base: base.trim_end_matches('/'),
            api_key,
        }
    }

    /// A GET of `path` (from the base URL's root).
    pub(crate) fn get(&self, path: &str) -> reqwest::RequestBuilder {
        let request = self.client.get(format!("{}{path}", self.base));
        match self.api_key {
            Some(key) => request.bearer_auth(key),
            None => request,
        }
    }
}

/// The verifier key of the node whose data dir this is, from its key file and code.
pub fn local_verifier_key(data_dir: &Path, node_code: &str) -> anyhow::Result<String> {
    let path = data_dir.join(crate::node::NODE_KEY_FILE);
    let pem =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let key = ed25519_dalek::SigningKey::from_pkcs8_pem(&pem)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let signer = civitas_ledger::NoteSigner::new(node_code, key)?;
    Ok(signer.verifier_key().to_owned())
}

/// Verifies the ledger of a local data dir.
pub fn verify_local(data_dir: &Path, verifier_key: &str) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let bar = progress_bar(0);
    let result = verify_dir(data_dir.join("ledger"), verifier_key, |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    });
    bar.finish_and_clear();
    let report = result.map_err(describe)?;
    Ok(Outcome {
        report,
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn describe(error: civitas_ledger::VerifyError) -> anyhow::Error {
    match error.first_bad_record() {
        Some(index) => anyhow::anyhow!("ledger verification failed at record {index}: {error}"),
        None => anyhow::anyhow!("ledger verification failed: {error}"),
    }
}

/// Verifies a running node's ledger over HTTP: every checkpoint it lists, and every record read
/// from its tlog-tiles entry bundles. Entry bundles need an API key with the `read_audit`
/// permission.
pub async fn verify_remote(
    base: &str,
    api_key: Option<&str>,
    verifier_key: Option<&str>,
) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let node = NodeClient::new(base, api_key);
    let get = |path: String| node.get(&path);
    let verifier_key = match verifier_key {
        Some(key) => key.to_owned(),
        None => {
            let node: serde_json::Value = get("/api/v1/node".into())
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            node["verifier_key"]
                .as_str()
                .context("the node did not say its verifier_key")?
                .to_owned()
        }
    };
    let mut verifier = Verifier::new(&verifier_key)?;

    // Every checkpoint, in order of size.
    let mut from_size = 0;
    let mut largest = 0;
    loop {
        let page: Vec<serde_json::Value> = get(format!(
            "/api/v1/ledger/checkpoints?from_size={from_size}&limit=1000"
        ))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
        if page.is_empty() {
            break;
        }
        for checkpoint in &page {
            let note = checkpoint["note"]
                .as_str()
                .context("a checkpoint without its note")?;
            verifier.add_checkpoint(note).map_err(describe)?;
            largest = checkpoint["tree_size"]
                .as_u64()
                .context("a checkpoint without its size")?;
        }
        from_size = largest + 1;
    }

    let bar = progress_bar(largest);
    let mut index = 0u64;
    while index < largest {
        let bundle_index = index / TILE_WIDTH;
        let width = (largest - bundle_index * TILE_WIDTH).min(TILE_WIDTH) as u16;
        let path = tiles::format_tile_path(&TileId {
            kind: TileKind::Entries,
            index: bundle_index,
            width,
        });
        let response = get(format!("/ledger/{path}")).send().await?;
        if !response.status().is_success() {
            bail!(
                "fetching /ledger/{path}: {} (entry bundles need an API key that may read the audit trail: --api-key)",
                response.status()
            );
        }
        let bundle = response.bytes().await?;
        let records = tiles::decode_entry_bundle(&bundle)
            .with_context(|| format!("entry bundle {bundle_index} is malformed"))?;
        if records.len() != usize::from(width) {
            bail!(
                "entry bundle {bundle_index} holds {} records, expected {width}",
                records.len()
            );
        }
        for record in records {
            verifier.push_record(record).map_err(describe)?;
            index += 1;
        }
        bar.set_position(index);
    }
    bar.finish_and_clear();
    let report = verifier.finish().map_err(describe)?;
    Ok(Outcome {
        report,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The summary line, and a warning line when the records file ends in a torn write.
pub fn summary(outcome: &Outcome) -> String {
    let report = &outcome.report;
    let megabytes = report.record_bytes as f64 / 1e6;
    let mut summary = format!(
        "ledger ok: {} records ({megabytes:.1} MB) and {} signed checkpoints verified in {:.1} s ({:.0} MB/s); records up to {} are covered by signatures; root {}",
        report.records,
        report.checkpoints,
        outcome.seconds,
        megabytes / outcome.seconds.max(1e-9),
        report.verified_tree_size,
        STANDARD.encode(report.root),
    );
    if report.torn_tail_bytes > 0 {
        summary.push_str(&format!(
            "\nwarning: {} bytes after the last whole record are a torn write (damage with no valid record after it), which the node cuts off when it next opens the ledger",
            report.torn_tail_bytes,
        ));
    }
    summary
}
