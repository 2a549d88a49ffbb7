//! Reading and writing catalog resources in bulk: CSV with a fixed header, and JSON Lines. The
//! formats are documented in `docs/catalog-import.md`; an export re-imports to the same catalog.

use std::io::{BufRead, Write};

use anyhow::Context as _;
use civitas_core::{
    Code, DeviceCode, NodeCode, Uscc,
    catalog::{
        ClassificationCode, DataType, InformationItem, MaskKind, OpenType, ResourceCode,
        ResourceDraft, ResourceKind, Sensitivity, Sharing, SharingMethod, SharingType, UpdateCycle,
    },
};

/// The CSV header, in order. Every column is present in every row; empty cells mean "none".
pub const CSV_COLUMNS: [&str; 20] = [
    "code",
    "kind",
    "classification",
    "name",
    "name_en",
    "provider",
    "provider_system",
    "summary",
    "format",
    "items",
    "sharing_type",
    "sharing_conditions",
    "sharing_method",
    "open_type",
    "update_cycle",
    "published_on",
    "related",
    "tags",
    "origin_node",
    "device",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Csv,
    Jsonl,
}

impl Format {
    /// The format a file name suggests: `.csv`, or `.jsonl` / `.ndjson`.
    pub fn from_path(path: &std::path::Path) -> Option<Format> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "csv" => Some(Format::Csv),
            "jsonl" | "ndjson" => Some(Format::Jsonl),
            _ => None,
        }
    }
}

/// A row that could not be read: where it is and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct RowError {
    pub line: u64,
    pub column: String,
    pub message: String,
}

fn row_error(line: u64, column: &str, message: impl std::fmt::Display) -> RowError {
    RowError {
        line,
        column: column.to_owned(),
        message: message.to_string(),
    }
}

/// Reads drafts from `input`, one result per row: `(line, draft)` or the row's error. Rows are
/// checked against `ResourceDraft::validate` as well as the format.
pub fn read_drafts<'a, R: BufRead + 'a>(
    input: R,
    format: Format,
) -> Box<dyn Iterator<Item = Result<(u64, ResourceDraft), RowError>> + 'a> {
    match format {
        Format::Jsonl => Box::new(read_jsonl(input)),
        Format::Csv => read_csv(input),
    }
}

fn read_jsonl<R: BufRead>(
    input: R,
) -> impl Iterator<Item = Result<(u64, ResourceDraft), RowError>> {
    // A line that is not UTF-8 is that line's fault, and reading goes on after it; any other
    // read error ends the input (reading again would fail again, for ever).
    input
        .lines()
        .enumerate()
        .scan(false, |failed, (index, line)| {
            if *failed {
                return None;
            }
            let number = index as u64 + 1;
            Some(match line {
                Err(error) => {
                    *failed = error.kind() != std::io::ErrorKind::InvalidData;
                    Some(Err(row_error(number, "-", format!("cannot read: {error}"))))
                }
                Ok(text) if text.trim().is_empty() => None,
                Ok(text) => Some(parse_json_row(number, &text)),
            })
        })
        .flatten()
}

fn parse_json_row(line: u64, text: &str) -> Result<(u64, ResourceDraft), RowError> {
    // Tracking the path costs on every field; it is only needed to name the field of an error.
    let draft = match serde_json::from_str::<ResourceDraft>(text) {
        Ok(draft) => draft,
        Err(_) => {
            let mut deserializer = serde_json::Deserializer::from_str(text);
            serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
                let path = error.path().to_string();
                let inner = error.into_inner();
                let column = if path == "." { "-".to_owned() } else { path };
                row_error(line, &column, inner)
            })?
        }
    };
    validated(line, draft)
}

fn validated(line: u64, draft: ResourceDraft) -> Result<(u64, ResourceDraft), RowError> {
    draft
        .validate()
        .map_err(|error| row_error(line, &error.field, error.message))?;
    Ok((line, draft))
}

fn read_csv<'a, R: BufRead + 'a>(
    mut input: R,
) -> Box<dyn Iterator<Item = Result<(u64, ResourceDraft), RowError>> + 'a> {
    // The csv reader counts a line when it meets its `\n`, and in a file whose lines end in
    // `\r\n` (as spreadsheets write them) a record ends at the `\r`, so each record's line is
    // counted one short: the header's line ending tells which kind of file this is.
    let crlf = input.fill_buf().is_ok_and(|start| {
        start
            .iter()
            .position(|&byte| byte == b'\n')
            .is_some_and(|newline| newline > 0 && start[newline - 1] == b'\r')
    });
    let physical = move |position: Option<&csv::Position>| {
        position.map_or(0, |position| position.line() + u64::from(crlf))
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(input);
    let header = match reader.headers() {
        Ok(header) => header.clone(),
        Err(error) => return Box::new(std::iter::once(Err(row_error(1, "-", error)))),
    };
    let expected: Vec<&str> = CSV_COLUMNS.to_vec();
    let actual: Vec<&str> = header.iter().map(str::trim).collect();
    if actual != expected {
        let message = format!("the header must be exactly: {}", CSV_COLUMNS.join(","));
        return Box::new(std::iter::once(Err(row_error(1, "-", message))));
    }
    // As with JSON lines, a read error other than a row's bad UTF-8 ends the input.
    let mut failed = false;
    let records = reader.into_records().map_while(move |record| {
        if failed {
            return None;
        }
        if let Err(error) = &record {
            failed = matches!(error.kind(), csv::ErrorKind::Io(_));
        }
        Some(record)
    });
    Box::new(records.map(move |record| {
        let record = record.map_err(|error| {
            let line = physical(error.position());
            row_error(line, "-", error)
        })?;
        let line = physical(record.position());
        if record.len() != CSV_COLUMNS.len() {
            return Err(row_error(
                line,
                "-",
                format!(
                    "the row has {} cells, the header {}",
                    record.len(),
                    CSV_COLUMNS.len()
                ),
            ));
        }
        let draft = csv_row_to_draft(line, &record)?;
        validated(line, draft)
    }))
}

/// Parses a required cell with `parse`, naming the column in the error.
fn required<T, E: std::fmt::Display>(
    line: u64,
    column: &str,
    text: &str,
    parse: impl Fn(&str) -> Result<T, E>,
) -> Result<T, RowError> {
    if text.is_empty() {
        return Err(row_error(line, column, "must not be empty"));
    }
    parse(text).map_err(|error| row_error(line, column, error))
}

fn optional<T, E: std::fmt::Display>(
    line: u64,
    column: &str,
    text: &str,
    parse: impl Fn(&str) -> Result<T, E>,
) -> Result<Option<T>, RowError> {
    if text.is_empty() {
        return Ok(None);
    }
    parse(text)
        .map(Some)
        .map_err(|error| row_error(line, column, error))
}

/// Whether a backslash before `c` escapes it in a text cell: a separator of the list cells, a
/// backslash, or whitespace, which would otherwise be padding.
fn escapable(c: char) -> bool {
    matches!(c, '\\' | ';' | '|') || c.is_whitespace()
}

/// Splits a cell's text at each `separator` that no backslash escapes. The parts keep their
/// escapes and padding, for [`text_value`].
fn split_unescaped(text: &str, separator: char) -> Vec<&str> {
    if !text.contains('\\') {
        return text.split(separator).collect();
    }
    let mut parts = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((index, c)) = chars.next() {
        if c == '\\' {
            if chars.peek().is_some_and(|&(_, next)| escapable(next)) {
                chars.next();
            }
        } else if c == separator {
            parts.push(&text[start..index]);
            start = index + separator.len_utf8();
        }
    }
    parts.push(&text[start..]);
    parts
}

/// The value a text cell (or a part of a list cell) holds: its padding, the whitespace at
/// either end that no backslash escapes, is trimmed, and each escape stands for the character
/// it escapes. A backslash before any other character is itself, as in files written before
/// escapes existed; text without a backslash is simply trimmed, as it always was.
fn text_value(raw: &str) -> String {
    if !raw.contains('\\') {
        return raw.trim().to_owned();
    }
    let mut chars: Vec<(char, bool)> = Vec::with_capacity(raw.len());
    let mut rest = raw.chars().peekable();
    while let Some(c) = rest.next() {
        match rest.peek() {
            Some(&next) if c == '\\' && escapable(next) => {
                rest.next();
                chars.push((next, true));
            }
            _ => chars.push((c, false)),
        }
    }
    let padding = |&(c, escaped): &(char, bool)| !escaped && c.is_whitespace();
    let start = chars
        .iter()
        .position(|c| !padding(c))
        .unwrap_or(chars.len());
    let end = chars
        .iter()
        .rposition(|c| !padding(c))
        .map_or(start, |i| i + 1);
    chars[start..end].iter().map(|&(c, _)| c).collect()
}

/// Writes `value` so that [`text_value`] reads it back whole: every backslash doubled, each of
/// the cell's `separators` escaped, and whitespace at either end escaped, since unescaped it
/// would be padding.
fn escaped<'a>(value: &'a str, separators: &[char]) -> std::borrow::Cow<'a, str> {
    let padded = value.starts_with(char::is_whitespace) || value.ends_with(char::is_whitespace);
    if !padded && !value.contains(|c| c == '\\' || separators.contains(&c)) {
        return value.into();
    }
    let last = value.chars().count().saturating_sub(1);
    let mut text = String::with_capacity(value.len() + 4);
    for (index, c) in value.chars().enumerate() {
        let edge = (index == 0 || index == last) && c.is_whitespace();
        if edge || c == '\\' || separators.contains(&c) {
            text.push('\\');
        }
        text.push(c);
    }
    text.into()
}

/// The values of a list cell, separated by `;`; empty ones are skipped.
fn list(text: &str) -> impl Iterator<Item = String> {
    split_unescaped(text, ';')
        .into_iter()
        .map(text_value)
        .filter(|part| !part.is_empty())
}

fn csv_row_to_draft(line: u64, record: &csv::StringRecord) -> Result<ResourceDraft, RowError> {
    // A cell as read; the text cells take their values with `text_value`, the others, which
    // hold no spaces, are trimmed.
    let raw = |column: &str| -> &str {
        let index = CSV_COLUMNS
            .iter()
            .position(|c| *c == column)
            .expect("a known column");
        record.get(index).unwrap_or_default()
    };
    let cell = |column: &str| raw(column).trim();
    let text = |column: &str| text_value(raw(column));
    let items = split_unescaped(raw("items"), ';')
        .into_iter()
        .filter(|item| !item.trim().is_empty())
        .map(|item| parse_item(line, item))
        .collect::<Result<Vec<_>, _>>()?;
    let related = list(cell("related"))
        .map(|code| ResourceCode::parse(&code).map_err(|e| row_error(line, "related", e)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ResourceDraft {
        code: required(line, "code", cell("code"), ResourceCode::parse)?,
        kind: required(line, "kind", cell("kind"), ResourceKind::parse)?,
        classification: required(
            line,
            "classification",
            cell("classification"),
            ClassificationCode::parse,
        )?,
        name: text("name"),
        name_en: Some(text("name_en")).filter(|s| !s.is_empty()),
        provider: required(line, "provider", cell("provider"), Uscc::parse)?,
        provider_system: optional(
            line,
            "provider_system",
            cell("provider_system"),
            Code::parse,
        )?,
        summary: text("summary"),
        format: text("format"),
        items,
        sharing: Sharing {
            sharing_type: required(
                line,
                "sharing_type",
                cell("sharing_type"),
                SharingType::parse,
            )?,
            conditions: Some(text("sharing_conditions")).filter(|s| !s.is_empty()),
            method: optional(
                line,
                "sharing_method",
                cell("sharing_method"),
                SharingMethod::parse,
            )?,
        },
        open_type: required(line, "open_type", cell("open_type"), OpenType::parse)?,
        update_cycle: required(
            line,
            "update_cycle",
            cell("update_cycle"),
            UpdateCycle::parse,
        )?,
        published_on: optional(line, "published_on", cell("published_on"), |text| {
            text.parse::<jiff::civil::Date>()
        })?,
        related,
        tags: list(raw("tags")).collect(),
        origin_node: optional(line, "origin_node", cell("origin_node"), NodeCode::parse)?,
        device: optional(line, "device", cell("device"), DeviceCode::parse)?,
    })
}

/// An item cell part: `code|name|data_type|sensitivity[|mask]`, escapes still in it.
fn parse_item(line: u64, text: &str) -> Result<InformationItem, RowError> {
    let fields: Vec<String> = split_unescaped(text, '|')
        .into_iter()
        .map(text_value)
        .collect();
    if !(4..=5).contains(&fields.len()) {
        return Err(row_error(
            line,
            "items",
            format!(
                "{:?} is not code|name|data_type|sensitivity[|mask]",
                text.trim()
            ),
        ));
    }
    Ok(InformationItem {
        code: fields[0].clone(),
        name: fields[1].clone(),
        data_type: DataType::parse(&fields[2]).map_err(|e| row_error(line, "items", e))?,
        sensitivity: Sensitivity::parse(&fields[3]).map_err(|e| row_error(line, "items", e))?,
        mask: match fields.get(4) {
            Some(mask) => Some(MaskKind::parse(mask).map_err(|e| row_error(line, "items", e))?),
            None => None,
        },
    })
}

/// Writes drafts in `format`. CSV output starts with the header.
pub struct DraftWriter<W: Write> {
    format: Format,
    csv: Option<csv::Writer<W>>,
    plain: Option<W>,
}

impl<W: Write> DraftWriter<W> {
    pub fn new(output: W, format: Format) -> anyhow::Result<DraftWriter<W>> {
        Ok(match format {
            Format::Csv => {
                let mut writer = csv::Writer::from_writer(output);
                writer.write_record(CSV_COLUMNS)?;
                DraftWriter {
                    format,
                    csv: Some(writer),
                    plain: None,
                }
            }
            Format::Jsonl => DraftWriter {
                format,
                csv: None,
                plain: Some(output),
            },
        })
    }

    pub fn write(&mut self, draft: &ResourceDraft) -> anyhow::Result<()> {
        match self.format {
            Format::Jsonl => {
                let output = self.plain.as_mut().expect("jsonl writer");
                serde_json::to_writer(&mut *output, draft)?;
                output.write_all(b"\n")?;
            }
            Format::Csv => {
                // Item codes and the enums hold no separators, spaces or backslashes.
                let items = draft
                    .items
                    .iter()
                    .map(|item| {
                        let mut text = format!(
                            "{}|{}|{}|{}",
                            item.code,
                            escaped(&item.name, &[';', '|']),
                            item.data_type,
                            item.sensitivity
                        );
                        if let Some(mask) = item.mask {
                            text.push('|');
                            text.push_str(mask.as_str());
                        }
                        text
                    })
                    .collect::<Vec<_>>()
                    .join(";");
                let record: [String; 20] = [
                    draft.code.to_string(),
                    draft.kind.to_string(),
                    draft.classification.to_string(),
                    escaped(&draft.name, &[]).into_owned(),
                    escaped(draft.name_en.as_deref().unwrap_or_default(), &[]).into_owned(),
                    draft.provider.to_string(),
                    draft
                        .provider_system
                        .as_ref()
                        .map(Code::to_string)
                        .unwrap_or_default(),
                    escaped(&draft.summary, &[]).into_owned(),
                    escaped(&draft.format, &[]).into_owned(),
                    items,
                    draft.sharing.sharing_type.to_string(),
                    escaped(draft.sharing.conditions.as_deref().unwrap_or_default(), &[])
                        .into_owned(),
                    draft
                        .sharing
                        .method
                        .map(|m| m.to_string())
                        .unwrap_or_default(),
                    draft.open_type.to_string(),
                    draft.update_cycle.to_string(),
                    draft
                        .published_on
                        .map(|d| d.to_string())
                        .unwrap_or_default(),
                    draft
                        .related
                        .iter()
                        .map(ResourceCode::to_string)
                        .collect::<Vec<_>>()
                        .join(";"),
                    draft
                        .tags
                        .iter()
                        .map(|tag| escaped(tag, &[';']))
                        .collect::<Vec<_>>()
                        .join(";"),
                    draft
                        .origin_node
                        .as_ref()
                        .map(NodeCode::to_string)
                        .unwrap_or_default(),
                    draft
                        .device
                        .as_ref()
                        .map(DeviceCode::to_string)
                        .unwrap_or_default(),
                ];
                self.csv
                    .as_mut()
                    .expect("csv writer")
                    .write_record(&record)?;
            }
        }
        Ok(())
    }

    pub fn finish(self) -> anyhow::Result<()> {
        if let Some(mut writer) = self.csv {
            writer.flush()?;
        }
        if let Some(mut output) = self.plain {
            output.flush()?;
        }
        Ok(())
    }
}

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportSummary {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    /// Every refused row, in line order.
    pub rejected: Vec<RowError>,
}

/// Rows written per transaction during an import. Each batch is all-or-nothing for its valid
/// rows, so a crash never leaves a row half-written. Every batch costs a durable commit and a
/// hand-over to the search index: Nanjing's catalog imported 15-18k rows/s in batches of 1,000
/// and 20-21k in batches of 5,000 (paired runs); a batch holds a few MB.
pub const IMPORT_BATCH: usize = 5000;

/// Imports every valid row of `input` into the store, idempotently by resource code: new codes
/// are created, changed ones updated (keeping their history), identical ones left alone. Rows
/// that break a rule are reported and skipped; the rest are imported. `written` is given each
/// committed batch's written resources, with the change sequence number of the first, so that
/// the search index takes them as they are rather than reading them back from the store.
///
/// The store writes one batch while the next is read and checked: both take about as long.
pub async fn import(
    store: &civitas_store::Store,
    input: impl BufRead,
    format: Format,
    mut written: impl AsyncFnMut(u64, Vec<civitas_core::catalog::Resource>),
) -> anyhow::Result<ImportSummary> {
    let permit = civitas_core::authz::Permit::internal("civitas:import");
    let mut summary = ImportSummary::default();
    let mut rows = read_drafts(input, format).peekable();
    let mut writing: Option<(WriteTask, Vec<u64>)> = None;
    loop {
        let (batch, lines) = next_batch(&mut rows, &mut summary.rejected);
        let done = match writing.take() {
            Some((task, lines)) => {
                let (outcome, resources) = task.await?.with_context(|| {
                    format!(
                        "storing the rows of lines {}-{} (none of them is stored; the rows \
                         before them are: {} created, {} updated, {} unchanged)",
                        lines.first().copied().unwrap_or(0),
                        lines.last().copied().unwrap_or(0),
                        summary.created,
                        summary.updated,
                        summary.unchanged
                    )
                })?;
                let first = outcome.first_seq;
                summary.add(outcome, &lines);
                first.map(|first| (first, resources))
            }
            None => None,
        };
        // The next batch is on its way to the store before the last one goes to the index,
        // which may make us wait.
        if !batch.is_empty() {
            let store = store.clone();
            let permit = permit.clone();
            let task = tokio::spawn(async move {
                store
                    .write_resources(&permit, &batch, civitas_store::WriteMode::Upsert)
                    .await
            });
            writing = Some((task, lines));
        }
        if let Some((first, resources)) = done {
            written(first, resources).await;
        }
        if writing.is_none() {
            break;
        }
    }
    summary.rejected.sort_by_key(|error| error.line);
    Ok(summary)
}

type WriteTask = tokio::task::JoinHandle<
    civitas_store::Result<(
        civitas_store::ImportOutcome,
        Vec<civitas_core::catalog::Resource>,
    )>,
>;

/// Reads up to [`IMPORT_BATCH`] valid rows, with their line numbers, collecting broken rows in
/// `rejected`. An empty batch means the input is done.
fn next_batch(
    rows: &mut impl Iterator<Item = Result<(u64, ResourceDraft), RowError>>,
    rejected: &mut Vec<RowError>,
) -> (Vec<ResourceDraft>, Vec<u64>) {
    let mut batch: Vec<ResourceDraft> = Vec::with_capacity(IMPORT_BATCH);
    let mut lines: Vec<u64> = Vec::with_capacity(IMPORT_BATCH);
    // The batch's codes, to find a repeated one without scanning the batch for every row.
    let mut codes: std::collections::HashSet<ResourceCode> =
        std::collections::HashSet::with_capacity(IMPORT_BATCH);
    while batch.len() < IMPORT_BATCH {
        match rows.next() {
            Some(Ok((line, draft))) => {
                // A code seen twice in one batch would be ambiguous; the later row wins, as
                // it would if the rows were imported one by one.
                if !codes.insert(draft.code.clone())
                    && let Some(previous) = batch.iter().position(|d| d.code == draft.code)
                {
                    batch.remove(previous);
                    lines.remove(previous);
                }
                batch.push(draft);
                lines.push(line);
            }
            Some(Err(error)) => rejected.push(error),
            None => break,
        }
    }
    (batch, lines)
}

impl ImportSummary {
    /// Adds what the store did with a batch whose rows came from `lines`.
    fn add(&mut self, outcome: civitas_store::ImportOutcome, lines: &[u64]) {
        self.created += outcome.created;
        self.updated += outcome.updated;
        self.unchanged += outcome.unchanged;
        for (index, error) in outcome.rejected {
            let (column, message) = match &error {
                civitas_store::StoreError::Invalid { field, message } => {
                    (field.clone(), message.clone())
                }
                other => ("-".to_owned(), other.to_string()),
            };
            self.rejected.push(RowError {
                line: lines[index],
                column,
                message,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// A valid draft with plain values, for tests to make awkward.
    fn plain_draft() -> ResourceDraft {
        let draft: ResourceDraft = serde_json::from_value(serde_json::json!({
            "code": "320100-T03-000001",
            "kind": "dataset",
            "classification": "T03",
            "name": "社会保险参保信息",
            "provider": "91350100M000100Y43",
            "items": [
                { "code": "id_number", "name": "公民身份号码", "data_type": "string",
                  "sensitivity": "personal", "mask": "citizen_id" },
                { "code": "months", "name": "参保月数", "data_type": "integer",
                  "sensitivity": "internal" }
            ],
            "sharing": { "type": "unconditional", "method": "interface" },
            "open_type": "closed",
            "update_cycle": "monthly",
            "tags": ["社保"]
        }))
        .unwrap();
        draft.validate().unwrap();
        draft
    }

    fn export_csv(drafts: &[ResourceDraft]) -> String {
        let mut output = Vec::new();
        let mut writer = DraftWriter::new(&mut output, Format::Csv).unwrap();
        for draft in drafts {
            writer.write(draft).unwrap();
        }
        writer.finish().unwrap();
        String::from_utf8(output).unwrap()
    }

    fn import_csv(text: &str) -> Vec<ResourceDraft> {
        read_drafts(text.as_bytes(), Format::Csv)
            .map(|row| row.map(|(_, draft)| draft).unwrap())
            .collect()
    }

    /// The lines of the rows `read_drafts` refuses in `text`.
    fn refused_lines(text: &str) -> Vec<u64> {
        read_drafts(text.as_bytes(), Format::Csv)
            .filter_map(|row| row.err().map(|error| error.line))
            .collect()
    }

    /// Text of what CSV and the list cells find awkward: separators, quotes, backslashes,
    /// padding of every kind, line breaks and Chinese text.
    fn awkward_text(parts: std::ops::Range<usize>) -> impl Strategy<Value = String> {
        let part = prop_oneof![
            Just(";"),
            Just("|"),
            Just("\\"),
            Just("\\;"),
            Just("\\|"),
            Just(","),
            Just("\""),
            Just("'"),
            Just(" "),
            Just("\t"),
            Just("\n"),
            Just("\r\n"),
            Just("\u{3000}"),
            Just("人口"),
            Just("社保；"),
            Just("a"),
        ];
        proptest::collection::vec(part, parts).prop_map(|parts| parts.concat())
    }

    fn awkward_required_text() -> impl Strategy<Value = String> {
        awkward_text(1..8).prop_filter("a required text is not blank", |text| {
            !text.trim().is_empty()
        })
    }

    /// A valid draft whose texts are awkward.
    fn awkward_draft() -> impl Strategy<Value = ResourceDraft> {
        let items = proptest::collection::vec((awkward_required_text(), any::<bool>()), 1..4);
        // The domain allows no commas in tags.
        let tag = awkward_required_text()
            .prop_map(|tag| tag.replace(',', ""))
            .prop_filter("a tag is not blank", |tag| !tag.trim().is_empty());
        (
            (
                awkward_required_text(),
                proptest::option::of(awkward_required_text()),
                awkward_text(0..8),
                awkward_text(0..3),
            ),
            items,
            proptest::option::of(awkward_required_text()),
            proptest::collection::vec(tag, 0..4),
            (
                proptest::collection::vec(2u32..100, 0..3),
                proptest::option::of(0i16..400),
                any::<bool>(),
            ),
        )
            .prop_map(
                |((name, name_en, summary, format), items, conditions, tags, rest)| {
                    let (related, published_on, interface) = rest;
                    let mut draft = plain_draft();
                    draft.related = related
                        .into_iter()
                        .map(|n| ResourceCode::parse(&format!("320100-B01-{n:06}")).unwrap())
                        .collect();
                    draft.published_on = published_on
                        .map(|day| jiff::civil::date(2025, 1, 1) + jiff::Span::new().days(day));
                    if interface {
                        draft.kind = ResourceKind::Interface;
                        draft.provider_system = Some(Code::parse("sbxt").unwrap());
                    }
                    draft.name = name;
                    draft.name_en = name_en;
                    draft.summary = summary;
                    draft.format = format;
                    draft.items = items
                        .into_iter()
                        .enumerate()
                        .map(|(index, (name, personal))| InformationItem {
                            code: format!("item_{index}"),
                            name,
                            data_type: DataType::String,
                            sensitivity: if personal {
                                Sensitivity::Personal
                            } else {
                                Sensitivity::Internal
                            },
                            mask: personal.then_some(MaskKind::FreeText),
                        })
                        .collect();
                    if conditions.is_some() {
                        draft.sharing.sharing_type = SharingType::Conditional;
                    }
                    draft.sharing.conditions = conditions;
                    draft.tags = tags;
                    draft
                },
            )
    }

    /// Exports `draft` changed by `change`, checks the cell of `column` reads `expected`, and
    /// that the row imports as the draft.
    fn check_cell(change: impl FnOnce(&mut ResourceDraft), column: &str, expected: &str) {
        let mut draft = plain_draft();
        change(&mut draft);
        draft.validate().unwrap();
        let exported = export_csv(std::slice::from_ref(&draft));
        let mut reader = csv::Reader::from_reader(exported.as_bytes());
        let row = reader.records().next().unwrap().unwrap();
        let index = CSV_COLUMNS.iter().position(|c| *c == column).unwrap();
        assert_eq!(&row[index], expected, "{exported}");
        assert_eq!(import_csv(&exported), [draft], "{exported}");
    }

    #[test]
    fn a_tag_with_the_list_separator_is_escaped() {
        check_cell(
            |draft| draft.tags = vec!["社保".into(), "法人;机构".into()],
            "tags",
            "社保;法人\\;机构",
        );
        check_cell(
            |draft| draft.tags = vec!["a\\".into(), "b".into()],
            "tags",
            "a\\\\;b",
        );
    }

    #[test]
    fn an_item_name_with_separators_is_escaped() {
        check_cell(
            |draft| draft.items[1].name = "参保|月数;合计".into(),
            "items",
            "id_number|公民身份号码|string|personal|citizen_id;months|参保\\|月数\\;合计|integer|internal",
        );
    }

    #[test]
    fn padding_that_belongs_to_a_value_is_escaped() {
        check_cell(
            |draft| draft.name = " 社会保险 ".into(),
            "name",
            "\\ 社会保险\\ ",
        );
        // Only the outermost space of a run needs its backslash; the ideographic space is
        // whitespace too.
        check_cell(
            |draft| draft.name_en = Some("  insured\u{3000}".into()),
            "name_en",
            "\\  insured\\\u{3000}",
        );
        check_cell(
            |draft| draft.summary = "参保明细\n".into(),
            "summary",
            "参保明细\\\n",
        );
        check_cell(|draft| draft.format = " ".into(), "format", "\\ ");
        check_cell(
            |draft| draft.items[0].name = " 公民身份号码".into(),
            "items",
            "id_number|\\ 公民身份号码|string|personal|citizen_id;months|参保月数|integer|internal",
        );
        check_cell(
            |draft| {
                draft.sharing.sharing_type = SharingType::Conditional;
                draft.sharing.conditions = Some("仅用于社保业务 ".into());
            },
            "sharing_conditions",
            "仅用于社保业务\\ ",
        );
    }

    #[test]
    fn a_backslash_is_doubled() {
        check_cell(
            |draft| draft.summary = "见 \\\\fs01\\参保".into(),
            "summary",
            "见 \\\\\\\\fs01\\\\参保",
        );
    }

    /// A file written before escapes existed, or by hand: padding is trimmed from every value,
    /// and a backslash before an ordinary character is itself.
    #[test]
    fn files_without_escapes_import_as_before() {
        let text = format!(
            "{}\n320100-T03-000001 , dataset,T03, 社会保险参保信息 ,,91350100M000100Y43,,\
             \"  见 C:\\参保\\明细.xlsx \",csv,\" id_number | 公民身份号码 |string|personal|citizen_id ; ; \
             months|参保月数|integer|internal\",unconditional,,interface,closed,monthly,,,\
             \" 社保 ;参保;; \",,\n",
            CSV_COLUMNS.join(",")
        );
        let mut expected = plain_draft();
        expected.summary = "见 C:\\参保\\明细.xlsx".into();
        expected.format = "csv".into();
        expected.tags = vec!["社保".into(), "参保".into()];
        assert_eq!(import_csv(&text), [expected]);
    }

    #[test]
    fn a_broken_item_names_its_line() {
        let mut draft = plain_draft();
        draft.items[1].name = "参保|月数".into();
        let exported = export_csv(&[draft]);
        // Without its backslash the escaped separator splits the item's name, so that its
        // second half stands where the data type belongs; with a backslash too many, the
        // item's code and name join into one field, leaving three.
        for broken in [
            exported.replace("参保\\|月数", "参保|月数"),
            exported.replace("months|", "months\\|"),
        ] {
            let errors: Vec<RowError> = read_drafts(broken.as_bytes(), Format::Csv)
                .filter_map(Result::err)
                .collect();
            assert_eq!(errors.len(), 1, "{broken}");
            assert_eq!((errors[0].line, errors[0].column.as_str()), (2, "items"));
        }
    }

    proptest! {
        /// Export, import and export again: the same drafts and the same file.
        #[test]
        fn export_then_import_is_the_identity(
            drafts in proptest::collection::vec(awkward_draft(), 1..4)
        ) {
            let drafts: Vec<ResourceDraft> = drafts
                .into_iter()
                .zip(1..)
                .map(|(mut draft, n)| {
                    draft.code = ResourceCode::parse(&format!("320100-T03-{n:06}")).unwrap();
                    draft
                })
                .collect();
            for draft in &drafts {
                prop_assert_eq!(draft.validate(), Ok(()));
            }
            let exported = export_csv(&drafts);
            let imported = import_csv(&exported);
            prop_assert_eq!(&imported, &drafts, "{}", exported);
            prop_assert_eq!(export_csv(&imported), exported);
        }
    }

    #[test]
    fn csv_errors_name_the_physical_line_whatever_the_line_ends() {
        let row = |n: u32, kind: &str| {
            format!(
                "320100-T03-{n:06},{kind},T03,社会保险参保信息{n},,91350100M000100Y43,,参保明细,csv,\
                 \"id_number|公民身份号码|string|personal|citizen_id\",unconditional,,,closed,monthly,\
                 2026-02-01,,社保,,"
            )
        };
        let lines = [
            CSV_COLUMNS.join(","),
            row(1, "dataset"),
            row(2, "dataset"),
            row(3, "nonsense"),
            row(4, "dataset"),
            row(5, "nonsense"),
        ];
        assert_eq!(refused_lines(&(lines.join("\n") + "\n")), [4, 6]);
        assert_eq!(refused_lines(&(lines.join("\r\n") + "\r\n")), [4, 6]);
    }
}
