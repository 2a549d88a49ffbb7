//! The store's indexes derived from the ledger: the personal-data access index (which exchanges
//! delivered data about which person, by keyed hash), the scenario runs and where each audit
//! event landed. All are fed from the ledger's records in the background and can always be
//! rebuilt from it; the subject report answers from the index and proves each answer with the
//! exchange's ledger record and receipt.

use civitas_core::CitizenId;
use civitas_ledger::record::{self, Record, ScenarioRunRecord};
use civitas_store::{Page, PageRequest, ScenarioRun, SubjectDelivery};
use hmac::{Hmac, Mac};
use jiff::Timestamp;
use sha2::Sha256;

use crate::{Gateway, hex};

/// Ledger records per transaction of the store's indexes derived from the ledger: the store has
/// one writer, and a smaller transaction keeps the writes of requests in flight from waiting long
/// behind it.
const LEDGER_INDEX_BATCH: u64 = 200;

/// What the store's indexes derived from the ledger need of a record: they read every record
/// the gateway writes, so this parses only the type and the subjects of exchange records
/// ([`record::decode`] would build and re-encode whole records); scenario runs, far fewer, are
/// then decoded whole.
#[derive(serde::Deserialize)]
struct IndexedView {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    subjects: Vec<String>,
    #[serde(default)]
    decision: Option<record::Decision>,
    #[serde(default)]
    status: u16,
    #[serde(default)]
    rule: Option<String>,
    #[serde(default)]
    part: u32,
    #[serde(default)]
    event: Option<u64>,
}

/// A ledger record the store's derived indexes take something from.
#[derive(Debug, PartialEq)]
enum IndexedRecord {
    /// An exchange's subjects, the keyed hashes of the ID numbers it was about, and whether it
    /// delivered data about them.
    Exchange {
        subjects: Vec<String>,
        delivered: bool,
    },
    /// More subjects of the exchange whose record is `part` records before this one.
    MoreSubjects {
        part: u32,
        subjects: Vec<String>,
    },
    ScenarioRun,
    /// The admin record of the store's audit event with this id.
    AuditEvent(u64),
}

impl IndexedView {
    /// The subjects of an exchange record or of its continuation, that the record is a scenario
    /// run, or which audit event an admin record holds; `None` for every other record.
    fn read(bytes: &[u8]) -> Option<IndexedRecord> {
        let (&version, json) = bytes.split_first()?;
        if version != record::ENCODING_V1 {
            return None;
        }
        let view: IndexedView = serde_json::from_slice(json).ok()?;
        match view.kind.as_str() {
            "scenario_run" => Some(IndexedRecord::ScenarioRun),
            "admin" => view.event.map(IndexedRecord::AuditEvent),
            "exchange_subjects" => Some(IndexedRecord::MoreSubjects {
                part: view.part,
                subjects: view.subjects,
            }),
            // The index answers who received a person's data: an exchange that was refused or
            // failed delivered none, and a streamed answer is indexed once, by the record of its
            // completion (its opening record carries the same subjects).
            "exchange" => Some(IndexedRecord::Exchange {
                delivered: view.decision == Some(record::Decision::Allow)
                    && (200..300).contains(&view.status)
                    && !view
                        .rule
                        .as_deref()
                        .is_some_and(|rule| rule.ends_with("stream_start")),
                subjects: view.subjects,
            }),
            _ => None,
        }
    }
}

/// One exchange's delivery of a person's data, as an audit of the person shows it: from the
/// exchange's ledger record, found through the personal-data access index.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SubjectAccess {
    /// Keyed hash of the citizen ID number.
    pub subject: String,
    /// The exchange's record in the ledger (its bytes are at `/api/v1/ledger/records/{index}`).
    pub ledger_index: u64,
    /// When the exchange concerned more people than its record lists: the index of its
    /// `exchange_subjects` record that lists this person (its receipt is at
    /// `/api/v1/ledger/receipts/{index}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listed_at: Option<u64>,
    /// The record's receipt: its leaf hash, a signed checkpoint covering it and the inclusion
    /// proof, which verify with the node's verifier key alone.
    pub receipt: civitas_ledger::Receipt,
    pub exchange_id: String,
    pub at: Timestamp,
    /// `{org}/{system}` of the system that received the data.
    pub consumer: String,
    pub provider: String,
    pub service: String,
    pub resource: String,
    pub grant: Option<String>,
}

/// The store's row of a scenario run, from the run's ledger record: its details hold the
/// citizen's consent reference and the whole result (records written before the result was
/// kept whole hold the values, rules and reason, which then stand as the result).
fn scenario_run_of(run: ScenarioRunRecord, ledger_index: u64) -> ScenarioRun {
    let mut details = run.details;
    let consent = match details.get_mut("consent").map(serde_json::Value::take) {
        Some(serde_json::Value::String(consent)) => consent,
        _ => String::new(),
    };
    let result = match details.get_mut("result").map(serde_json::Value::take) {
        Some(result) if !result.is_null() => result,
        _ => {
            if let Some(object) = details.as_object_mut() {
                object.remove("consent");
            }
            details
        }
    };
    ScenarioRun {
        id: run.run_id,
        scenario: run.scenario,
        version: run.version,
        subject: run.subject,
        consent,
        outcome: run.outcome,
        result,
        ledger_index,
        at: run.at,
    }
}

/// The 32 bytes a subject hash in an exchange record spells in lower-case hexadecimal.
fn unhex32(text: &str) -> Option<[u8; 32]> {
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let text = text.as_bytes();
    if text.len() != 64 {
        return None;
    }
    let mut bytes = [0; 32];
    for (byte, pair) in bytes.iter_mut().zip(text.chunks_exact(2)) {
        *byte = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(bytes)
}

impl Gateway {
    /// Brings the store's indexes derived from the ledger up to the ledger's current size: the
    /// personal-data access index (the subjects of exchange records), the scenario runs (from
    /// their run records) and where audit events landed (from admin records: an event appended
    /// by a node that stopped before noting where it landed is noted here, so that it is not
    /// appended again), in transactions of `LEDGER_INDEX_BATCH` records. All can always be
    /// rebuilt from the ledger; reading them after this call sees every durable record. Fails,
    /// reading nothing into the store, once the store is found to be another ledger's (see
    /// [`Gateway::handed_over`]).
    pub async fn index_ledger(&self) -> anyhow::Result<()> {
        let store = &self.inner.store;
        let ledger = &self.inner.ledger;
        if let Some(why) = self.handed_over() {
            anyhow::bail!("{why}");
        }
        let mut next = store.ledger_index_next().await?;
        let size = ledger.size();
        // The last exchange record read and whether it delivered: its `exchange_subjects`
        // records follow it.
        let mut last_exchange: Option<(u64, bool)> = None;
        while next < size {
            let end = (next + LEDGER_INDEX_BATCH).min(size);
            let records = {
                let ledger = ledger.clone();
                tokio::task::spawn_blocking(move || ledger.read_range(next..end)).await??
            };
            let mut deliveries = Vec::new();
            let mut runs = Vec::new();
            let mut audit_events = Vec::new();
            for (offset, bytes) in records.iter().enumerate() {
                let ledger_index = next + offset as u64;
                let listed = match IndexedView::read(bytes) {
                    Some(IndexedRecord::Exchange {
                        subjects,
                        delivered,
                    }) => {
                        last_exchange = Some((ledger_index, delivered));
                        delivered.then_some(subjects)
                    }
                    Some(IndexedRecord::MoreSubjects { part, subjects }) => {
                        let exchange = ledger_index.checked_sub(u64::from(part));
                        let delivered = match last_exchange {
                            Some((index, delivered)) if Some(index) == exchange => delivered,
                            // Its exchange was in an earlier batch or call: read it again.
                            _ => match exchange {
                                Some(index) => {
                                    let ledger = ledger.clone();
                                    let bytes =
                                        tokio::task::spawn_blocking(move || ledger.read(index))
                                            .await??;
                                    matches!(
                                        IndexedView::read(&bytes),
                                        Some(IndexedRecord::Exchange {
                                            delivered: true,
                                            ..
                                        })
                                    )
                                }
                                None => false,
                            },
                        };
                        delivered.then_some(subjects)
                    }
                    Some(IndexedRecord::ScenarioRun) => {
                        if let Ok(Record::ScenarioRun(run)) = record::decode(bytes) {
                            runs.push(scenario_run_of(run, ledger_index));
                        }
                        None
                    }
                    Some(IndexedRecord::AuditEvent(event)) => {
                        if let Ok(event) = i64::try_from(event) {
                            audit_events.push((event, ledger_index));
                        }
                        None
                    }
                    None => None,
                };
                deliveries.extend(listed.iter().flatten().filter_map(|subject| {
                    Some(SubjectDelivery {
                        subject: unhex32(subject)?,
                        ledger_index,
                    })
                }));
            }
            store
                .add_ledger_index(ledger.id(), &deliveries, &runs, &audit_events, end)
                .await
                .map_err(|error| self.note_if_handed_over(error.into()))?;
            next = end;
        }
        Ok(())
    }

    /// The keyed hash of a citizen ID number, in hexadecimal as exchange records hold it.
    pub fn subject_hash(&self, id_number: &str) -> String {
        hex(&self.subject_key_hash(id_number))
    }

    fn subject_key_hash(&self, id_number: &str) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.inner.config.subject_key)
            .expect("any key length");
        mac.update(id_number.as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Which exchanges delivered data about the person with this ID number, oldest first, a
    /// page at a time, each with its receipt: found in the personal-data access index (brought
    /// up to the ledger first, so that every exchange acknowledged before the call is covered)
    /// and read from their ledger records. Returns the person's keyed hash, which the index is
    /// kept by, with the page.
    pub async fn subject_accesses(
        &self,
        id_number: &CitizenId,
        page: &PageRequest,
    ) -> anyhow::Result<(String, Page<SubjectAccess>)> {
        self.index_ledger().await?;
        let key_hash = self.subject_key_hash(id_number.as_str());
        let subject = hex(&key_hash);
        let Page { items, next_cursor } =
            self.inner.store.subject_deliveries(&key_hash, page).await?;
        let ledger = self.inner.ledger.clone();
        let records = tokio::task::spawn_blocking(move || {
            items
                .into_iter()
                .map(|index| {
                    let listing = record::decode(&ledger.read(index)?)?;
                    // More subjects of an exchange: the exchange's own record comes with them.
                    let exchange = match &listing {
                        Record::ExchangeSubjects(more) => {
                            let at = index.checked_sub(u64::from(more.part)).ok_or_else(|| {
                                anyhow::anyhow!("ledger record {index} continues no exchange")
                            })?;
                            Some((at, record::decode(&ledger.read(at)?)?))
                        }
                        _ => None,
                    };
                    Ok((index, listing, exchange))
                })
                .collect::<anyhow::Result<Vec<_>>>()
        })
        .await??;
        let mut accesses = Vec::with_capacity(records.len());
        for (listed_at, listing, exchange) in records {
            // The record's own list is the evidence; the index only points at it.
            let (ledger_index, exchange) = match (listing, exchange) {
                (Record::Exchange(exchange), None) if exchange.subjects.contains(&subject) => {
                    (listed_at, exchange)
                }
                (Record::ExchangeSubjects(more), Some((at, Record::Exchange(exchange))))
                    if more.subjects.contains(&subject)
                        && more.exchange_id == exchange.exchange_id
                        && more.part <= exchange.subjects_continued =>
                {
                    (at, exchange)
                }
                _ => anyhow::bail!(
                    "the access index names ledger record {listed_at}, which does not list the \
                     subject for an exchange"
                ),
            };
            accesses.push(SubjectAccess {
                subject: subject.clone(),
                ledger_index,
                listed_at: (listed_at != ledger_index).then_some(listed_at),
                receipt: self.inner.ledger.receipt(ledger_index).await?,
                exchange_id: exchange.exchange_id,
                at: exchange.at,
                consumer: exchange.consumer,
                provider: exchange.provider,
                service: exchange.service,
                resource: exchange.resource,
                grant: exchange.grant,
            });
        }
        Ok((
            subject,
            Page {
                items: accesses,
                next_cursor,
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use civitas_ledger::record::{
        AdminRecord, Decision as RecordDecision, ExchangeRecord, Sha256Digest,
    };
    use serde_json::json;

    #[test]
    fn the_index_reads_the_subjects_of_exchange_records_only() {
        let exchange = ExchangeRecord {
            at: Timestamp::from_second(1_795_622_399).unwrap(),
            exchange_id: "e".into(),
            consumer: "c/s".into(),
            provider: "p/s".into(),
            service: "svc".into(),
            resource: "320100-B01-000001".into(),
            grant: Some("g".into()),
            decision: RecordDecision::Allow,
            rule: None,
            method: "GET".into(),
            path: "/".into(),
            status: 200,
            request_bytes: 0,
            response_bytes: 0,
            request_sha256: Sha256Digest([0; 32]),
            response_sha256: Sha256Digest([0; 32]),
            latency_us: 1,
            items: vec!["name".into()],
            masked: vec![],
            subjects: vec!["aa".into(), "bb".into()],
            subjects_continued: 0,
        };
        let read = |exchange: &ExchangeRecord| {
            IndexedView::read(&record::encode(&Record::Exchange(exchange.clone())))
        };
        assert_eq!(
            read(&exchange),
            Some(IndexedRecord::Exchange {
                subjects: vec!["aa".into(), "bb".into()],
                delivered: true
            })
        );
        for (refused, why) in [
            (
                ExchangeRecord {
                    decision: RecordDecision::Deny,
                    status: 403,
                    ..exchange.clone()
                },
                "refused",
            ),
            (
                ExchangeRecord {
                    status: 502,
                    ..exchange.clone()
                },
                "failed",
            ),
            (
                ExchangeRecord {
                    rule: Some("g;stream_start".into()),
                    ..exchange.clone()
                },
                "a stream's opening",
            ),
        ] {
            assert!(
                matches!(
                    read(&refused),
                    Some(IndexedRecord::Exchange {
                        delivered: false,
                        ..
                    })
                ),
                "{why}"
            );
        }
        let more = record::encode(&Record::ExchangeSubjects(
            civitas_ledger::record::ExchangeSubjectsRecord {
                at: exchange.at,
                exchange_id: "e".into(),
                part: 2,
                subjects: vec!["cc".into()],
            },
        ));
        assert_eq!(
            IndexedView::read(&more),
            Some(IndexedRecord::MoreSubjects {
                part: 2,
                subjects: vec!["cc".into()]
            })
        );
        let admin = Record::Admin(AdminRecord {
            at: Timestamp::from_second(1_795_622_399).unwrap(),
            actor: "user:alice".into(),
            action: "organization.create".into(),
            object_kind: "organization".into(),
            object_id: "x".into(),
            details: json!({"subjects": ["aa"], "consumer": "c/s"}),
            event: Some(7),
        });
        assert_eq!(
            IndexedView::read(&record::encode(&admin)),
            Some(IndexedRecord::AuditEvent(7))
        );
        let Record::Admin(mut admin) = admin else {
            unreachable!()
        };
        admin.event = None;
        assert!(IndexedView::read(&record::encode(&Record::Admin(admin))).is_none());
    }

    #[test]
    fn subject_hashes_read_back_from_their_hexadecimal() {
        let bytes: [u8; 32] = std::array::from_fn(|at| (at * 37 + 5) as u8);
        assert_eq!(unhex32(&hex(&bytes)), Some(bytes));
        let text = hex(&bytes);
        assert_eq!(unhex32(&text[..62]), None, "too short");
        assert_eq!(
            unhex32(&text.to_uppercase()),
            None,
            "records spell hashes in lower case"
        );
        assert_eq!(unhex32(&format!("{}g", &text[..63])), None);
    }

    #[test]
    fn scenario_run_records_give_the_stores_rows() {
        let run = ScenarioRunRecord {
            at: Timestamp::from_second(1_795_622_399).unwrap(),
            run_id: "r-1".into(),
            scenario: "rental".into(),
            version: 2,
            subject: "ab12".into(),
            outcome: "approve".into(),
            exchanges: vec![3, 4],
            details: json!({
                "consent": "c-9",
                "result": { "outcome": "approve", "values": { "amount": 4500 } },
            }),
        };
        let bytes = record::encode(&Record::ScenarioRun(run.clone()));
        assert!(matches!(
            IndexedView::read(&bytes),
            Some(IndexedRecord::ScenarioRun)
        ));
        let row = scenario_run_of(run.clone(), 7);
        assert_eq!(
            (row.id.as_str(), row.scenario.as_str(), row.version),
            ("r-1", "rental", 2)
        );
        assert_eq!(
            (
                row.subject.as_str(),
                row.consent.as_str(),
                row.outcome.as_str()
            ),
            ("ab12", "c-9", "approve")
        );
        assert_eq!(row.result["values"]["amount"], 4500);
        assert_eq!((row.ledger_index, row.at), (7, run.at));
        // Records from before the result was kept whole: their details stand as the result.
        let older = ScenarioRunRecord {
            details: json!({ "consent": "c-1", "values": {}, "reason": "a rule did not hold" }),
            ..run
        };
        let row = scenario_run_of(older, 8);
        assert_eq!(row.consent, "c-1");
        assert_eq!(
            row.result,
            json!({ "values": {}, "reason": "a rule did not hold" })
        );
    }
}
