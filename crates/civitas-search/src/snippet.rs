//! Highlighted snippets of names and summaries.
//!
//! A Chinese query word is highlighted wherever its characters occur in the text, found without
//! segmenting the text. (The index holds the words inside longer words and most words jieba cut
//! across, so that is nearly always where the entry matched; a word jieba split differently in
//! the text is highlighted all the same, as a reader would expect.) Other words (Latin,
//! lower-cased and stemmed) are looked up among the analyzed words of the text, which is only
//! segmented when it has such characters. A summary is cut to the passage of about a hundred
//! characters with the most distinct query words. The HTML is exactly what the crate documents:
//! `&`, `<`, `>`, `"` and `'` as entities, matches in `<em>`…`</em>`.

use std::collections::BTreeSet;
use std::ops::Range;

use tantivy::tokenizer::{TextAnalyzer, TokenStream};

use crate::schema;

/// About a hundred Chinese characters.
const SUMMARY_BYTES: usize = 300;
const SUMMARY_PREVIEW_CHARS: usize = 100;
/// How far before its first match a passage may start, to begin at a clause.
const LEAD_BYTES: usize = 60;

pub(crate) struct Highlighter {
    /// Words of Chinese characters only, found as they are.
    chinese: Vec<String>,
    /// Other words, as the analyzer gives them, found among the text's analyzed words.
    analyzed: BTreeSet<String>,
    analyzer: Option<TextAnalyzer>,
}

/// A match: where it is in the text, and which query word it is.
struct Match {
    range: Range<usize>,
    word: usize,
}

impl Highlighter {
    pub(crate) fn new(words: &BTreeSet<String>) -> Highlighter {
        let (chinese, analyzed): (BTreeSet<String>, BTreeSet<String>) = words
            .iter()
            .cloned()
            .partition(|word| word.chars().all(schema::is_common_ideograph));
        let chinese = chinese.into_iter().collect();
        let analyzer = (!analyzed.is_empty()).then(|| schema::analyzer(true));
        Highlighter {
            chinese,
            analyzed,
            analyzer,
        }
    }

    /// The whole name, its matches highlighted.
    pub(crate) fn name(&mut self, name: &str) -> String {
        let matches = self.matches(name);
        let mut html = String::with_capacity(name.len() + 32);
        push_highlighted(
            &mut html,
            name,
            matches.into_iter().map(|found| found.range),
        );
        html
    }

    /// The passage of the summary with the most distinct query words, or its beginning.
    pub(crate) fn summary(&mut self, summary: &str) -> String {
        let matches = self.matches(summary);
        if matches.is_empty() {
            let mut preview: String = summary.chars().take(SUMMARY_PREVIEW_CHARS).collect();
            let cut = preview.len() < summary.len();
            preview = escape(&preview);
            if cut {
                preview.push('…');
            }
            return preview;
        }
        let passage = passage(summary, &matches, SUMMARY_BYTES);
        let mut html = String::with_capacity(passage.len() + 32);
        if passage.start > 0 {
            html.push('…');
        }
        push_highlighted(
            &mut html,
            &summary[passage.clone()],
            matches
                .into_iter()
                .filter(|found| {
                    found.range.start >= passage.start && found.range.end <= passage.end
                })
                .map(|found| found.range.start - passage.start..found.range.end - passage.start),
        );
        if passage.end < summary.len() {
            html.push('…');
        }
        html
    }

    /// Every match in `text`, in no particular order.
    fn matches(&mut self, text: &str) -> Vec<Match> {
        let mut matches = Vec::new();
        for (word, chinese) in self.chinese.iter().enumerate() {
            matches.extend(
                text.match_indices(chinese.as_str())
                    .map(|(start, found)| Match {
                        range: start..start + found.len(),
                        word,
                    }),
            );
        }
        if let Some(analyzer) = &mut self.analyzer
            && text
                .chars()
                .any(|c| c.is_alphanumeric() && !schema::is_common_ideograph(c))
        {
            let mut stream = analyzer.token_stream(text);
            while let Some(token) = stream.next() {
                if let Some(word) = self.analyzed.iter().position(|word| *word == token.text) {
                    matches.push(Match {
                        range: token.offset_from..token.offset_to,
                        word: self.chinese.len() + word,
                    });
                }
            }
        }
        matches
    }
}

/// The passage of at most `bytes` bytes holding the most distinct matched words (the earliest
/// of equals), begun at the start of its clause when that is near and loses no word.
fn passage(text: &str, matches: &[Match], bytes: usize) -> Range<usize> {
    if text.len() <= bytes {
        return 0..text.len();
    }
    let window = |start: usize| start..text.floor_char_boundary((start + bytes).min(text.len()));
    let distinct_words = |within: &Range<usize>| {
        let mut words: Vec<usize> = matches
            .iter()
            .filter(|found| found.range.start >= within.start && found.range.end <= within.end)
            .map(|found| found.word)
            .collect();
        words.sort_unstable();
        words.dedup();
        words.len()
    };
    let mut starts: Vec<usize> = matches.iter().map(|found| found.range.start).collect();
    starts.sort_unstable();
    let mut best = window(starts[0]);
    let mut best_words = distinct_words(&best);
    for &start in &starts[1..] {
        let candidate = window(start);
        let words = distinct_words(&candidate);
        if words > best_words {
            (best, best_words) = (candidate, words);
        }
    }
    // Begin after the punctuation that ends the clause before, if near.
    let earliest = text.ceil_char_boundary(best.start.saturating_sub(LEAD_BYTES));
    let clause_start = text[earliest..best.start]
        .char_indices()
        .rev()
        .find(|(_, c)| schema::ends_clause(*c))
        .map(|(at, c)| earliest + at + c.len_utf8());
    match clause_start.map(window) {
        Some(earlier) if distinct_words(&earlier) == best_words => earlier,
        _ => best,
    }
}

/// Writes `fragment` with the `highlighted` byte ranges in `<em>`. Ranges may overlap (a word
/// inside another, or one word found both ways); overlapping and touching ranges are merged.
fn push_highlighted(
    html: &mut String,
    fragment: &str,
    highlighted: impl IntoIterator<Item = Range<usize>>,
) {
    let mut ranges: Vec<Range<usize>> = highlighted.into_iter().collect();
    ranges.sort_by_key(|range| (range.start, range.end));
    let mut merged: Vec<Range<usize>> = Vec::with_capacity(ranges.len());
    for range in ranges {
        match merged.last_mut() {
            Some(last) if range.start <= last.end => last.end = last.end.max(range.end),
            _ => merged.push(range),
        }
    }
    let mut written = 0;
    for range in merged {
        debug_assert!(range.end <= fragment.len() && written <= range.start);
        push_escaped(html, &fragment[written..range.start]);
        html.push_str("<em>");
        push_escaped(html, &fragment[range.clone()]);
        html.push_str("</em>");
        written = range.end;
    }
    push_escaped(html, &fragment[written..]);
}

fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    push_escaped(&mut escaped, text);
    escaped
}

fn push_escaped(html: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => html.push_str("&amp;"),
            '<' => html.push_str("&lt;"),
            '>' => html.push_str("&gt;"),
            '"' => html.push_str("&quot;"),
            '\'' => html.push_str("&#39;"),
            other => html.push(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_matches_merge_and_text_is_escaped() {
        let mut html = String::new();
        push_highlighted(&mut html, "a<b>住房公积金", [10..19, 4..10, 10..16]);
        assert_eq!(html, "a&lt;b&gt;<em>住房公积金</em>");
        assert_eq!(escape("\"'&"), "&quot;&#39;&amp;");
    }
}
