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
use reqwest::StatusCode;

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

    /// The JSON answer to a GET of `path`; an error status or an unreadable answer is an error
    /// naming `what` was asked for and the path.
    pub(crate) async fn json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        what: &str,
    ) -> anyhow::Result<T> {
        self.get(path)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .with_context(|| format!("{what} ({path})"))?
            .json()
            .await
            .with_context(|| format!("reading the answer to {what} ({path})"))
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
    let report = result.map_err(|error| {
        let salvageable = matches!(
            error,
            civitas_ledger::VerifyError::DamageBeforeValidFrames { .. }
        );
        let error = describe(error);
        if salvageable {
            anyhow::anyhow!("{error:#}; {}", crate::ledger_salvage::hint(data_dir))
        } else {
            error
        }
    })?;
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
/// permission. Without `verifier_key` the checkpoints are checked with the key the node itself
/// publishes, which shows the ledger consistent with that key only (`SELF_KEY_WARNING`).
pub async fn verify_remote(
    base: &str,
    api_key: Option<&str>,
    verifier_key: Option<&str>,
) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let node = NodeClient::new(base, api_key);
    let verifier_key = match verifier_key {
        Some(key) => key.to_owned(),
        None => {
            let node: serde_json::Value = node
                .json("/api/v1/node", "asking the node for its verifier key")
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
    let mut largest = None;
    loop {
        let path = format!("/api/v1/ledger/checkpoints?from_size={from_size}&limit=1000");
        let page: Vec<serde_json::Value> =
            node.json(&path, "listing the node's checkpoints").await?;
        if page.is_empty() {
            break;
        }
        for checkpoint in &page {
            let note = checkpoint["note"]
                .as_str()
                .context("a checkpoint without its note")?;
            verifier.add_checkpoint(note).map_err(describe)?;
            largest = Some(
                checkpoint["tree_size"]
                    .as_u64()
                    .context("a checkpoint without its size")?,
            );
        }
        from_size = largest.map_or(0, |size| size + 1);
    }
    // A node signs a checkpoint when its ledger is created, so a list without one is not a node's
    // ledger, and checking records against no signature would prove nothing.
    let Some(largest) = largest else {
        bail!(
            "the node listed no signed checkpoints, so there is nothing to verify the records against"
        );
    };

    let bar = progress_bar(largest);
    let mut index = 0u64;
    while index < largest {
        let bundle_index = index / TILE_WIDTH;
        let width = (largest - bundle_index * TILE_WIDTH).min(TILE_WIDTH) as u16;
        let tile = |width| {
            tiles::format_tile_path(&TileId {
                kind: TileKind::Entries,
                index: bundle_index,
                width,
            })
        };
        let mut fetched_width = width;
        let mut path = tile(fetched_width);
        let mut response = entry_bundle(&node, &path).await?;
        if response.is_none() && u64::from(width) < TILE_WIDTH {
            // The tree has grown past this bundle since its checkpoint was listed, and a node
            // serves a partial bundle only at its right edge: the full bundle starts with the
            // same records.
            fetched_width = TILE_WIDTH as u16;
            path = tile(fetched_width);
            response = entry_bundle(&node, &path).await?;
        }
        let Some(response) = response else {
            bail!(
                "fetching /ledger/{path}: 404 Not Found: the node does not serve records {index} to {} that its checkpoint of size {largest} covers",
                index + u64::from(width) - 1
            );
        };
        let bundle = response
            .bytes()
            .await
            .with_context(|| format!("reading /ledger/{path}"))?;
        let records = tiles::decode_entry_bundle(&bundle)
            .with_context(|| format!("entry bundle /ledger/{path} is malformed"))?;
        if records.len() != usize::from(fetched_width) {
            bail!(
                "entry bundle /ledger/{path} holds {} records, expected {fetched_width}",
                records.len()
            );
        }
        for record in &records[..usize::from(width)] {
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

/// Said after a verification over HTTP that checked the checkpoints with the key the node itself
/// published rather than one given with `--verifier-key`.
pub const SELF_KEY_WARNING: &str = "warning: no --verifier-key given, so the checkpoints were checked with the key the node itself publishes: this proves the ledger consistent with that key only, and a node that rewrote its history under a new key would pass too (pass the verifier key obtained out of band)";

/// GETs the entry bundle at `path` (under `/ledger/`): `None` if the node answers 404 Not Found.
async fn entry_bundle(
    node: &NodeClient<'_>,
    path: &str,
) -> anyhow::Result<Option<reqwest::Response>> {
    let response = node
        .get(&format!("/ledger/{path}"))
        .send()
        .await
        .with_context(|| format!("fetching /ledger/{path}"))?;
    match response.status() {
        status if status.is_success() => Ok(Some(response)),
        StatusCode::NOT_FOUND => Ok(None),
        status @ StatusCode::UNAUTHORIZED if node.api_key.is_none() => bail!(
            "fetching /ledger/{path}: {status}: entry bundles need an API key that may read the audit trail (--api-key)"
        ),
        status @ StatusCode::UNAUTHORIZED => bail!(
            "fetching /ledger/{path}: {status}: the node does not accept the API key given (--api-key): it is unknown, expired or revoked"
        ),
        status @ StatusCode::FORBIDDEN => bail!(
            "fetching /ledger/{path}: {status}: the API key given (--api-key) may not read the audit trail, which entry bundles need"
        ),
        status => bail!("fetching /ledger/{path}: {status}"),
    }
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
