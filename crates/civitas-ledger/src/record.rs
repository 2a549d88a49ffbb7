//! The canonical, versioned encoding of ledger records (see FORMAT.md).
//!
//! Version 1 is the byte `0x01` followed by compact JSON: object keys in the declaration order of
//! the structs below, `details` objects with keys sorted by their UTF-8 bytes, optional values
//! written as `null`. [`decode`] accepts only the exact bytes [`encode`] produces, so every record
//! has exactly one encoding and its leaf hash is unambiguous.

use jiff::Timestamp;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

/// The first byte of every record in encoding version 1.
pub const ENCODING_V1: u8 = 0x01;
/// Entry bundles of tlog-tiles prefix each entry with a 16-bit length, which bounds every record.
pub const MAX_RECORD_BYTES: usize = 65_535;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("record is empty")]
    Empty,
    #[error("unknown record encoding version {0:#04x}")]
    UnknownVersion(u8),
    #[error("record json is invalid: {0}")]
    Json(#[from] serde_json::Error),
    #[error("record is not in canonical form")]
    NotCanonical,
    #[error("invalid sha-256 hex digest: {0}")]
    InvalidDigest(&'static str),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One entry of the data chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
// The lint fires when the ledger is built alone, not with the workspace's unified features.
#[allow(
    clippy::large_enum_variant,
    reason = "a record is made, encoded and dropped one at a time; boxing the exchange would \
              add an allocation on the gateway's path"
)]
pub enum Record {
    Admin(AdminRecord),
    Exchange(ExchangeRecord),
    ExchangeSubjects(ExchangeSubjectsRecord),
    ScenarioRun(ScenarioRunRecord),
}

/// An administrative event from the audit seam: who did what to which object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminRecord {
    pub at: Timestamp,
    pub actor: String,
    /// A dotted verb such as `organization.create`.
    pub action: String,
    pub object_kind: String,
    pub object_id: String,
    #[serde(serialize_with = "serialize_sorted")]
    pub details: Value,
    /// The audit event's id in the node's store (its place in the audit outbox), so that an
    /// event appended twice, by a node stopped between the append and its note of where the
    /// event landed, is recognized; left out by records made without the outbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<u64>,
}

/// Whether a gateway call, transfer or decision was allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Allow,
    Deny,
}

/// One gateway call, transfer or access decision between two systems.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExchangeRecord {
    pub at: Timestamp,
    pub exchange_id: String,
    /// `{org}/{system}` of the caller.
    pub consumer: String,
    /// `{org}/{system}` of the callee.
    pub provider: String,
    pub service: String,
    pub resource: String,
    /// The id of the grant the call used, if any.
    pub grant: Option<String>,
    pub decision: Decision,
    /// Which grant, rule or policy made the decision.
    pub rule: Option<String>,
    pub method: String,
    pub path: String,
    pub status: u16,
    pub request_bytes: u64,
    pub response_bytes: u64,
    pub request_sha256: Sha256Digest,
    pub response_sha256: Sha256Digest,
    pub latency_us: u64,
    /// Codes of the data items delivered.
    pub items: Vec<String>,
    /// Codes of the data items delivered masked.
    pub masked: Vec<String>,
    /// Keyed hashes (HMAC-SHA256 with a node secret, lowercase hex) of the citizen ID numbers the
    /// exchange was about or delivered, masked or not; never the numbers themselves. The
    /// personal-data access index is built from them.
    pub subjects: Vec<String>,
    /// How many `exchange_subjects` records follow this one with the rest of its subjects, when
    /// the exchange concerned more people than one record can list; left out when none do.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub subjects_continued: u32,
}

/// More of an exchange's subjects, when an answer delivered data about more people than its
/// exchange record can list: the `part`-th of them is the record right after the exchange's own
/// at the exchange's ledger index + `part`, and all are appended with it, in one write.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExchangeSubjectsRecord {
    pub at: Timestamp,
    pub exchange_id: String,
    /// 1 for the first record after the exchange's, counting up.
    pub part: u32,
    /// Keyed hashes, as in [`ExchangeRecord::subjects`], continuing that list in order.
    pub subjects: Vec<String>,
}

fn is_zero(count: &u32) -> bool {
    *count == 0
}

/// One run of a cross-department scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioRunRecord {
    pub at: Timestamp,
    pub run_id: String,
    pub scenario: String,
    pub version: u32,
    /// A keyed hash of the subject, never a plaintext identifier.
    pub subject: String,
    pub outcome: String,
    /// Ledger indexes of the exchange records of this run.
    pub exchanges: Vec<u64>,
    #[serde(serialize_with = "serialize_sorted")]
    pub details: Value,
}

/// A SHA-256 digest, written as 64 lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Sha256Digest(pub [u8; 32]);

impl Sha256Digest {
    pub fn of(data: &[u8]) -> Sha256Digest {
        use sha2::Digest as _;
        Sha256Digest(sha2::Sha256::digest(data).into())
    }

    pub fn to_hex(&self) -> String {
        let mut text = String::with_capacity(64);
        for byte in self.0 {
            text.push(char::from_digit(u32::from(byte >> 4), 16).expect("a nibble"));
            text.push(char::from_digit(u32::from(byte & 15), 16).expect("a nibble"));
        }
        text
    }

    /// Parses exactly 64 lowercase hex digits; upper case is refused so that the text stays
    /// canonical.
    pub fn parse_hex(text: &str) -> Result<Sha256Digest> {
        if text.len() != 64 {
            return Err(Error::InvalidDigest("expected 64 hex digits"));
        }
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(text.as_bytes().chunks_exact(2)) {
            let digit = |c: u8| match c {
                b'0'..=b'9' => Ok(c - b'0'),
                b'a'..=b'f' => Ok(c - b'a' + 10),
                _ => Err(Error::InvalidDigest("expected lowercase hex digits")),
            };
            *byte = digit(pair[0])? << 4 | digit(pair[1])?;
        }
        Ok(Sha256Digest(bytes))
    }
}

impl Serialize for Sha256Digest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_hex())
    }
}

impl<'de> Deserialize<'de> for Sha256Digest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Sha256Digest::parse_hex(&text).map_err(serde::de::Error::custom)
    }
}

/// Serializes a JSON value with every object's keys sorted, whatever map type serde_json was built
/// with: another crate enabling `preserve_order` must not change the bytes of our records.
fn serialize_sorted<S: Serializer>(value: &Value, serializer: S) -> Result<S::Ok, S::Error> {
    SortedValue(value).serialize(serializer)
}

struct SortedValue<'a>(&'a Value);

impl Serialize for SortedValue<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self.0 {
            Value::Object(map) => {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
                let mut object = serializer.serialize_map(Some(entries.len()))?;
                for (key, value) in entries {
                    object.serialize_entry(key, &SortedValue(value))?;
                }
                object.end()
            }
            Value::Array(items) => {
                let mut array = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    array.serialize_element(&SortedValue(item))?;
                }
                array.end()
            }
            scalar => scalar.serialize(serializer),
        }
    }
}

/// Encodes a record in the current encoding (version 1).
pub fn encode(record: &Record) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(512);
    bytes.push(ENCODING_V1);
    serde_json::to_writer(&mut bytes, record)
        .expect("records contain only strings, numbers and json values, which always serialize");
    bytes
}

/// Encodes an exchange record, followed by as many `exchange_subjects` records as its subjects
/// need when they do not all fit in one record: the first records to append, in this order, in
/// one write. An exchange whose record is too large without its subjects stays one record, which
/// the ledger refuses.
pub fn encode_exchange(exchange: ExchangeRecord) -> Vec<Vec<u8>> {
    let record = Record::Exchange(exchange);
    let whole = encode(&record);
    let Record::Exchange(mut exchange) = record else {
        unreachable!("made an exchange above")
    };
    if whole.len() <= MAX_RECORD_BYTES || exchange.subjects.is_empty() {
        return vec![whole];
    }
    let subjects = std::mem::take(&mut exchange.subjects);
    // Each subject costs its text, two quotes and a comma; the counts are written as the
    // largest they could be.
    let widest = subjects.iter().map(String::len).max().unwrap_or(0) + 3;
    let room = |empty: &[u8]| MAX_RECORD_BYTES.saturating_sub(empty.len()) / widest;
    exchange.subjects_continued = u32::MAX;
    let first = room(&encode(&Record::Exchange(exchange.clone())));
    let part = ExchangeSubjectsRecord {
        at: exchange.at,
        exchange_id: exchange.exchange_id.clone(),
        part: u32::MAX,
        subjects: Vec::new(),
    };
    let per_part = room(&encode(&Record::ExchangeSubjects(part.clone()))).max(1);
    let (inline, rest) = subjects.split_at(first.min(subjects.len()));
    let parts: Vec<&[String]> = rest.chunks(per_part).collect();
    exchange.subjects = inline.to_vec();
    exchange.subjects_continued = u32::try_from(parts.len()).expect("fewer parts than records");
    let mut records = vec![encode(&Record::Exchange(exchange))];
    for (number, subjects) in (1..).zip(parts) {
        records.push(encode(&Record::ExchangeSubjects(ExchangeSubjectsRecord {
            part: number,
            subjects: subjects.to_vec(),
            ..part.clone()
        })));
    }
    records
}

/// Decodes a record, accepting only the canonical encoding of a known version.
pub fn decode(bytes: &[u8]) -> Result<Record> {
    let (&version, json) = bytes.split_first().ok_or(Error::Empty)?;
    if version != ENCODING_V1 {
        return Err(Error::UnknownVersion(version));
    }
    let record: Record = serde_json::from_slice(json)?;
    if encode(&record) != bytes {
        return Err(Error::NotCanonical);
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn admin() -> Record {
        Record::Admin(AdminRecord {
            at: "2025-03-01T08:30:00Z".parse().unwrap(),
            actor: "user:alice".into(),
            action: "organization.create".into(),
            object_kind: "organization".into(),
            object_id: "91320100MA1X0000X1".into(),
            details: json!({"zeta": 1, "alpha": {"y": [2, {"b": 1, "a": 0}], "x": null}}),
            event: None,
        })
    }

    fn exchange() -> Record {
        Record::Exchange(ExchangeRecord {
            at: "2025-03-01T08:30:00.123456Z".parse().unwrap(),
            exchange_id: "ex-1".into(),
            consumer: "org-a/sys-1".into(),
            provider: "org-b/sys-2".into(),
            service: "household".into(),
            resource: "members".into(),
            grant: Some("grant-7".into()),
            decision: Decision::Allow,
            rule: None,
            method: "GET".into(),
            path: "/members/1".into(),
            status: 200,
            request_bytes: 0,
            response_bytes: 512,
            request_sha256: Sha256Digest::of(b""),
            response_sha256: Sha256Digest::of(b"body"),
            latency_us: 1234,
            items: vec!["name".into(), "address".into()],
            masked: vec!["address".into()],
            subjects: vec!["5d41402abc4b2a76b9719d911017c592".into()],
            subjects_continued: 0,
        })
    }

    #[test]
    fn admin_encoding_is_compact_ordered_and_sorted() {
        let bytes = encode(&admin());
        assert_eq!(bytes[0], 0x01);
        assert_eq!(
            std::str::from_utf8(&bytes[1..]).unwrap(),
            r#"{"type":"admin","at":"2025-03-01T08:30:00Z","actor":"user:alice","action":"organization.create","object_kind":"organization","object_id":"91320100MA1X0000X1","details":{"alpha":{"x":null,"y":[2,{"a":0,"b":1}]},"zeta":1}}"#
        );
        assert_eq!(decode(&bytes).unwrap(), admin());

        // An outbox event's id comes last, and only when there is one.
        let Record::Admin(mut record) = admin() else {
            unreachable!()
        };
        record.event = Some(42);
        let bytes = encode(&Record::Admin(record.clone()));
        assert!(
            std::str::from_utf8(&bytes[1..])
                .unwrap()
                .ends_with(r#""zeta":1},"event":42}"#)
        );
        assert_eq!(decode(&bytes).unwrap(), Record::Admin(record));
        let with_null = [&bytes[..bytes.len() - 12], b",\"event\":null}"].concat();
        assert!(matches!(decode(&with_null), Err(Error::NotCanonical)));
    }

    #[test]
    fn exchange_encoding_writes_nulls_and_hex_digests() {
        let bytes = encode(&exchange());
        let text = std::str::from_utf8(&bytes[1..]).unwrap();
        assert!(text.starts_with(r#"{"type":"exchange","at":"2025-03-01T08:30:00.123456Z","exchange_id":"ex-1","consumer":"org-a/sys-1""#));
        assert!(text.contains(r#""grant":"grant-7","decision":"allow","rule":null,"#));
        assert!(text.contains(
            r#""request_sha256":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855""#
        ));
        assert!(
            text.ends_with(r#""latency_us":1234,"items":["name","address"],"masked":["address"],"subjects":["5d41402abc4b2a76b9719d911017c592"]}"#)
        );
        assert_eq!(decode(&bytes).unwrap(), exchange());
    }

    #[test]
    fn an_exchange_with_more_subjects_than_fit_continues_in_subjects_records() {
        let Record::Exchange(mut record) = exchange() else {
            unreachable!()
        };
        assert_eq!(encode_exchange(record.clone()), vec![encode(&exchange())]);
        let subjects: Vec<String> = (0..3000u32)
            .map(|n| Sha256Digest::of(&n.to_be_bytes()).to_hex())
            .collect();
        record.subjects = subjects.clone();
        let records = encode_exchange(record.clone());
        assert!(records.len() > 2, "{} records", records.len());
        let mut listed = Vec::new();
        for (number, bytes) in records.iter().enumerate() {
            assert!(
                bytes.len() <= MAX_RECORD_BYTES,
                "record {number}: {}",
                bytes.len()
            );
            match decode(bytes).unwrap() {
                Record::Exchange(first) => {
                    assert_eq!(number, 0);
                    assert_eq!(first.subjects_continued as usize, records.len() - 1);
                    assert_eq!(first.path, record.path);
                    listed.extend(first.subjects);
                }
                Record::ExchangeSubjects(part) => {
                    assert_eq!(part.part as usize, number);
                    assert_eq!(part.exchange_id, record.exchange_id);
                    listed.extend(part.subjects);
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(listed, subjects, "every subject once, in order");
        // The count is canonical only when it is needed.
        let text = String::from_utf8(encode(&exchange())).unwrap();
        let with_zero = text.replace("]}", r#"],"subjects_continued":0}"#);
        assert!(matches!(
            decode(with_zero.as_bytes()),
            Err(Error::NotCanonical)
        ));
    }

    #[test]
    fn scenario_run_round_trips() {
        let record = Record::ScenarioRun(ScenarioRunRecord {
            at: "2025-03-01T08:30:00Z".parse().unwrap(),
            run_id: "run-1".into(),
            scenario: "newborn".into(),
            version: 3,
            subject: "hmac:abcd".into(),
            outcome: "completed".into(),
            exchanges: vec![4, 5, 9],
            details: json!({"steps": 3}),
        });
        let bytes = encode(&record);
        assert!(
            std::str::from_utf8(&bytes)
                .unwrap()
                .contains(r#""type":"scenario_run""#)
        );
        assert_eq!(decode(&bytes).unwrap(), record);
    }

    #[test]
    fn strings_are_escaped_minimally() {
        let mut record = admin();
        let Record::Admin(admin) = &mut record else {
            unreachable!()
        };
        admin.actor = "南京 \"q\" \\ \n \u{1} /".into();
        let bytes = encode(&record);
        let text = std::str::from_utf8(&bytes[1..]).unwrap();
        assert!(text.contains(r#""actor":"南京 \"q\" \\ \n \u0001 /""#));
        assert_eq!(decode(&bytes).unwrap(), record);
    }

    #[test]
    fn non_canonical_and_unknown_encodings_are_rejected() {
        let bytes = encode(&admin());
        let mut spaced = bytes.clone();
        spaced.insert(2, b' ');
        assert!(matches!(decode(&spaced), Err(Error::NotCanonical)));

        let text = std::str::from_utf8(&bytes[1..]).unwrap();
        let reordered = text.replace(
            r#""actor":"user:alice","action":"organization.create""#,
            r#""action":"organization.create","actor":"user:alice""#,
        );
        let mut reordered_bytes = vec![0x01];
        reordered_bytes.extend_from_slice(reordered.as_bytes());
        assert!(matches!(decode(&reordered_bytes), Err(Error::NotCanonical)));

        let mut other_version = bytes.clone();
        other_version[0] = 0x02;
        assert!(matches!(
            decode(&other_version),
            Err(Error::UnknownVersion(2))
        ));
        assert!(matches!(decode(&[]), Err(Error::Empty)));

        let extra = text.replacen('{', r#"{"extra":1,"#, 1);
        let mut extra_bytes = vec![0x01];
        extra_bytes.extend_from_slice(extra.as_bytes());
        assert!(decode(&extra_bytes).is_err());

        let upper_text = String::from_utf8(encode(&exchange()))
            .unwrap()
            .replace("e3b0c442", "E3B0C442");
        assert!(decode(upper_text.as_bytes()).is_err());
    }
}
