//! `civitas ledger rebuild-derived`: recomputes the files the local ledger derives from its
//! records (offsets, leaf hashes, level-4 nodes, tile roots), the repair for damage the scrub
//! finds in them (`civitas_ledger::rebuild_derived_files`). Without `--apply` it only reports
//! which files differ and where.

use std::path::Path;

use civitas_ledger::{DerivedRebuild, RepairMode, rebuild_derived_files};

/// Rebuilds the derived files of a local data dir's ledger. Records that do not give the signed
/// checkpoints' roots are an error that says the records, not the derived files, need repair.
pub fn rebuild_local(data_dir: &Path, mode: RepairMode) -> anyhow::Result<DerivedRebuild> {
    rebuild_derived_files(data_dir.join("ledger"), mode).map_err(|error| match error {
        error @ (civitas_ledger::Error::CheckpointMismatch { .. }
        | civitas_ledger::Error::CorruptRecord { .. }
        | civitas_ledger::Error::RecordsMissing { .. }) => anyhow::anyhow!(
            "rebuild refused: {error}. The records themselves do not give the tree the signed checkpoints sign, so rebuilding what is derived from them cannot help, and nothing was changed; restore the ledger directory from a backup"
        ),
        error => crate::ledger_salvage::ledger_error(error, "rebuilding", data_dir),
    })
}

/// What the report says, for the operator: one line per fact, the last saying what was done.
pub fn describe(report: &DerivedRebuild) -> String {
    let mut lines = vec![format!(
        "recomputed from {} records, which give the root of each of the {} signed checkpoints",
        report.records, report.checkpoints
    )];
    if report.torn_tail_bytes > 0 {
        lines.push(format!(
            "then a torn write of {} bytes, which the node cuts off by itself when it next opens the ledger",
            report.torn_tail_bytes
        ));
    }
    for difference in &report.differences {
        lines.push(format!(
            "{} differs from entry {} on (entries stored: {}, from the records: {})",
            difference.file,
            difference.first_entry,
            difference.stored_entries,
            difference.expected_entries
        ));
    }
    let files: Vec<&str> = report
        .differences
        .iter()
        .map(|difference| difference.file)
        .collect();
    let files = files.join(", ");
    lines.push(if report.differences.is_empty() {
        "the derived files agree with the records; nothing was changed".to_owned()
    } else if report.applied {
        format!(
            "rebuilt: {files} replaced with what the records give; `civitas ledger verify` checks the result"
        )
    } else {
        format!("dry run: nothing was changed; run again with --apply to replace {files}")
    });
    lines.join("\n")
}
