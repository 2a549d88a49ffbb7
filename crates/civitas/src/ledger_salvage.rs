//! `civitas ledger salvage`: cuts the local ledger's records at damage that stops the node from
//! opening it, after saving every cut byte to a side file (`civitas_ledger::salvage_records`).
//! Without `--apply` it only reports what it would do.

use std::path::Path;

use civitas_ledger::{RepairMode, SalvageReport, salvage_records};

/// The hint added to the node's error when damage among synced records stops it from opening
/// the ledger of `data_dir`.
pub fn hint(data_dir: &Path) -> String {
    format!(
        "`civitas ledger salvage --data-dir {}` reports what cutting the records at the damage would cut off, and with --apply does it, keeping a copy of what it cuts",
        data_dir.display()
    )
}

/// What the operator is told when the ledger of `data_dir` cannot be opened, `doing` being what
/// was being done to it (`"opening"`, `"salvaging"`): a ledger a node holds says to stop the
/// node, and damage among synced records names the salvage that can cut it.
pub fn ledger_error(error: civitas_ledger::Error, doing: &str, data_dir: &Path) -> anyhow::Error {
    match error {
        civitas_ledger::Error::AlreadyOpen(dir) => anyhow::anyhow!(
            "the ledger in {} is open, most likely by a running node; stop the node first",
            dir.display()
        ),
        error @ civitas_ledger::Error::DamageBeforeValidFrames { .. } => {
            anyhow::anyhow!("{doing} the ledger: {error}; {}", hint(data_dir))
        }
        error => anyhow::Error::new(error).context(format!(
            "{doing} the ledger in {}",
            data_dir.join("ledger").display()
        )),
    }
}

/// Salvages the ledger of a local data dir. A refusal (damage among checkpointed records) is an
/// error carrying the report's explanation.
pub fn salvage_local(data_dir: &Path, mode: RepairMode) -> anyhow::Result<SalvageReport> {
    let ledger_dir = data_dir.join("ledger");
    let report = salvage_records(&ledger_dir, mode)
        .map_err(|error| ledger_error(error, "salvaging", data_dir))?;
    if let SalvageReport::Refused { .. } = report {
        anyhow::bail!("{}", describe(&report));
    }
    Ok(report)
}

/// What the report says, for the operator: one line per fact, the last saying what was done.
pub fn describe(report: &SalvageReport) -> String {
    match report {
        SalvageReport::NothingToDo {
            records,
            torn_tail_bytes: 0,
        } => format!("nothing to salvage: the {records} records end cleanly; nothing was changed"),
        SalvageReport::NothingToDo {
            records,
            torn_tail_bytes,
        } => format!(
            "nothing to salvage: {records} whole records, then a torn write of {torn_tail_bytes} bytes (damage with no valid record after it), which the node cuts off by itself when it next opens the ledger; nothing was changed"
        ),
        SalvageReport::Refused {
            damage,
            valid_frames_follow,
            checkpoint,
        } => format!(
            "salvage refused: record {} at byte {} of records.dat is damaged ({}){}, but the latest signed checkpoint (number {}) covers {} records, up to record {}. Cutting the records there would make the ledger contradict a checkpoint that others may hold, so nothing was changed; restore records.dat from a backup",
            damage.index,
            damage.offset,
            damage.reason,
            if *valid_frames_follow {
                " with valid records after it"
            } else {
                ""
            },
            checkpoint.ordinal,
            checkpoint.tree_size,
            checkpoint.tree_size - 1,
        ),
        SalvageReport::Cut(cut) => {
            let damage = &cut.damage;
            let kept = match damage.last_good_index() {
                Some(last) => format!("records 0 to {last} ({} records)", damage.index),
                None => "no records".to_owned(),
            };
            let side_name = cut
                .side_file
                .file_name()
                .map_or_else(String::new, |name| name.to_string_lossy().into_owned());
            let (cut_off, saved) = if cut.applied {
                ("cut off", "saved")
            } else {
                ("would be cut off", "would be saved")
            };
            let mut lines = vec![
                format!(
                    "damage: record {} at byte {} of records.dat ({}), with valid records after it, past the latest signed checkpoint (number {}, {} records)",
                    damage.index,
                    damage.offset,
                    damage.reason,
                    cut.checkpoint.ordinal,
                    cut.checkpoint.tree_size,
                ),
                format!(
                    "kept: {kept}; the last good record is {}",
                    damage
                        .last_good_index()
                        .map_or_else(|| "none".to_owned(), |last| last.to_string())
                ),
                format!(
                    "{cut_off}: the damaged record and {} valid records after it, {} bytes. They were written and synced, and possibly acknowledged: receipts issued for them will no longer verify, and their indexes go to new records",
                    cut.valid_frames_after, cut.cut_bytes,
                ),
                format!(
                    "{saved}: {side_name} ({} bytes) in {}",
                    cut.cut_bytes,
                    cut.side_file
                        .parent()
                        .map_or_else(String::new, |dir| dir.display().to_string()),
                ),
            ];
            lines.push(if cut.applied {
                format!(
                    "salvaged: records.dat cut at byte {}; when the node next starts it recomputes the derived files, forgets what its store derived from the records cut off and reads the ledger again from the cut, and appends the audit events recorded there again; `civitas ledger verify` checks the result",
                    damage.offset
                )
            } else {
                "dry run: nothing was changed; run again with --apply to save the side file and cut the records".to_owned()
            });
            lines.join("\n")
        }
    }
}
