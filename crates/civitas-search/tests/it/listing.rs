//! Facets, filters, sort orders and paging.

use std::collections::HashSet;

use civitas_search::{Condition, Facet, Paging, SearchError, SearchRequest, Sort};

use crate::support::{codes, document, index_with, query};

/// Ten documents with known facet values:
/// index i has kind dataset for i < 3 else file, provider A for even i else B, tags by i.
fn listing_documents() -> Vec<civitas_search::SearchDocument> {
    (0..10)
        .map(|i| {
            let mut doc = document(&format!("320100-B0{}-00000{i}", 1 + i % 3), "人口信息");
            doc.kind = if i < 3 { "dataset" } else { "file" }.into();
            doc.provider_code = if i % 2 == 0 {
                "PROVIDER-A"
            } else {
                "PROVIDER-B"
            }
            .into();
            doc.provider_level = if i < 5 { "municipal" } else { "district" }.into();
            doc.sharing_type = ["unconditional", "conditional", "none"][i % 3].into();
            doc.open_type = ["open", "closed"][i % 2].into();
            doc.update_cycle = if i == 9 { "yearly" } else { "daily" }.into();
            doc.origin_node = if i == 0 { "cn" } else { "cn-js-nanjing" }.into();
            doc.tags = match i {
                0 => vec!["人口".into(), "户籍".into()],
                1 | 2 => vec!["人口".into()],
                3 => vec!["户籍".into(), "户籍".into()],
                _ => vec![],
            };
            doc.modified_at = 1_700_000_000_000_000 + i as i64 * 1_000_000;
            doc
        })
        .collect()
}

fn counts(response: &civitas_search::SearchResponse, facet: Facet) -> Vec<(String, u64)> {
    response
        .facets
        .iter()
        .find(|counts| counts.facet == facet)
        .unwrap()
        .values
        .clone()
}

fn pairs(values: &[(&str, u64)]) -> Vec<(String, u64)> {
    values
        .iter()
        .map(|(value, count)| (value.to_string(), *count))
        .collect()
}

#[tokio::test]
async fn facets_count_all_matches_not_just_the_page() {
    let index = index_with(listing_documents()).await;
    let request = SearchRequest {
        facets: Facet::ALL.to_vec(),
        paging: Paging::Offset {
            offset: 0,
            limit: 1,
        },
        ..query("人口")
    };
    let response = index.search(&request).unwrap();
    assert_eq!(response.total, 10);
    assert_eq!(response.hits.len(), 1);
    assert_eq!(response.facets.len(), 9);
    assert_eq!(
        response.facets.iter().map(|f| f.facet).collect::<Vec<_>>(),
        Facet::ALL
    );
    assert_eq!(
        counts(&response, Facet::Kind),
        pairs(&[("file", 7), ("dataset", 3)])
    );
    assert_eq!(
        counts(&response, Facet::Provider),
        pairs(&[("PROVIDER-A", 5), ("PROVIDER-B", 5)])
    );
    assert_eq!(
        counts(&response, Facet::Level),
        pairs(&[("district", 5), ("municipal", 5)])
    );
    assert_eq!(
        counts(&response, Facet::SharingType),
        pairs(&[("unconditional", 4), ("conditional", 3), ("none", 3)])
    );
    assert_eq!(
        counts(&response, Facet::OpenType),
        pairs(&[("closed", 5), ("open", 5)])
    );
    assert_eq!(
        counts(&response, Facet::Classification),
        pairs(&[("B01", 4), ("B02", 3), ("B03", 3)])
    );
    assert_eq!(
        counts(&response, Facet::UpdateCycle),
        pairs(&[("daily", 9), ("yearly", 1)])
    );
    assert_eq!(
        counts(&response, Facet::OriginNode),
        pairs(&[("cn-js-nanjing", 9), ("cn", 1)])
    );
    // Tags are multi-valued; a tag repeated in one entry counts once.
    assert_eq!(
        counts(&response, Facet::Tag),
        pairs(&[("人口", 3), ("户籍", 2)])
    );
    let limited = SearchRequest {
        facets: vec![Facet::SharingType],
        facet_limit: 1,
        ..query("")
    };
    let response = index.search(&limited).unwrap();
    assert_eq!(
        counts(&response, Facet::SharingType),
        pairs(&[("unconditional", 4)])
    );
}

#[tokio::test]
async fn a_facet_requested_twice_is_refused() {
    let index = index_with(listing_documents()).await;
    // Every requested facet is counted with its own counters in every segment, so repeating
    // one would multiply the work without bound; the index refuses it whoever calls.
    let repeated = SearchRequest {
        facets: vec![Facet::Tag, Facet::Kind, Facet::Tag],
        ..query("")
    };
    assert!(
        matches!(
            index.search(&repeated),
            Err(SearchError::InvalidRequest { message }) if message.contains("tag")
        ),
        "a repeated facet is an invalid request"
    );
    let every_facet_once = SearchRequest {
        facets: Facet::ALL.to_vec(),
        ..query("")
    };
    let response = index.search(&every_facet_once).unwrap();
    assert_eq!(response.facets.len(), Facet::ALL.len());
}

#[tokio::test]
async fn filters_and_across_facets_or_within_one() {
    let index = index_with(listing_documents()).await;
    let total = |filters: &[(Facet, &str)]| {
        let request = SearchRequest {
            filters: filters
                .iter()
                .map(|(facet, value)| (*facet, value.to_string()))
                .collect(),
            ..query("")
        };
        index.search(&request).unwrap().total
    };
    assert_eq!(total(&[(Facet::Kind, "dataset")]), 3);
    assert_eq!(total(&[(Facet::Provider, "PROVIDER-A")]), 5);
    assert_eq!(total(&[(Facet::Level, "district")]), 5);
    assert_eq!(total(&[(Facet::SharingType, "none")]), 3);
    assert_eq!(total(&[(Facet::OpenType, "open")]), 5);
    assert_eq!(total(&[(Facet::Classification, "B02")]), 3);
    assert_eq!(total(&[(Facet::UpdateCycle, "yearly")]), 1);
    assert_eq!(total(&[(Facet::OriginNode, "cn")]), 1);
    assert_eq!(total(&[(Facet::Tag, "户籍")]), 2);
    assert_eq!(total(&[(Facet::Tag, "unknown")]), 0);
    // AND across facets: datasets (0, 1, 2) of provider A (even): 0 and 2.
    assert_eq!(
        total(&[(Facet::Kind, "dataset"), (Facet::Provider, "PROVIDER-A")]),
        2
    );
    // OR within a facet.
    assert_eq!(total(&[(Facet::Tag, "人口"), (Facet::Tag, "户籍")]), 4);
    assert_eq!(
        total(&[
            (Facet::Tag, "人口"),
            (Facet::Tag, "户籍"),
            (Facet::OpenType, "open")
        ]),
        2
    );
    // Exclusions leave out the entries with any of their values: alone, beside filters, beside
    // words, and of a facet of several values.
    let excluding = |text: &str, filters: &[(Facet, &str)], exclusions: &[(Facet, &str)]| {
        let owned = |pairs: &[(Facet, &str)]| {
            pairs
                .iter()
                .map(|(facet, value)| (*facet, value.to_string()))
                .collect()
        };
        let request = SearchRequest {
            filters: owned(filters),
            exclusions: owned(exclusions),
            ..query(text)
        };
        index.search(&request).unwrap().total
    };
    let provider_a = (Facet::Provider, "PROVIDER-A");
    assert_eq!(excluding("", &[], &[provider_a]), 5);
    assert_eq!(
        excluding("", &[], &[provider_a, (Facet::Provider, "PROVIDER-B")]),
        0
    );
    // Datasets (0, 1, 2) not of provider A (even): 1.
    assert_eq!(excluding("", &[(Facet::Kind, "dataset")], &[provider_a]), 1);
    // Tags 人口 (0, 1, 2) without 户籍 (0, 3): 1 and 2.
    assert_eq!(
        excluding("", &[(Facet::Tag, "人口")], &[(Facet::Tag, "户籍")]),
        2
    );
    let words = index.search(&query("人口")).unwrap().total;
    assert_eq!(excluding("人口", &[], &[(Facet::Tag, "户籍")]), words - 2);
    assert_eq!(excluding("人口", &[], &[(Facet::Tag, "unknown")]), words);
    // Facets and filters together: counts are over the filtered matches.
    let request = SearchRequest {
        filters: vec![(Facet::Kind, "file".into())],
        facets: vec![Facet::Kind, Facet::Tag],
        ..query("人口")
    };
    let response = index.search(&request).unwrap();
    assert_eq!(counts(&response, Facet::Kind), pairs(&[("file", 7)]));
    assert_eq!(counts(&response, Facet::Tag), pairs(&[("户籍", 1)]));
    // Field syntax in the query filters too.
    assert_eq!(index.search(&query("kind:dataset")).unwrap().total, 3);
    assert_eq!(
        index.search(&query("tag:户籍 -kind:file")).unwrap().total,
        1
    );
}

/// A condition holds whole: all of two tags, alternatives across facets, negations. It is checked
/// with and without words (a word matching every entry lets the collector check the parts that
/// are one facet's values), and narrows what the filters let through, never widens it.
#[tokio::test]
async fn conditions_join_values_with_all_any_and_not() {
    let index = index_with(listing_documents()).await;
    let value = |facet, value: &str| Condition::Value(facet, value.to_owned());
    let not = |condition| Condition::Not(Box::new(condition));
    let tag = |name| value(Facet::Tag, name);
    let provider_a = value(Facet::Provider, "PROVIDER-A");
    let open = value(Facet::OpenType, "open");
    let code = |i: usize| format!("320100-B0{}-00000{i}", 1 + i % 3);
    // Kind dataset below 3; provider A even; municipal below 5; open even; tags 人口 on 0, 1,
    // 2 and 户籍 on 0 and 3.
    type Filters = Vec<(Facet, &'static str)>;
    let cases: Vec<(Filters, Condition, Vec<usize>)> = vec![
        (
            vec![],
            Condition::All(vec![tag("人口"), tag("户籍")]),
            vec![0],
        ),
        (
            vec![],
            Condition::Any(vec![tag("人口"), tag("户籍")]),
            vec![0, 1, 2, 3],
        ),
        // One kind per entry: two kinds at once match nothing.
        (
            vec![],
            Condition::All(vec![
                value(Facet::Kind, "dataset"),
                value(Facet::Kind, "file"),
            ]),
            vec![],
        ),
        (
            vec![],
            Condition::Any(vec![provider_a.clone(), tag("户籍")]),
            vec![0, 2, 3, 4, 6, 8],
        ),
        (
            vec![],
            Condition::All(vec![
                Condition::Any(vec![
                    provider_a.clone(),
                    value(Facet::Provider, "PROVIDER-B"),
                ]),
                tag("户籍"),
            ]),
            vec![0, 3],
        ),
        (vec![], not(tag("人口")), vec![3, 4, 5, 6, 7, 8, 9]),
        (
            vec![],
            Condition::All(vec![
                not(value(Facet::Kind, "file")),
                not(provider_a.clone()),
            ]),
            vec![1],
        ),
        (
            vec![],
            Condition::Any(vec![not(open.clone()), tag("人口")]),
            vec![0, 1, 2, 3, 5, 7, 9],
        ),
        (
            vec![],
            Condition::All(vec![open.clone(), value(Facet::Level, "municipal")]),
            vec![0, 2, 4],
        ),
        (vec![], Condition::All(vec![]), (0..10).collect()),
        (vec![], Condition::Any(vec![]), vec![]),
        (vec![], not(Condition::All(vec![])), vec![]),
        // Beside filters: open data only, whatever the condition lets through.
        (
            vec![(Facet::OpenType, "open")],
            Condition::Any(vec![value(Facet::OpenType, "closed"), tag("人口")]),
            vec![0, 2],
        ),
        (vec![(Facet::OpenType, "open")], not(open.clone()), vec![]),
        (
            vec![(Facet::Tag, "人口"), (Facet::Tag, "户籍")],
            not(tag("人口")),
            vec![3],
        ),
    ];
    for (filters, condition, expected) in cases {
        let mut expected: Vec<String> = expected.into_iter().map(code).collect();
        expected.sort();
        for text in ["", "人口"] {
            let request = SearchRequest {
                filters: filters
                    .iter()
                    .map(|(facet, value)| (*facet, value.to_string()))
                    .collect(),
                condition: Some(condition.clone()),
                ..query(text)
            };
            let response = index.search(&request).unwrap();
            let mut found: Vec<String> = codes(&response).into_iter().map(str::to_owned).collect();
            found.sort();
            assert_eq!(found, expected, "{text:?} {filters:?} {condition:?}");
            assert_eq!(response.total, expected.len() as u64);
        }
    }

    // Every value of the condition counts toward the limit beside the filters, and nesting is
    // bounded.
    let many = |count: usize| Condition::Any(vec![tag("人口"); count]);
    let request = |filters: usize, condition| SearchRequest {
        filters: vec![(Facet::Kind, "file".to_owned()); filters],
        condition: Some(condition),
        ..query("")
    };
    assert!(
        index
            .search(&request(0, many(civitas_search::MAX_FILTERS)))
            .is_ok()
    );
    for refused in [
        request(0, many(civitas_search::MAX_FILTERS + 1)),
        request(1, many(civitas_search::MAX_FILTERS)),
    ] {
        assert!(
            matches!(
                index.search(&refused),
                Err(SearchError::InvalidRequest { message }) if message.contains("filter values")
            ),
            "too many values are refused"
        );
    }
    let mut deep = tag("人口");
    for _ in 1..civitas_search::MAX_CONDITION_DEPTH {
        deep = not(deep);
    }
    assert!(index.search(&request(0, deep.clone())).is_ok());
    assert!(
        matches!(
            index.search(&request(0, not(deep))),
            Err(SearchError::InvalidRequest { message }) if message.contains("nests too deeply")
        ),
        "a condition nested too deeply is refused"
    );
}

#[tokio::test]
async fn sort_by_modified_or_relevance() {
    let index = index_with(listing_documents()).await;
    let newest_first = SearchRequest {
        sort: Sort::Modified,
        ..query("人口")
    };
    let response = index.search(&newest_first).unwrap();
    let expected: Vec<String> = (0..10)
        .rev()
        .map(|i| format!("320100-B0{}-00000{i}", 1 + i % 3))
        .collect();
    assert_eq!(codes(&response), expected);
    // Relevance puts the entries that also carry the word as a tag first; without a query,
    // newest first.
    let response = index.search(&query("人口")).unwrap();
    let mut best: Vec<&str> = codes(&response)[..3].to_vec();
    best.sort();
    assert_eq!(
        best,
        [
            "320100-B01-000000",
            "320100-B02-000001",
            "320100-B03-000002"
        ]
    );
    let scores: Vec<f32> = response.hits.iter().map(|hit| hit.score.unwrap()).collect();
    assert!(
        scores.windows(2).all(|pair| pair[0] >= pair[1]),
        "{scores:?}"
    );
    let response = index.search(&query("")).unwrap();
    assert_eq!(codes(&response), expected);
}

#[tokio::test]
async fn offset_paging_is_stable_and_complete() {
    let index = index_with(listing_documents()).await;
    let mut seen = Vec::new();
    for offset in [0, 4, 8] {
        let request = SearchRequest {
            paging: Paging::Offset { offset, limit: 4 },
            ..query("人口")
        };
        let response = index.search(&request).unwrap();
        assert_eq!(response.total, 10);
        seen.extend(codes(&response).into_iter().map(str::to_owned));
    }
    let all: Vec<String> = codes(&index.search(&query("人口")).unwrap())
        .into_iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(seen, all);
    let too_deep = SearchRequest {
        paging: Paging::Offset {
            offset: 9_990,
            limit: 20,
        },
        ..query("")
    };
    assert!(matches!(
        index.search(&too_deep),
        Err(SearchError::InvalidRequest { .. })
    ));
    let too_large = SearchRequest {
        paging: Paging::Offset {
            offset: 0,
            limit: 5_000,
        },
        ..query("")
    };
    assert!(matches!(
        index.search(&too_large),
        Err(SearchError::InvalidRequest { .. })
    ));
}

#[tokio::test]
async fn cursor_paging_walks_everything_once_despite_writes() {
    let index = index_with(listing_documents()).await;
    for sort in [Sort::Relevance, Sort::Modified] {
        let mut seen = Vec::new();
        let mut after = None;
        let mut pages = 0;
        loop {
            let request = SearchRequest {
                sort,
                paging: Paging::Cursor {
                    after: after.clone(),
                    limit: 3,
                },
                ..query("人口")
            };
            let response = index.search(&request).unwrap();
            assert_eq!(response.total, 10);
            seen.extend(codes(&response).into_iter().map(str::to_owned));
            pages += 1;
            match response.next_cursor {
                Some(cursor) => after = Some(cursor),
                None => break,
            }
        }
        assert_eq!(pages, 4, "{sort:?}");
        let unique: HashSet<&String> = seen.iter().collect();
        assert_eq!(unique.len(), 10, "{sort:?}: {seen:?}");
    }

    // Under the modified order, entries written between pages come before the cursor: the walk
    // neither repeats nor skips the entries it started with.
    let first = index
        .search(&SearchRequest {
            sort: Sort::Modified,
            paging: Paging::Cursor {
                after: None,
                limit: 4,
            },
            ..query("")
        })
        .unwrap();
    let mut seen: Vec<String> = codes(&first).into_iter().map(str::to_owned).collect();
    let mut newer = document("320100-B05-000099", "人口新增");
    newer.modified_at = 1_800_000_000_000_000;
    index.upsert(vec![newer]).await.unwrap();
    index.delete(&seen[0]).unwrap();
    index.flush().await.unwrap();
    let mut after = first.next_cursor;
    while let Some(cursor) = after {
        let response = index
            .search(&SearchRequest {
                sort: Sort::Modified,
                paging: Paging::Cursor {
                    after: Some(cursor),
                    limit: 4,
                },
                ..query("")
            })
            .unwrap();
        seen.extend(codes(&response).into_iter().map(str::to_owned));
        after = response.next_cursor;
    }
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!((seen.len(), unique.len()), (10, 10), "{seen:?}");
    assert!(!seen.contains(&"320100-B05-000099".to_owned()));
}

#[tokio::test]
async fn bad_cursors_are_invalid_requests() {
    let index = index_with(listing_documents()).await;
    for (sort, cursor) in [
        (Sort::Modified, "garbage"),
        (Sort::Modified, "r.0000000000000001.0000000000000002"),
    ] {
        let request = SearchRequest {
            sort,
            paging: Paging::Cursor {
                after: Some(cursor.into()),
                limit: 3,
            },
            ..query("人口")
        };
        assert!(matches!(
            index.search(&request),
            Err(SearchError::InvalidRequest { .. })
        ));
    }
}

/// A single word is searched in two passes (counting unscored, then the best hits skipping
/// postings that score too low); with a filter it is one scored pass. A filter every entry
/// passes must change nothing: not the total, the facet counts, the hits, their scores or order,
/// nor the pages of a cursor; also with deleted entries in the segments.
#[tokio::test]
async fn skipping_low_scores_finds_what_scoring_everything_finds() {
    let documents: Vec<_> = (0..3_000)
        .map(|n| {
            // Names of varying lengths give varying scores, and many ties.
            let mut document = document(
                &format!("320100-B01-{n:06}"),
                &format!("人口信息{}", "登记".repeat(n % 7)),
            );
            if n % 3 == 0 {
                document.summary = "人口信息共享".to_owned();
            }
            if n % 50 == 1 {
                document.summary = "人口档案".to_owned();
            }
            document.tags = vec![format!("标签{}", n % 5), format!("主题{}", n % 11)];
            document.provider_code = format!("11320100MB000000{}X", n % 4);
            if n % 5 == 0 {
                document.kind = "dataset".to_owned();
            }
            document
        })
        .collect();
    let index = index_with(documents).await;
    for n in (0..3_000).step_by(13) {
        index.delete(&format!("320100-B01-{n:06}")).unwrap();
    }
    index.flush().await.unwrap();

    let request = |text: &str, filters: &[(Facet, String)], after: Option<String>| SearchRequest {
        filters: filters.to_vec(),
        facets: vec![Facet::Tag, Facet::Provider],
        paging: Paging::Cursor { after, limit: 20 },
        ..query(text)
    };
    let provider = |n: u32| (Facet::Provider, format!("11320100MB000000{n}X"));
    let nine_themes = (0..9).map(|n| (Facet::Tag, format!("主题{n}")));
    let cases: Vec<(&str, Vec<(Facet, String)>)> = vec![
        // A word everywhere, and in the names only.
        ("人口", vec![]),
        ("name:人口", vec![]),
        // All of two common words (their postings read whole), and with a rare one.
        ("人口 登记", vec![]),
        ("人口 name:信息", vec![]),
        ("人口 档案", vec![]),
        // Filters letting through a quarter or more, applied by the collector: one value,
        // several of one facet (one of them absent), several facets with tags.
        ("人口", vec![provider(1)]),
        ("人口", vec![provider(1), provider(2), provider(9)]),
        ("人口 登记", vec![provider(1), provider(2)]),
        (
            "name:人口",
            std::iter::once((Facet::Kind, "file".to_owned()))
                .chain(nine_themes)
                .collect(),
        ),
        // A narrower filter, a clause of the query.
        ("人口", vec![(Facet::Kind, "dataset".to_owned())]),
    ];
    for (text, filters) in &cases {
        // A clause that excludes nothing makes the query more than words, so that every match
        // is scored and the filters are clauses of the query.
        let everything = format!("{text} -不存在");
        let (mut pruned_after, mut full_after) = (None, None);
        for page in 0..5 {
            let pruned = index.search(&request(text, filters, pruned_after)).unwrap();
            let full = index
                .search(&request(&everything, filters, full_after))
                .unwrap();
            let case = format!("{text} {filters:?}, page {page}");
            if filters.is_empty() && !text.contains(' ') {
                assert_eq!(pruned.total, 3_000 - 231, "{case}");
            }
            assert_eq!(pruned.total, full.total, "{case}");
            assert_eq!(pruned.facets, full.facets, "{case}");
            assert_eq!(codes(&pruned), codes(&full), "{case}");
            let scores = |response: &civitas_search::SearchResponse| -> Vec<Option<f32>> {
                response.hits.iter().map(|hit| hit.score).collect()
            };
            assert_eq!(scores(&pruned), scores(&full), "{case}");
            let expected_hits = (pruned.total as usize).saturating_sub(page * 20).min(20);
            assert_eq!(pruned.hits.len(), expected_hits, "{case}");
            pruned_after = pruned.next_cursor;
            full_after = full.next_cursor;
            if pruned_after.is_none() {
                break;
            }
        }
    }
    // Filters in the collector: 750 of provider 1, 58 of them deleted (n = 13k, n % 4 = 1).
    let filtered = index
        .search(&request("人口", &[provider(1)], None))
        .unwrap();
    assert_eq!(filtered.total, 750 - 58);
    let absent = index
        .search(&request("人口", &[provider(9)], None))
        .unwrap();
    assert_eq!((absent.total, absent.hits.len()), (0, 0));
    // A quoted facet value is a bare term of a field without frequencies, whose blocks of
    // postings cannot be skipped by score: it finds what the unquoted (boosted) one finds.
    let quoted = index.search(&query("kind:\"file\"")).unwrap();
    let plain = index.search(&query("kind:file")).unwrap();
    // 2,400 files, 184 of them deleted (n = 13k, n % 5 > 0).
    assert_eq!((quoted.total, plain.total), (2_216, 2_216));
    assert_eq!(codes(&quoted), codes(&plain));
    let tags = counts(
        &index.search(&request("人口", &[], None)).unwrap(),
        Facet::Tag,
    );
    // 600 with the tag, 46 of them deleted (n = 26 + 65k).
    assert!(tags.contains(&("标签1".to_owned(), 554)), "{tags:?}");
}
