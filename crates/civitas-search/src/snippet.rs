//! Highlighted snippets of names and summaries.
//!
//! tantivy finds the best passage and the matched words; the HTML is written here so that the
//! escaping and the markup are exactly what the crate documents: `&`, `<`, `>`, `"` and `'` as
//! entities, matches in `<em>`…`</em>`.

use std::collections::BTreeMap;
use std::ops::Range;

use tantivy::snippet::SnippetGenerator;

use crate::schema::{self, Fields};

/// The longest name is 200 characters of up to 4 bytes; tantivy measures passages in bytes.
const NAME_BYTES: usize = 800;
/// About a hundred Chinese characters.
const SUMMARY_BYTES: usize = 300;
const SUMMARY_PREVIEW_CHARS: usize = 100;

pub(crate) struct Highlighter {
    name: SnippetGenerator,
    summary: SnippetGenerator,
}

impl Highlighter {
    pub(crate) fn new(terms: &BTreeMap<String, f32>, fields: &Fields) -> Highlighter {
        let generator = |field, bytes| {
            SnippetGenerator::new(terms.clone(), schema::analyzer(true), field, bytes)
        };
        Highlighter {
            name: generator(fields.name, NAME_BYTES),
            summary: generator(fields.summary, SUMMARY_BYTES),
        }
    }

    pub(crate) fn name(&self, name: &str) -> String {
        let snippet = self.name.snippet(name);
        if snippet.highlighted().is_empty() {
            return escape(name);
        }
        let range = snippet.fragment_range();
        let mut html = String::with_capacity(name.len() + 32);
        // The generator may cut a long name; the name is shown whole.
        push_escaped(&mut html, &name[..range.start]);
        push_highlighted(&mut html, snippet.fragment(), snippet.highlighted());
        push_escaped(&mut html, &name[range.end..]);
        html
    }

    pub(crate) fn summary(&self, summary: &str) -> String {
        let snippet = self.summary.snippet(summary);
        if snippet.highlighted().is_empty() {
            let mut preview: String = summary.chars().take(SUMMARY_PREVIEW_CHARS).collect();
            let cut = preview.len() < summary.len();
            preview = escape(&preview);
            if cut {
                preview.push('…');
            }
            return preview;
        }
        let range = snippet.fragment_range();
        let mut html = String::with_capacity(range.len() + 32);
        if range.start > 0 {
            html.push('…');
        }
        push_highlighted(&mut html, snippet.fragment(), snippet.highlighted());
        if range.end < summary.len() {
            html.push('…');
        }
        html
    }
}

/// Writes `fragment` with the `highlighted` byte ranges in `<em>`. Ranges may overlap (search
/// mode segmentation yields words inside words); overlapping and touching ranges are merged.
fn push_highlighted(html: &mut String, fragment: &str, highlighted: &[Range<usize>]) {
    let mut ranges = highlighted.to_vec();
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
        push_highlighted(&mut html, "a<b>住房公积金", &[10..19, 4..10, 10..16]);
        assert_eq!(html, "a&lt;b&gt;<em>住房公积金</em>");
        assert_eq!(escape("\"'&"), "&quot;&#39;&amp;");
    }
}
