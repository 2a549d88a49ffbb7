//! Counting the matches and their facet values, and keeping the best hits: in one pass, or in
//! two for queries that can skip postings scoring too low (see
//! [`CatalogCollector::collect_segment`]). Such queries leave broad facet filters to the
//! collector, which checks them against the same per-segment arrays.
//!
//! Facet values are counted by term ordinal from the columnar (fast field) store: per segment an
//! array indexed by ordinal, turned into values once at the end. No stored document is read for
//! counting. Matches are handled in blocks, so that column values are decoded many at a time
//! rather than through one virtual call per document and column.
//!
//! Opening a segment's columns and reading its facet dictionaries costs more than counting a few
//! thousand matches, so it is done once per segment and kept in a [`ColumnCache`]: segments never
//! change. The cache holds per segment the distinct facet values and, for the facets with at most
//! one value per document, every document's value ordinal in an array (2 bytes per document and
//! facet, 16 MB at a million documents), for facets of several values (tags) every document's
//! ordinals (4 bytes per document and 2 per value), and every document's code key (8 bytes, the
//! sort's tie-breaker): broad queries count hundreds of thousands of matches, and an array
//! lookup per match costs a fraction of decoding the column.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::{
    Cardinality, Column, ColumnIndex, ColumnValues, MonotonicallyMappableToU64,
};
use tantivy::fastfield::AliveBitSet;
use tantivy::index::SegmentId;
use tantivy::postings::BlockSegmentPostings;
use tantivy::query::Weight;
use tantivy::schema::IndexRecordOption;
use tantivy::{DocAddress, DocId, Score, SegmentOrdinal, SegmentReader, Term};

use crate::Facet;
use crate::cursor::{Order, SortKey, score_key, time_key};
use crate::schema::Fields;

/// Matches handled together.
const BLOCK: usize = 128;

/// The columns of each live segment, opened once.
#[derive(Default)]
pub(crate) struct ColumnCache {
    segments: Mutex<HashMap<SegmentId, Arc<SegmentColumns>>>,
}

pub(crate) struct SegmentColumns {
    modified_at: Arc<dyn ColumnValues<i64>>,
    /// Every document's code key, decoded: ties on the primary key are common (equal scores of
    /// equally long names), and an array lookup costs a fraction of reading the column.
    code_key: Box<[u64]>,
    /// By `Facet as usize`; `None` when no document of the segment has a value.
    facets: Vec<Option<FacetColumn>>,
}

struct FacetColumn {
    ordinals: Column<u64>,
    /// The value of each ordinal.
    values: Arc<[String]>,
    /// Each document's ordinal, `values.len()` for none, when documents have at most one value
    /// and the ordinals fit.
    by_document: Option<Box<[u16]>>,
    /// Each document's ordinals, when documents may have several (tags) and the ordinals fit.
    several_by_document: Option<SeveralByDocument>,
}

/// The ordinals of document `d` are `ordinals[starts[d]..starts[d + 1]]`.
struct SeveralByDocument {
    starts: Box<[u32]>,
    ordinals: Box<[u16]>,
}

/// Every document's ordinals of a column of several values per document.
fn several_by_document(ordinals: &Column<u64>, documents: u32) -> SeveralByDocument {
    let mut starts = Vec::with_capacity(documents as usize + 1);
    let mut values: Vec<u16> = Vec::new();
    let mut value_docs = Vec::new();
    let mut rows = Vec::new();
    let mut found = Vec::new();
    in_blocks(documents, |docs| {
        value_docs.clear();
        rows.clear();
        ordinals.row_ids_for_docs(docs, &mut value_docs, &mut rows);
        found.resize(rows.len(), 0);
        ordinals.values.get_vals(&rows, &mut found);
        // Rows come in the order of their documents.
        let mut next = 0;
        for &doc in docs {
            starts.push(values.len() as u32);
            while next < value_docs.len() && value_docs[next] == doc {
                values.push(found[next] as u16);
                next += 1;
            }
        }
    });
    starts.push(values.len() as u32);
    SeveralByDocument {
        starts: starts.into_boxed_slice(),
        ordinals: values.into_boxed_slice(),
    }
}

/// Documents decoded at a time when columns are read into arrays.
const FILL_BLOCK: u32 = 4096;

/// Calls `each` with the documents `0..documents`, [`FILL_BLOCK`] at a time, so that column
/// values are decoded many at a time.
fn in_blocks(documents: u32, mut each: impl FnMut(&[DocId])) {
    let mut docs = Vec::with_capacity(FILL_BLOCK as usize);
    let mut start = 0;
    while start < documents {
        let end = documents.min(start + FILL_BLOCK);
        docs.clear();
        docs.extend(start..end);
        each(&docs);
        start = end;
    }
}

/// Every document's ordinal of a column of at most one value per document, `none` where a
/// document has no value.
fn ordinals_by_document(ordinals: &Column<u64>, documents: u32, none: u16) -> Box<[u16]> {
    let mut by_document = vec![none; documents as usize];
    let mut found = vec![None; FILL_BLOCK as usize];
    in_blocks(documents, |docs| {
        let found = &mut found[..docs.len()];
        found.fill(None);
        ordinals.first_vals(docs, found);
        let start = docs[0] as usize;
        for (slot, ordinal) in by_document[start..start + docs.len()]
            .iter_mut()
            .zip(found.iter())
        {
            if let Some(ordinal) = ordinal {
                *slot = *ordinal as u16;
            }
        }
    });
    by_document.into_boxed_slice()
}

impl ColumnCache {
    fn segment(
        &self,
        reader: &SegmentReader,
        fields: &Fields,
    ) -> tantivy::Result<Arc<SegmentColumns>> {
        let id = reader.segment_id();
        if let Some(columns) = self.lock().get(&id) {
            return Ok(columns.clone());
        }
        // Opened outside the lock: two searches may both open a new segment, which is harmless.
        let columns = Arc::new(open_columns(reader, fields)?);
        self.lock().insert(id, columns.clone());
        Ok(columns)
    }

    /// Forgets segments that are gone (merged or deleted), once there are some.
    pub(crate) fn retain(&self, live: &[SegmentId]) {
        let mut segments = self.lock();
        if segments.len() > live.len() {
            let live: HashSet<&SegmentId> = live.iter().collect();
            segments.retain(|id, _| live.contains(id));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SegmentId, Arc<SegmentColumns>>> {
        self.segments
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn open_columns(reader: &SegmentReader, fields: &Fields) -> tantivy::Result<SegmentColumns> {
    let schema = reader.schema();
    let fast_fields = reader.fast_fields();
    let modified_at = values_by_document(
        fast_fields.i64(schema.get_field_name(fields.modified_at))?,
        0,
    );
    let code_key = decoded(
        &*values_by_document(fast_fields.u64(schema.get_field_name(fields.code_key))?, 0),
        reader.max_doc(),
    );
    let mut facets = Vec::with_capacity(Facet::ALL.len());
    for facet in Facet::ALL {
        let column = fast_fields.str(schema.get_field_name(fields.facet(facet)))?;
        facets.push(match column {
            Some(column) => {
                let mut values = Vec::with_capacity(column.dictionary().num_terms());
                let mut stream = column.dictionary().stream()?;
                while stream.advance() {
                    values.push(String::from_utf8_lossy(stream.key()).into_owned());
                }
                let ordinals = column.ords().clone();
                let fits = values.len() < usize::from(u16::MAX);
                let several = ordinals.get_cardinality() == Cardinality::Multivalued;
                let by_document = (fits && !several).then(|| {
                    ordinals_by_document(&ordinals, reader.max_doc(), values.len() as u16)
                });
                let several_by_document =
                    (fits && several).then(|| several_by_document(&ordinals, reader.max_doc()));
                Some(FacetColumn {
                    ordinals,
                    values: values.into(),
                    by_document,
                    several_by_document,
                })
            }
            None => None,
        });
    }
    Ok(SegmentColumns {
        modified_at,
        code_key,
        facets,
    })
}

/// The values of the first `documents` rows of a column with one value per document.
fn decoded(column: &dyn ColumnValues<u64>, documents: u32) -> Box<[u64]> {
    let mut values = vec![0; documents as usize];
    in_blocks(documents, |docs| {
        let start = docs[0] as usize;
        column.get_vals(docs, &mut values[start..start + docs.len()]);
    });
    values.into_boxed_slice()
}

/// Column values by document: the column itself when every document has exactly one value
/// (row = document), or a view that supplies a default where one is missing.
fn values_by_document<T>(column: Column<T>, default: T) -> Arc<dyn ColumnValues<T>>
where
    T: MonotonicallyMappableToU64 + std::fmt::Debug + Default,
{
    if matches!(column.index, ColumnIndex::Full) {
        column.values
    } else {
        column.first_or_default_col(default)
    }
}

pub(crate) struct CatalogCollector {
    pub order: Order,
    /// Only hits whose key is below this one are kept (the cursor's position).
    pub after: Option<SortKey>,
    /// How many of the best hits to keep.
    pub keep: usize,
    pub facets: Vec<Facet>,
    pub facet_limit: usize,
    pub fields: Fields,
    pub cache: Arc<ColumnCache>,
    /// Filters applied here rather than in the query (see `query::Plan`): each a facet and
    /// values, any of which passes; a match passes all of them.
    pub filters: Vec<(Facet, Vec<String>)>,
    /// Whether the query skips postings that cannot score above a threshold (one word, or all
    /// of several): see [`CatalogCollector::collect_segment`] and `query::Plan`.
    pub prune: bool,
    /// With `prune`, the words when the query is all of several: see [`count_all_of`].
    pub words: Vec<Term>,
}

pub(crate) struct RankedHit {
    pub key: SortKey,
    pub score: Score,
    pub address: DocAddress,
}

pub(crate) struct Collected {
    pub total: u64,
    /// Best first.
    pub top: Vec<RankedHit>,
    /// In the order of the requested facets: the most frequent values, ties by value.
    pub facet_counts: Vec<Vec<(String, u64)>>,
}

pub(crate) struct SegmentFruit {
    total: u64,
    top: Vec<RankedHit>,
    /// Per requested facet, when the segment has values for it.
    facet_counts: Vec<Option<SegmentFacetCounts>>,
}

/// A segment's values of a facet and their counts, by ordinal.
struct SegmentFacetCounts {
    values: Arc<[String]>,
    counts: Vec<u32>,
}

/// A kept hit of one segment; ordered by key, then document for determinism.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Candidate {
    key: SortKey,
    doc: DocId,
    score_bits: u32,
}

pub(crate) struct CatalogSegmentCollector {
    segment: SegmentOrdinal,
    order: Order,
    after: Option<SortKey>,
    keep: usize,
    columns: Arc<SegmentColumns>,
    /// Per requested facet: its index in `columns.facets` and the counts by ordinal.
    tallies: Vec<(usize, Vec<u32>)>,
    filters: Vec<SegmentFilter>,
    /// Whether a filter's values are all absent from the segment: nothing in it matches.
    rules_out_all: bool,
    total: u64,
    /// A min-heap of the best `keep` hits so far.
    best: BinaryHeap<Reverse<Candidate>>,
    /// Matches (and scores) waiting to be handled as a block.
    pending_docs: Vec<DocId>,
    pending_scores: Vec<Score>,
    scratch: Scratch,
}

/// A filter on a facet, in terms of one segment's ordinals.
struct SegmentFilter {
    /// Index in `SegmentColumns::facets`; the segment has a column for it.
    facet: usize,
    /// Whether each ordinal passes; the last entry, for documents without a value, is false.
    passes: Box<[bool]>,
}

impl SegmentFilter {
    /// `None` when no document of the segment can pass.
    fn new(columns: &SegmentColumns, facet: Facet, wanted: &[String]) -> Option<SegmentFilter> {
        let column = columns.facets[facet as usize].as_ref()?;
        let mut passes = vec![false; column.values.len() + 1].into_boxed_slice();
        let mut any = false;
        for value in wanted {
            // Dictionary order is byte order.
            if let Ok(ordinal) = column
                .values
                .binary_search_by(|candidate| candidate.as_bytes().cmp(value.as_bytes()))
            {
                passes[ordinal] = true;
                any = true;
            }
        }
        any.then_some(SegmentFilter {
            facet: facet as usize,
            passes,
        })
    }

    fn admits(&self, columns: &SegmentColumns, doc: DocId) -> bool {
        let Some(column) = &columns.facets[self.facet] else {
            return false;
        };
        if let Some(by_document) = &column.by_document {
            return self.passes[usize::from(by_document[doc as usize])];
        }
        if let Some(several) = &column.several_by_document {
            let (start, end) = (
                several.starts[doc as usize] as usize,
                several.starts[doc as usize + 1] as usize,
            );
            return several.ordinals[start..end]
                .iter()
                .any(|&ordinal| self.passes[usize::from(ordinal)]);
        }
        column
            .ordinals
            .values_for_doc(doc)
            .any(|ordinal| self.passes[ordinal as usize])
    }
}

#[derive(Default)]
struct Scratch {
    docs: Vec<DocId>,
    rows: Vec<u32>,
    ordinals: Vec<u64>,
    times: Vec<i64>,
    admitted: Vec<DocId>,
}

impl Collector for CatalogCollector {
    type Fruit = Collected;
    type Child = CatalogSegmentCollector;

    fn for_segment(
        &self,
        segment: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<CatalogSegmentCollector> {
        let columns = self.cache.segment(reader, &self.fields)?;
        let filters = self
            .filters
            .iter()
            .map(|(facet, wanted)| SegmentFilter::new(&columns, *facet, wanted))
            .collect::<Option<Vec<_>>>();
        let rules_out_all = filters.is_none();
        let tallies = self
            .facets
            .iter()
            .map(|&facet| {
                let index = facet as usize;
                // One more count than values: where documents without a value are counted
                // (see `FacetColumn::by_document`); it is not a value, and not reported.
                let terms = columns.facets[index]
                    .as_ref()
                    .map_or(0, |column| column.values.len());
                (index, vec![0; terms + 1])
            })
            .collect();
        Ok(CatalogSegmentCollector {
            segment,
            order: self.order,
            after: self.after,
            keep: self.keep,
            columns,
            tallies,
            filters: filters.unwrap_or_default(),
            rules_out_all,
            total: 0,
            best: BinaryHeap::with_capacity(self.keep.min(1024) + 1),
            pending_docs: Vec::with_capacity(BLOCK),
            pending_scores: Vec::with_capacity(BLOCK),
            scratch: Scratch::default(),
        })
    }

    fn requires_scoring(&self) -> bool {
        self.order == Order::Relevance
    }

    /// Tantivy's own loop, but for a query that can skip what cannot be among the best hits
    /// (`prune`): then the matches are counted in one pass without scores, and the best hits
    /// found in another that skips whole blocks of postings scoring too low (block-max WAND).
    /// A broad word matches hundreds of thousands of entries, and scoring each is most of the
    /// work of a search.
    fn collect_segment(
        &self,
        weight: &dyn Weight,
        segment: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<SegmentFruit> {
        let mut collector = self.for_segment(segment, reader)?;
        if collector.rules_out_all {
            return Ok(collector.harvest());
        }
        // Deleted entries wait in their segment until it is merged.
        let alive = reader.alive_bitset();
        if self.prune && self.order == Order::Relevance {
            let mut count = |docs: &[DocId]| {
                let admitted = collector.admitted(docs, alive);
                collector.count_block(&admitted);
                collector.scratch.admitted = admitted;
            };
            if !count_all_of(reader, &self.words, &mut count)? {
                weight.for_each_no_score(reader, &mut count)?;
            }
            if collector.keep > 0 {
                weight.for_each_pruning(Score::MIN, reader, &mut |doc, score| {
                    if collector.admits(doc, alive) {
                        collector.offer(doc, score, score_key(score));
                    }
                    collector.threshold()
                })?;
            }
        } else if self.requires_scoring() {
            weight.for_each(reader, &mut |doc, score| {
                if collector.admits(doc, alive) {
                    collector.collect(doc, score);
                }
            })?;
        } else {
            weight.for_each_no_score(reader, &mut |docs| {
                let admitted = collector.admitted(docs, alive);
                collector.collect_block(&admitted);
                collector.scratch.admitted = admitted;
            })?;
        }
        Ok(collector.harvest())
    }

    fn merge_fruits(&self, fruits: Vec<SegmentFruit>) -> tantivy::Result<Collected> {
        let mut total = 0;
        let mut top = Vec::new();
        let mut merged: Vec<HashMap<&str, u64>> = vec![HashMap::new(); self.facets.len()];
        for fruit in &fruits {
            total += fruit.total;
            for (counts, facet) in merged.iter_mut().zip(&fruit.facet_counts) {
                let Some(facet) = facet else { continue };
                for (value, &count) in facet.values.iter().zip(&facet.counts) {
                    if count > 0 {
                        *counts.entry(value.as_str()).or_default() += u64::from(count);
                    }
                }
            }
        }
        let facet_counts = merged
            .into_iter()
            .map(|counts| top_values(counts, self.facet_limit))
            .collect();
        for fruit in fruits {
            top.extend(fruit.top);
        }
        top.sort_unstable_by(|a, b| (b.key, a.address).cmp(&(a.key, b.address)));
        top.truncate(self.keep);
        Ok(Collected {
            total,
            top,
            facet_counts,
        })
    }
}

impl SegmentCollector for CatalogSegmentCollector {
    type Fruit = SegmentFruit;

    fn collect(&mut self, doc: DocId, score: Score) {
        self.pending_docs.push(doc);
        self.pending_scores.push(score);
        if self.pending_docs.len() == BLOCK {
            self.flush_pending();
        }
    }

    /// Unscored matches come in blocks already (when sorting by time).
    fn collect_block(&mut self, docs: &[DocId]) {
        for chunk in docs.chunks(BLOCK) {
            self.handle_block(chunk, None);
        }
    }

    fn harvest(mut self) -> SegmentFruit {
        self.flush_pending();
        let segment = self.segment;
        let top = self
            .best
            .into_iter()
            .map(|Reverse(candidate)| RankedHit {
                key: candidate.key,
                score: f32::from_bits(candidate.score_bits),
                address: DocAddress::new(segment, candidate.doc),
            })
            .collect();
        let columns = &self.columns;
        let facet_counts = self
            .tallies
            .into_iter()
            .map(|(index, counts)| {
                columns.facets[index]
                    .as_ref()
                    .map(|column| SegmentFacetCounts {
                        values: column.values.clone(),
                        counts,
                    })
            })
            .collect();
        SegmentFruit {
            total: self.total,
            top,
            facet_counts,
        }
    }
}

impl CatalogSegmentCollector {
    fn flush_pending(&mut self) {
        if self.pending_docs.is_empty() {
            return;
        }
        let mut docs = std::mem::take(&mut self.pending_docs);
        let mut scores = std::mem::take(&mut self.pending_scores);
        self.handle_block(&docs, Some(&scores));
        docs.clear();
        scores.clear();
        self.pending_docs = docs;
        self.pending_scores = scores;
    }

    /// Counts a block of matches and offers them to the best hits.
    fn handle_block(&mut self, docs: &[DocId], scores: Option<&[Score]>) {
        debug_assert!(scores.is_none_or(|scores| scores.len() == docs.len()));
        self.count_block(docs);
        if self.keep == 0 {
            return;
        }
        let scratch = &mut self.scratch;
        if self.order == Order::Modified {
            scratch.times.resize(docs.len(), 0);
            self.columns.modified_at.get_vals(docs, &mut scratch.times);
        }
        for (position, &doc) in docs.iter().enumerate() {
            let score = scores.map_or(0.0, |scores| scores[position]);
            let primary = match self.order {
                Order::Relevance => score_key(score),
                Order::Modified => time_key(self.scratch.times[position]),
            };
            self.offer(doc, score, primary);
        }
    }

    /// Whether a match is alive (not deleted) and passes the filters.
    fn admits(&self, doc: DocId, alive: Option<&AliveBitSet>) -> bool {
        alive.is_none_or(|alive| alive.is_alive(doc))
            && self
                .filters
                .iter()
                .all(|filter| filter.admits(&self.columns, doc))
    }

    /// The matches of `docs` that [`Self::admits`], in the scratch buffer taken out of `self`
    /// (to be put back).
    fn admitted(&mut self, docs: &[DocId], alive: Option<&AliveBitSet>) -> Vec<DocId> {
        let mut admitted = std::mem::take(&mut self.scratch.admitted);
        admitted.clear();
        admitted.extend(docs.iter().copied().filter(|&doc| self.admits(doc, alive)));
        admitted
    }

    /// Counts a block of matches and their facet values.
    fn count_block(&mut self, docs: &[DocId]) {
        self.total += docs.len() as u64;
        let scratch = &mut self.scratch;
        for (index, counts) in &mut self.tallies {
            let Some(column) = &self.columns.facets[*index] else {
                continue;
            };
            if let Some(by_document) = &column.by_document {
                for &doc in docs {
                    counts[usize::from(by_document[doc as usize])] += 1;
                }
                continue;
            }
            if let Some(several) = &column.several_by_document {
                for &doc in docs {
                    let (start, end) = (
                        several.starts[doc as usize],
                        several.starts[doc as usize + 1],
                    );
                    for &ordinal in &several.ordinals[start as usize..end as usize] {
                        counts[usize::from(ordinal)] += 1;
                    }
                }
                continue;
            }
            scratch.docs.clear();
            scratch.rows.clear();
            column
                .ordinals
                .row_ids_for_docs(docs, &mut scratch.docs, &mut scratch.rows);
            scratch.ordinals.resize(scratch.rows.len(), 0);
            column
                .ordinals
                .values
                .get_vals(&scratch.rows, &mut scratch.ordinals);
            for &ordinal in &scratch.ordinals {
                counts[ordinal as usize] += 1;
            }
        }
    }

    /// The score a match must exceed to have a chance among the best hits: below the weakest
    /// kept one once there are enough (a tie may still win on the tie-breaker).
    fn threshold(&self) -> Score {
        match self.best.peek() {
            Some(Reverse(weakest)) if self.best.len() == self.keep => {
                f32::from_bits(weakest.score_bits).next_down()
            }
            _ => Score::MIN,
        }
    }

    fn offer(&mut self, doc: DocId, score: Score, primary: u64) {
        // Most matches lose against the weakest kept hit on the primary key alone, before the
        // tie-breaker is read.
        if self.best.len() == self.keep
            && let Some(Reverse(weakest)) = self.best.peek()
            && primary < weakest.key.0
        {
            return;
        }
        let key = (primary, self.columns.code_key[doc as usize]);
        if self.after.is_some_and(|after| key >= after) {
            return;
        }
        let candidate = Candidate {
            key,
            doc,
            score_bits: score.to_bits(),
        };
        if self.best.len() < self.keep {
            self.best.push(Reverse(candidate));
        } else if let Some(mut weakest) = self.best.peek_mut()
            && candidate > weakest.0
        {
            *weakest = Reverse(candidate);
        }
    }
}

/// Counts the matches of all of several words in a segment where the rarest of them is common
/// (in a thirty-second of the documents or more), and says whether it did: then reading each
/// word's postings whole into a bitset and intersecting the bitsets is several times faster
/// than tantivy's intersection, which seeks each posting list to the next candidate. Calls
/// `each` with the matches in order, deleted ones included.
fn count_all_of(
    reader: &SegmentReader,
    words: &[Term],
    each: &mut dyn FnMut(&[DocId]),
) -> tantivy::Result<bool> {
    if words.len() < 2 {
        return Ok(false);
    }
    let mut lists = Vec::with_capacity(words.len());
    for word in words {
        let inverted_index = reader.inverted_index(word.field())?;
        match inverted_index.read_block_postings(word, IndexRecordOption::Basic)? {
            Some(list) => lists.push(list),
            // A word absent from the segment: nothing matches.
            None => return Ok(true),
        }
    }
    lists.sort_by_key(BlockSegmentPostings::doc_freq);
    if u64::from(lists[0].doc_freq()) * 32 < u64::from(reader.max_doc()) {
        return Ok(false);
    }
    let bitset_words = (reader.max_doc() as usize).div_ceil(64);
    let mut matched = vec![0u64; bitset_words];
    let mut found = vec![0u64; bitset_words];
    for (index, list) in lists.iter_mut().enumerate() {
        let bits = if index == 0 { &mut matched } else { &mut found };
        loop {
            let docs = list.docs();
            if docs.is_empty() {
                break;
            }
            for &doc in docs {
                bits[doc as usize / 64] |= 1 << (doc % 64);
            }
            list.advance();
        }
        if index > 0 {
            for (matched, found) in matched.iter_mut().zip(found.iter_mut()) {
                *matched &= *found;
                *found = 0;
            }
        }
    }
    let mut docs = Vec::with_capacity(BLOCK);
    for (index, &bits) in matched.iter().enumerate() {
        let mut bits = bits;
        while bits != 0 {
            docs.push((index * 64) as DocId + bits.trailing_zeros());
            bits &= bits - 1;
            if docs.len() == BLOCK {
                each(&docs);
                docs.clear();
            }
        }
    }
    if !docs.is_empty() {
        each(&docs);
    }
    Ok(true)
}

/// The `limit` most frequent values, ties by value.
fn top_values(counts: HashMap<&str, u64>, limit: usize) -> Vec<(String, u64)> {
    let mut values: Vec<(&str, u64)> = counts.into_iter().collect();
    values.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    values.truncate(limit);
    values
        .into_iter()
        .map(|(value, count)| (value.to_owned(), count))
        .collect()
}
