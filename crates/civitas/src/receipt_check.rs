//! `civitas ledger check-receipt`: checks one record's receipt with nothing but the node's
//! verifier key: the checkpoint's signature, the inclusion proof and, when the record's bytes are
//! at hand, that they hash to the receipt's leaf. Fetched from a running node, the receipt is also
//! checked against the node's latest signed checkpoint: a consistency proof shows that the log
//! the receipt was signed in has only grown since, so the record is still in it.

use std::{io::Read as _, path::Path};

use anyhow::{Context, bail};
use base64::{Engine, engine::general_purpose::STANDARD};
use civitas_ledger::{
    NoteVerifier, Receipt,
    merkle::{Hash, verify_consistency},
    note::{CheckpointBody, verify_checkpoint},
};

use crate::ledger_verify::NodeClient;

/// What was checked, for the report.
#[derive(Debug)]
pub struct ReceiptCheck {
    pub index: u64,
    /// The checkpoint the receipt carries.
    pub signed: CheckpointBody,
    /// Whether the record's bytes were compared with the leaf hash.
    pub record_checked: bool,
    /// The node's latest checkpoint, proven to extend `signed` (when fetched from a node).
    pub latest: Option<CheckpointBody>,
}

impl ReceiptCheck {
    pub fn report(&self) -> String {
        let mut lines = vec![format!(
            "receipt ok: record {} is in the log that {} signed at tree size {} (root {})",
            self.index,
            self.signed.origin,
            self.signed.tree_size,
            STANDARD.encode(self.signed.root)
        )];
        lines.push(if self.record_checked {
            "the record's bytes hash to the receipt's leaf".to_owned()
        } else {
            "the record's bytes were not checked (pass --record FILE, or with --url an API key \
             that may read the audit trail)"
                .to_owned()
        });
        if let Some(latest) = &self.latest {
            lines.push(format!(
                "the node's latest checkpoint (tree size {}) is consistent with it",
                latest.tree_size
            ));
        }
        lines.join("\n")
    }
}

/// Reads a receipt as JSON from `path` (`-`: standard input), as the API gives it.
pub fn read_receipt(path: &Path) -> anyhow::Result<Receipt> {
    let text = if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the receipt from standard input")?;
        text
    } else {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?
    };
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not a receipt as JSON", path.display()))
}

/// Checks `receipt` with `verifier_key`, and `record` against its leaf when given.
pub fn check(
    receipt: &Receipt,
    record: Option<&[u8]>,
    verifier_key: &str,
) -> anyhow::Result<ReceiptCheck> {
    let signed = receipt
        .verify(record, verifier_key)
        .with_context(|| format!("the receipt of record {} does not verify", receipt.index))?;
    Ok(ReceiptCheck {
        index: receipt.index,
        signed,
        record_checked: record.is_some(),
        latest: None,
    })
}

/// Fetches the receipt of record `index` from the node at `base` and checks it (with the record's
/// bytes, when `api_key` may read them, or `record` when given), then proves the node's latest
/// signed checkpoint consistent with the receipt's.
pub async fn check_remote(
    base: &str,
    index: u64,
    api_key: Option<&str>,
    record: Option<Vec<u8>>,
    verifier_key: &str,
) -> anyhow::Result<ReceiptCheck> {
    let node = NodeClient::new(base, api_key);
    let get = |path: String| node.get(&path);
    let response = get(format!("/api/v1/ledger/receipts/{index}"))
        .send()
        .await?;
    if !response.status().is_success() {
        bail!(
            "fetching the receipt of record {index}: {} {}",
            response.status(),
            response.text().await.unwrap_or_default()
        );
    }
    let receipt: Receipt = response.json().await.context("the node's receipt")?;
    if receipt.index != index {
        bail!(
            "the node answered with the receipt of record {}, not {index}",
            receipt.index
        );
    }
    let record = match record {
        Some(record) => Some(record),
        None => {
            let response = get(format!("/api/v1/ledger/records/{index}"))
                .send()
                .await?;
            if response.status().is_success() {
                let view: serde_json::Value = response.json().await?;
                let bytes = view["bytes"]
                    .as_str()
                    .context("the node's record without its bytes")?;
                Some(STANDARD.decode(bytes).context("the record's bytes")?)
            } else {
                None
            }
        }
    };
    let mut checked = check(&receipt, record.as_deref(), verifier_key)?;

    let verifier = NoteVerifier::parse(verifier_key)?;
    let note = get("/ledger/checkpoint".into())
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    let latest = verify_checkpoint(&note, &verifier)
        .context("the node's latest checkpoint does not verify")?;
    let signed = &checked.signed;
    if latest.tree_size < signed.tree_size {
        bail!(
            "the node's latest checkpoint (tree size {}) is older than the receipt's ({}): the \
             log was cut back",
            latest.tree_size,
            signed.tree_size
        );
    }
    let view: serde_json::Value = node
        .json(
            &format!(
                "/api/v1/ledger/proofs/consistency?old={}&new={}",
                signed.tree_size, latest.tree_size
            ),
            "asking for a consistency proof",
        )
        .await?;
    let proof = view["proof"]
        .as_array()
        .context("a consistency proof without its hashes")?
        .iter()
        .map(|hash| {
            let bytes = STANDARD.decode(hash.as_str().unwrap_or_default())?;
            Hash::try_from(bytes.as_slice())
                .map_err(|_| anyhow::anyhow!("a hash of {} bytes", bytes.len()))
        })
        .collect::<anyhow::Result<Vec<Hash>>>()
        .context("the consistency proof")?;
    // The roots come from the two signed checkpoints, never from the proof's answer.
    verify_consistency(
        signed.tree_size,
        latest.tree_size,
        &signed.root,
        &latest.root,
        &proof,
    )
    .context(
        "the node's latest checkpoint is not consistent with the receipt's: the log was rewritten",
    )?;
    checked.latest = Some(latest);
    Ok(checked)
}
