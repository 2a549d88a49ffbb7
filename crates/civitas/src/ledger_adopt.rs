//! `civitas ledger adopt-store`: hands the store's indexes derived from a ledger over to the
//! ledger of a local data dir, when the ledger they came from is lost for good (its data dir
//! gone, or restored from a backup made before ledgers had ids, which got a new id). A node
//! refuses to start on a store whose indexes come from another ledger; this is the supported way
//! out. Without `--apply` it only reports.
//!
//! The store keeps its audit trail: every audit event returns to the outbox, and the node
//! appends them to the new ledger in their order. The old ledger's records are lost: the access
//! index entries and scenario runs that cite them are deleted, and their receipts verify against
//! nothing the node still has. The node reads the new ledger from its start when it next
//! starts, before it ships the outbox, so a new ledger that already holds this store's records
//! (an older backup of the lost ledger) has its access index and runs rebuilt and its audit
//! events noted where they are, not appended twice (see `Store::hand_ledger_index_over`).

use anyhow::Context;
use civitas_ledger::{Ledger, LedgerOptions, NoteSigner};
use civitas_store::{LedgerIndexFacts, Store};

use crate::config::Settings;

/// How `--from` names a store that records no ledger (one from before ledgers had ids). Ledger
/// ids are hex digits, so it cannot be one.
pub const NONE_RECORDED: &str = "none";

/// Reports what handing the store over to the data dir's ledger would do or, with `apply`, does
/// it, and returns the report for the operator. `from` must name the ledger the store records
/// (or [`NONE_RECORDED`]) for `apply`. Holds the ledger open throughout, so no node can start on
/// it meanwhile.
pub async fn adopt_store(
    settings: &Settings,
    from: Option<&str>,
    apply: bool,
) -> anyhow::Result<String> {
    let ledger = open_ledger(settings).await?;
    let adopted = adopt_store_with(settings, &ledger, from, apply).await;
    // Dropping the last handle signs a final checkpoint, which blocks.
    tokio::task::spawn_blocking(move || drop(ledger)).await?;
    adopted
}

/// Opens the data dir's ledger as the node would, without making a data dir, key or ledger that
/// is not there: an operator adopting a store names a ledger that exists.
async fn open_ledger(settings: &Settings) -> anyhow::Result<Ledger> {
    let ledger_dir = settings.data_dir.join("ledger");
    let key_path = settings.data_dir.join(crate::node::NODE_KEY_FILE);
    if !ledger_dir.is_dir() || !key_path.is_file() {
        anyhow::bail!(
            "the data dir {} holds no ledger and node key: start the node on it once (it makes them, then refuses the store), or restore the ledger directory and node key there",
            settings.data_dir.display()
        );
    }
    let key = crate::node::load_or_create_key(&settings.data_dir)?;
    let signer = NoteSigner::new(settings.node_code.as_str(), key)
        .context("the node key as a checkpoint signer")?;
    // No scrub: the ledger is open only for as long as the command runs.
    let options = LedgerOptions {
        scrub_bytes_per_second: None,
        ..LedgerOptions::default()
    };
    tokio::task::spawn_blocking(move || Ledger::open(&ledger_dir, signer, options))
        .await?
        .map_err(|error| crate::ledger_salvage::ledger_error(error, "opening", &settings.data_dir))
}

async fn adopt_store_with(
    settings: &Settings,
    ledger: &Ledger,
    from: Option<&str>,
    apply: bool,
) -> anyhow::Result<String> {
    let store = Store::connect(&settings.store)
        .await
        .with_context(|| format!("opening the store at {}", settings.store))?;
    let adopted = report_or_hand_over(settings, &store, ledger, from, apply).await;
    store.close().await;
    adopted
}

async fn report_or_hand_over(
    settings: &Settings,
    store: &Store,
    ledger: &Ledger,
    from: Option<&str>,
    apply: bool,
) -> anyhow::Result<String> {
    let ledger_id = ledger.id();
    let ledger_size = ledger.size();
    let facts = store
        .ledger_index_facts()
        .await
        .context("reading what the store derived from a ledger")?;
    let this_ledger = format!(
        "this ledger: {ledger_id} in {}, {ledger_size} records",
        settings.data_dir.join("ledger").display()
    );
    // The same rule as the node's claim on start (`Store::claim_ledger_index`): a store that
    // records no ledger is the first starting node's, unless it derived indexes and that node's
    // ledger is empty, which cannot be the one it read.
    let derived = facts.indexed_to > 0 || facts.audit_events_landed > 0;
    let recorded = match &facts.recorded_ledger_id {
        Some(recorded) if recorded == ledger_id => {
            return Ok(format!(
                "the store at {} already belongs to this ledger\n{this_ledger}\nnothing to do; nothing was changed",
                settings.store
            ));
        }
        None if !derived || ledger_size > 0 => {
            return Ok(format!(
                "the store at {} records no ledger yet\n{this_ledger}\nnothing to do: the node records this ledger as the store's when it starts; nothing was changed",
                settings.store
            ));
        }
        Some(recorded) => recorded.as_str(),
        None => NONE_RECORDED,
    };
    let mut lines = vec![
        match &facts.recorded_ledger_id {
            Some(recorded) => format!(
                "the store at {} holds indexes derived from the ledger {recorded}",
                settings.store
            ),
            None => format!(
                "the store at {} holds indexes derived from a ledger it did not record (it is older than ledger ids)",
                settings.store
            ),
        },
        this_ledger,
        describe_facts(&facts),
    ];
    if !apply {
        lines.push(format!(
            "adopting would: delete the {} access index entries and the {} scenario runs, which cite the old ledger's records (those records are lost: subject reports will no longer list those exchanges, and their receipts cannot be checked against this node); return the {} audit events noted as landed to the outbox, where {} already wait (the audit trail is kept: the node appends them to this ledger in their order); set the position to 0 and record this ledger as the store's",
            facts.subject_deliveries,
            facts.scenario_runs,
            facts.audit_events_landed,
            facts.audit_events_waiting,
        ));
        lines.push(what_the_node_does_next(ledger_size));
        lines.push(format!(
            "dry run: nothing was changed; stop every node using this store, then run `civitas ledger adopt-store --data-dir {} --from {recorded} --apply` with the same store",
            settings.data_dir.display()
        ));
        return Ok(lines.join("\n"));
    }
    let Some(from) = from else {
        anyhow::bail!(
            "{}\n--apply needs --from {recorded}, the ledger the store records, so that no store is adopted by accident; nothing was changed",
            lines.join("\n")
        );
    };
    if from != recorded {
        anyhow::bail!(
            "{}\n--from {from} is not the ledger the store records ({recorded}); nothing was changed",
            lines.join("\n")
        );
    }
    let expected = facts.recorded_ledger_id.as_deref();
    let handover = store
        .hand_ledger_index_over(expected, ledger_id)
        .await
        .context("handing the store over to this ledger")?;
    tracing::info!(
        ledger_id,
        from = recorded,
        indexed_to = handover.indexed_to,
        subject_deliveries = handover.subject_deliveries,
        scenario_runs = handover.scenario_runs,
        audit_events = handover.audit_events,
        "handed the store over to this ledger"
    );
    lines.push(format!(
        "adopted: deleted {} access index entries and {} scenario runs that cited the old ledger's records (lost with it), returned {} audit events to the outbox, set the position to 0 (it was {}), and recorded this ledger {ledger_id} as the store's",
        handover.subject_deliveries,
        handover.scenario_runs,
        handover.audit_events,
        handover.indexed_to,
    ));
    lines.push(what_the_node_does_next(ledger_size));
    Ok(lines.join("\n"))
}

fn describe_facts(facts: &LedgerIndexFacts) -> String {
    format!(
        "the store has read {} records of its ledger: {} access index entries, {} scenario runs, {} audit events noted as landed there; {} audit events wait in the outbox",
        facts.indexed_to,
        facts.subject_deliveries,
        facts.scenario_runs,
        facts.audit_events_landed,
        facts.audit_events_waiting,
    )
}

fn what_the_node_does_next(ledger_size: u64) -> String {
    let mut next = "when the node next starts on this data dir it reads this ledger from its start, then appends the waiting audit events; `civitas ledger verify` checks the ledger".to_owned();
    if ledger_size > 0 {
        next.push_str(&format!(
            "\nthis ledger already holds {ledger_size} records: adopt it only if they were written for this store (an older backup of its lost ledger, say); the node re-reads them into the access index and scenario runs, and the audit events it finds in them are noted there and not appended again"
        ));
    }
    next
}
