//! The index's fields and text analyzers.
//!
//! Chinese text is segmented by jieba in two modes. Documents are indexed in *search mode*, which
//! emits every dictionary word inside a longer word as well (`住房公积金` gives `住房`, `公积`,
//! `公积金`), while queries are segmented in the coarser *default mode* (`公积金` stays one
//! word). A query word then finds every document that contains it inside a longer word; where
//! the document's text was cut across a dictionary word (`生态环境|监测数据` around
//! `环境监测`), the index holds that word too, so a query word is always one term. Token
//! positions are jieba's character offsets in both modes, so a quoted Chinese phrase matches by
//! where its words start in the text, whichever segmentation the surrounding text got. Latin
//! words are lower-cased and stemmed (English), so `registrations` finds `Registration`.
//!
//! All searchable text of an entry goes into one field, `all`, and its names also into `name`.
//! A query word is then one posting list to match (plus a name boost), which keeps intersections
//! of several words cheap: tantivy's union of many fields' postings is slow to skip through when
//! another word is rare.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::LazyLock;

use jieba_rs::{Jieba, TokenizeMode};

use rustc_hash::FxHashMap;

use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::{
    Language, RawTokenizer, RemoveLongFilter, Stemmer, TextAnalyzer, Token, TokenStream, Tokenizer,
};

use crate::Facet;

/// Jieba with its default dictionary, shared by every analyzer.
static JIEBA: LazyLock<Jieba> = LazyLock::new(Jieba::new);

/// Analyzer of text at indexing time.
pub(crate) const INDEX_ANALYZER: &str = "civitas_index";
/// Analyzer of query words.
pub(crate) const QUERY_ANALYZER: &str = "civitas_query";

/// Tokens longer than this many bytes are dropped: they are base64 blobs or run-together text
/// rather than words, and only bloat the term dictionary.
const MAX_TOKEN_BYTES: usize = 60;

/// The fields of the index, resolved once.
#[derive(Debug, Clone)]
pub(crate) struct Fields {
    pub code: Field,
    /// A 64-bit hash of the code, the tie-breaker of sort orders (see `cursor.rs`).
    pub code_key: Field,
    /// Every searchable text: names, summary, tags, items, provider name; with positions.
    pub all: Field,
    /// The Chinese and English names, searched for the name boost and `name:`; the Chinese name
    /// is stored (first value) for snippets.
    pub name: Field,
    /// Stored only, for snippets.
    pub summary: Field,
    /// The provider's name, whole, for `provider:`.
    pub provider_name: Field,
    pub modified_at: Field,
    pub payload: Field,
    /// Indexed by `Facet as usize`.
    pub facets: [Field; Facet::ALL.len()],
}

impl Fields {
    pub(crate) fn facet(&self, facet: Facet) -> Field {
        self.facets[facet as usize]
    }
}

pub(crate) fn build_schema() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let text = |record: IndexRecordOption| {
        TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(INDEX_ANALYZER)
                .set_index_option(record),
        )
    };
    // Facet fields are indexed whole (for filters) and columnar (for counting): counting reads
    // term ordinals from the column instead of stored documents.
    let facet_options = || STRING.set_fast("raw");
    let code = builder.add_text_field("code", STRING | STORED);
    let code_key = builder.add_u64_field("code_key", FAST);
    let all = builder.add_text_field("all", text(IndexRecordOption::WithFreqsAndPositions));
    let name = builder.add_text_field("name", text(IndexRecordOption::WithFreqs).set_stored());
    let summary = builder.add_text_field("summary", STORED);
    let provider_name = builder.add_text_field("provider_name", STRING);
    let modified_at = builder.add_i64_field("modified_at", FAST | INDEXED);
    let payload = builder.add_text_field("payload", STORED);
    let facets =
        Facet::ALL.map(|facet| builder.add_text_field(facet_field_name(facet), facet_options()));
    let fields = Fields {
        code,
        code_key,
        all,
        name,
        summary,
        provider_name,
        modified_at,
        payload,
        facets,
    };
    (builder.build(), fields)
}

/// Field names of facets carry a prefix so they never collide with the text fields (`tag` the
/// facet and `tags` the searchable text, `provider` the code and `provider_name` the name).
fn facet_field_name(facet: Facet) -> &'static str {
    match facet {
        Facet::Provider => "f_provider",
        Facet::Level => "f_level",
        Facet::Kind => "f_kind",
        Facet::SharingType => "f_sharing_type",
        Facet::OpenType => "f_open_type",
        Facet::Classification => "f_classification",
        Facet::UpdateCycle => "f_update_cycle",
        Facet::OriginNode => "f_origin_node",
        Facet::Tag => "f_tag",
    }
}

pub(crate) fn register_analyzers(index: &tantivy::Index) {
    let tokenizers = index.tokenizers();
    tokenizers.register(INDEX_ANALYZER, words(true, true));
    tokenizers.register(QUERY_ANALYZER, analyzer(false));
}

/// Jieba segmentation (search mode for documents, default mode for queries), keeping only tokens
/// that contain a letter or digit (jieba also emits spaces and punctuation), lower-cased, Latin
/// words stemmed.
///
/// Every analyzer uses one process-wide jieba dictionary, loaded once on first use (about 0.2 to
/// 0.4 s); cloning an analyzer does not copy it.
///
/// This one remembers no clauses: only the index's own analyzer, run by tantivy's few indexing
/// threads, does. Queries and snippets run on any of the blocking pool's threads, and would
/// otherwise fill a memo on each.
pub(crate) fn analyzer(search_mode: bool) -> TextAnalyzer {
    words(search_mode, false)
}

fn words(search_mode: bool, remember: bool) -> TextAnalyzer {
    TextAnalyzer::builder(Words::new(search_mode, remember))
        .filter(RemoveLongFilter::limit(MAX_TOKEN_BYTES))
        .build()
}

/// Segments `text` into space-separated lower-case words as a query word is segmented, for
/// word-based engines (SQLite FTS5 and the like) that cannot segment Chinese themselves.
pub fn segment_for_query(text: &str) -> String {
    segment(analyzer(false), text)
}

/// Segments `text` into space-separated lower-case words as documents are indexed: every word
/// inside a longer one is included too, so that the words of [`segment_for_query`] are found.
pub fn segment_for_index(text: &str) -> String {
    segment(analyzer(true), text)
}

fn segment(mut analyzer: TextAnalyzer, text: &str) -> String {
    let mut stream = analyzer.token_stream(text);
    let mut words = String::with_capacity(text.len() + text.len() / 2);
    while let Some(token) = stream.next() {
        if !words.is_empty() {
            words.push(' ');
        }
        words.push_str(&token.text);
    }
    words
}

/// Wraps the jieba tokenizer: skips tokens without a letter or digit, lower-cases, and stems
/// words of Latin letters. Chinese characters, most of the text, take fast paths: they are
/// letters without case, and the general Unicode tables are slow to consult for them.
///
/// Text is analyzed clause by clause: jieba never joins characters across punctuation or
/// spaces (it cuts its input into runs of ideographs and ASCII word characters first), so a
/// clause's words are the same wherever the clause appears, only shifted. Catalog text repeats
/// its clauses endlessly (item names, tags, a provider's name, `数据来源于南京市公安局`, the words
/// of English names), so each thread keeps the words of the clauses it has analyzed lately
/// and replays them, shifted, instead of segmenting and stemming again.
#[derive(Clone)]
struct Words {
    search_mode: bool,
    /// Whether clauses are remembered (documents' analyzer only).
    remember: bool,
    /// Only run on Latin words: stemming Chinese words would change nothing at a cost.
    stemmer: TextAnalyzer,
}

/// Clauses up to this many bytes are remembered; longer ones seldom come again.
const REMEMBERED_BYTES: usize = 96;
/// How many clauses each indexing thread remembers per analyzer mode, in each of two
/// generations.
const REMEMBERED_CLAUSES: usize = 16_384;

/// The words of recently analyzed clauses: those of the current generation, and those of the
/// previous one, which are moved back into the current one when met again. When the current
/// generation is full it becomes the previous one, so what is still in use survives and the
/// rest is dropped, at most twice [`REMEMBERED_CLAUSES`] clauses in all.
#[derive(Default)]
struct Remembered {
    current: FxHashMap<Box<str>, Rc<[Token]>>,
    previous: FxHashMap<Box<str>, Rc<[Token]>>,
}

impl Remembered {
    fn get(&mut self, clause: &str) -> Option<Rc<[Token]>> {
        if let Some(tokens) = self.current.get(clause) {
            return Some(tokens.clone());
        }
        let (clause, tokens) = self.previous.remove_entry(clause)?;
        self.insert(clause, tokens.clone());
        Some(tokens)
    }

    fn insert(&mut self, clause: Box<str>, tokens: Rc<[Token]>) {
        if self.current.len() >= REMEMBERED_CLAUSES {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(clause, tokens);
    }
}

thread_local! {
    /// Indexed by analyzer mode: query mode (`false`) first.
    static REMEMBERED: RefCell<[Remembered; 2]> = RefCell::default();
}

/// Characters that end a clause: ones jieba never puts inside a word (ASCII spaces and
/// punctuation other than `+#&._%-`, CJK and full-width punctuation, general punctuation).
pub(crate) fn ends_clause(c: char) -> bool {
    if c.is_ascii() {
        !(c.is_ascii_alphanumeric() || matches!(c, '+' | '#' | '&' | '.' | '_' | '%' | '-'))
    } else {
        matches!(c,
            '\u{00B7}'
            | '\u{2000}'..='\u{206F}'
            | '\u{3000}'..='\u{303F}'
            | '\u{FF01}'..='\u{FF0F}'
            | '\u{FF1A}'..='\u{FF20}'
            | '\u{FF3B}'..='\u{FF40}'
            | '\u{FF5B}'..='\u{FF65}'
        )
    }
}

/// One clause's words, and where the clause starts in the text (bytes, characters).
struct Clause {
    tokens: Rc<[Token]>,
    byte_start: usize,
    char_start: usize,
}

impl Words {
    fn new(search_mode: bool, remember: bool) -> Words {
        Words {
            search_mode,
            remember,
            stemmer: TextAnalyzer::builder(RawTokenizer::default())
                .filter(Stemmer::new(Language::English))
                .build(),
        }
    }

    fn analyze(&mut self, text: &str) -> Vec<Clause> {
        let mut clauses = Vec::new();
        let mut byte_start = 0;
        let mut char_start = 0;
        for (chars, (offset, c)) in text.char_indices().enumerate() {
            if ends_clause(c) {
                if offset > byte_start {
                    clauses.push(Clause {
                        tokens: self.clause(&text[byte_start..offset]),
                        byte_start,
                        char_start,
                    });
                }
                byte_start = offset + c.len_utf8();
                char_start = chars + 1;
            }
        }
        if text.len() > byte_start {
            clauses.push(Clause {
                tokens: self.clause(&text[byte_start..]),
                byte_start,
                char_start,
            });
        }
        clauses
    }

    /// The words of one clause, remembered or analyzed.
    fn clause(&mut self, clause: &str) -> Rc<[Token]> {
        let mode = usize::from(self.search_mode);
        let remember = self.remember && clause.len() <= REMEMBERED_BYTES;
        if remember
            && let Some(tokens) =
                REMEMBERED.with(|remembered| remembered.borrow_mut()[mode].get(clause))
        {
            return tokens;
        }
        let tokens: Rc<[Token]> = self.segment(clause).into();
        if remember {
            REMEMBERED.with(|remembered| {
                remembered.borrow_mut()[mode].insert(clause.into(), tokens.clone());
            });
        }
        tokens
    }

    /// Segments `text` with jieba and keeps its words, normalized; in search mode with the
    /// words it cut across (see [`joined_words`]).
    fn segment(&mut self, text: &str) -> Vec<Token> {
        let mode = if self.search_mode {
            TokenizeMode::Search
        } else {
            TokenizeMode::Default
        };
        let words = JIEBA.tokenize(text, mode, true);
        let mut tokens = Vec::with_capacity(words.len());
        for word in &words {
            if !word.word.chars().any(is_word_character) {
                continue;
            }
            let mut token = token_of(text, word);
            self.normalize(&mut token.text);
            tokens.push(token);
        }
        if self.search_mode {
            joined_words(text, &words, &mut tokens);
        }
        tokens
    }

    /// Lower-cases, and stems Latin words.
    fn normalize(&mut self, text: &mut String) {
        if text.is_ascii() {
            text.make_ascii_lowercase();
            if text.bytes().all(|byte| byte.is_ascii_lowercase()) {
                let stem = self
                    .stemmer
                    .token_stream(text)
                    .next()
                    .map(|token| token.text.clone());
                if let Some(stem) = stem {
                    *text = stem;
                }
            }
        } else if text.chars().any(has_case) {
            *text = text.to_lowercase();
        }
    }
}

/// The token of one of jieba's words in `text`: byte offsets, and its character offset as the
/// position.
fn token_of(text: &str, word: &jieba_rs::Token<'_>) -> Token {
    let offset_from = word.word.as_ptr() as usize - text.as_ptr() as usize;
    Token {
        offset_from,
        offset_to: offset_from + word.word.len(),
        position: word.start,
        text: word.word.to_owned(),
        position_length: word.end - word.start,
    }
}

/// Dictionary words of at least this many characters that the segmentation cut across are
/// indexed too (shorter ones are found as the words inside longer ones already).
const JOINED_WORD_CHARS: usize = 3;

/// Adds the dictionary words of a clause that its segmentation cut across: jieba cuts by
/// context, so alone `环境监测` is one word, but `生态环境监测数据` is cut `生态环境|监测数据`,
/// whose words and the words inside them hold `环境` and `监测` and not `环境监测`. Every
/// dictionary word of [`JOINED_WORD_CHARS`] or more characters that starts where a word starts
/// and ends where a word ends is added at its position, so such a query word is one term to
/// look up rather than a phrase of its parts, whose positions are slow to read. (Words of
/// other than Chinese characters are not joined: jieba's full mode finds only those.)
fn joined_words(text: &str, words: &[jieba_rs::Token<'_>], tokens: &mut Vec<Token>) {
    if words.len() < 2 {
        return;
    }
    let chars = text.chars().count();
    let mut starts = vec![false; chars + 1];
    let mut ends = vec![false; chars + 1];
    for word in words {
        starts[word.start] = true;
        ends[word.end] = true;
    }
    let added = tokens.len();
    for word in JIEBA.cut_all(text) {
        if word.end - word.start < JOINED_WORD_CHARS
            || !starts[word.start]
            || !ends[word.end]
            || !word.word.chars().all(is_common_ideograph)
            || words
                .iter()
                .any(|known| known.start == word.start && known.end == word.end)
        {
            continue;
        }
        tokens.push(token_of(text, &word));
    }
    if tokens.len() > added {
        // A term's positions must not go back within a document.
        tokens.sort_by_key(|token| token.position);
    }
}

impl Tokenizer for Words {
    type TokenStream<'a> = WordsStream;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> WordsStream {
        WordsStream {
            clauses: self.analyze(text),
            clause: 0,
            next: 0,
            token: Token::default(),
        }
    }
}

/// Replays the words of a text's clauses, shifted to where each clause starts.
struct WordsStream {
    clauses: Vec<Clause>,
    clause: usize,
    next: usize,
    token: Token,
}

impl TokenStream for WordsStream {
    fn advance(&mut self) -> bool {
        loop {
            let Some(clause) = self.clauses.get(self.clause) else {
                return false;
            };
            let Some(token) = clause.tokens.get(self.next) else {
                self.clause += 1;
                self.next = 0;
                continue;
            };
            self.next += 1;
            self.token.clone_from(token);
            self.token.offset_from += clause.byte_start;
            self.token.offset_to += clause.byte_start;
            self.token.position += clause.char_start;
            return true;
        }
    }

    fn token(&self) -> &Token {
        &self.token
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.token
    }
}

/// CJK unified ideographs, the common Chinese characters.
pub(crate) fn is_common_ideograph(c: char) -> bool {
    ('\u{4E00}'..='\u{9FFF}').contains(&c)
}

fn is_word_character(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_alphanumeric()
    } else {
        is_common_ideograph(c) || c.is_alphanumeric()
    }
}

fn has_case(c: char) -> bool {
    !is_common_ideograph(c) && (c.is_uppercase() || c.is_lowercase())
}

/// The tie-breaking key of a code: FNV-1a then a finalizing mix, written out here because the
/// value is stored in the index and must not change with a library's hash function.
pub(crate) fn code_key(code: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in code.as_bytes() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^ (hash >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(mut analyzer: TextAnalyzer, text: &str) -> Vec<(String, usize)> {
        let mut stream = analyzer.token_stream(text);
        let mut tokens = Vec::new();
        while let Some(token) = stream.next() {
            tokens.push((token.text.clone(), token.position));
        }
        tokens
    }

    #[test]
    fn index_mode_contains_the_query_words() {
        let indexed = tokens(analyzer(true), "住房公积金缴存信息");
        let query = tokens(analyzer(false), "公积金");
        assert_eq!(query, vec![("公积金".to_owned(), 0)]);
        assert!(indexed.contains(&("公积金".to_owned(), 2)), "{indexed:?}");
    }

    #[test]
    fn words_cut_across_are_indexed_too() {
        let query = tokens(analyzer(false), "环境监测");
        assert_eq!(query, vec![("环境监测".to_owned(), 0)]);
        let indexed = tokens(analyzer(true), "生态环境监测数据");
        assert!(indexed.contains(&("环境监测".to_owned(), 2)), "{indexed:?}");
        // Still in order of position, as tantivy needs within a term.
        assert!(
            indexed.windows(2).all(|pair| pair[0].1 <= pair[1].1),
            "{indexed:?}"
        );
        // Besides jieba's own words, only dictionary words of three or more characters that
        // start and end where jieba's words do.
        for text in [
            "生态环境监测数据",
            "南京市公安局交通管理局",
            "住房公积金缴存信息",
        ] {
            let jieba: Vec<(String, usize, usize)> = JIEBA
                .tokenize(text, TokenizeMode::Search, true)
                .iter()
                .map(|word| (word.word.to_owned(), word.start, word.end))
                .collect();
            for (word, start) in tokens(analyzer(true), text) {
                if jieba
                    .iter()
                    .any(|(known, at, _)| *known == word && *at == start)
                {
                    continue;
                }
                let end = start + word.chars().count();
                assert!(
                    word.chars().count() >= JOINED_WORD_CHARS,
                    "{word} in {text}"
                );
                assert!(JIEBA.has_word(&word), "{word} in {text}");
                assert!(
                    jieba.iter().any(|(_, at, _)| *at == start),
                    "{word} in {text}"
                );
                assert!(
                    jieba.iter().any(|(_, _, to)| *to == end),
                    "{word} in {text}"
                );
            }
        }
    }

    #[test]
    fn punctuation_dropped_case_folded_latin_stemmed() {
        let words: Vec<String> = tokens(
            analyzer(false),
            "Housing Registrations，公民身份号码！id_number",
        )
        .into_iter()
        .map(|(text, _)| text)
        .collect();
        assert_eq!(
            words,
            ["hous", "registr", "公民", "身份", "号码", "id_number"]
        );
        assert_eq!(
            segment_for_query("住房公积金缴存信息"),
            "住房 公积金 缴存 信息"
        );
        assert_eq!(
            segment_for_index("住房公积金缴存"),
            "住房 公积 积金 公积金 缴存"
        );
    }

    #[test]
    fn clauses_are_segmented_as_the_whole_text_is() {
        let texts = [
            "本资源提供建邺区流动人口居住登记数据，数据来源于南京市公安局，每日更新。用于“一网通办”业务协同。",
            "Jianye District Floating Population Residence Registration Data 2022",
            "公民身份号码\nid_number\n姓名\nname\n居住地址",
            "  生态环境监测数据（2023版）：PM2.5、NO₂ 与 café 指标；ＡＢＣ１２３ 全角。 ",
            "住房公积金缴存信息/housing-fund_deposits v1.2 #3 50% A&B",
            "",
            "，。",
        ];
        for search_mode in [false, true] {
            for text in texts {
                // Twice: the second time every short clause is remembered.
                for _ in 0..2 {
                    let mut analyzer = words(search_mode, true);
                    let mut stream = analyzer.token_stream(text);
                    let mut words = Vec::new();
                    while let Some(token) = stream.next() {
                        words.push(token.clone());
                    }
                    let mut whole = Words::new(search_mode, false).segment(text);
                    words.retain(|token| token.text.len() <= MAX_TOKEN_BYTES);
                    whole.retain(|token| token.text.len() <= MAX_TOKEN_BYTES);
                    let key = |token: &Token| {
                        (
                            token.text.clone(),
                            token.offset_from,
                            token.offset_to,
                            token.position,
                            token.position_length,
                        )
                    };
                    assert_eq!(
                        words.iter().map(key).collect::<Vec<_>>(),
                        whole.iter().map(key).collect::<Vec<_>>(),
                        "{text:?} (search mode {search_mode})"
                    );
                }
            }
        }
    }

    #[test]
    fn code_key_is_pinned() {
        // The key is stored in indexes; changing the function would reorder existing ones.
        assert_eq!(code_key("320100-B01-000123"), 0xd851_e73f_2216_c06d);
        assert_ne!(code_key("320100-B01-000123"), code_key("320100-B01-000124"));
    }
}
