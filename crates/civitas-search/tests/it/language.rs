//! Chinese segmentation, English stemming, fields and weights.

use crate::support::{codes, document, index_with, query, search_codes};
use civitas_search::SearchRequest;

#[tokio::test]
async fn a_chinese_word_finds_longer_words_that_contain_it() {
    let index = index_with(vec![
        document("320100-T03-000001", "住房公积金缴存信息"),
        document("320100-T03-000002", "社会保险参保缴费记录"),
        document("320100-B02-000003", "企业登记注册信息"),
    ])
    .await;
    assert_eq!(search_codes(&index, "公积金"), ["320100-T03-000001"]);
    assert_eq!(search_codes(&index, "住房公积金"), ["320100-T03-000001"]);
    // Typed without a space, the words of a longer query all have to occur.
    assert_eq!(search_codes(&index, "公积金缴存"), ["320100-T03-000001"]);
    assert_eq!(search_codes(&index, "公积金缴费"), Vec::<String>::new());
    assert_eq!(search_codes(&index, "社会保险"), ["320100-T03-000002"]);
    let mut both = search_codes(&index, "信息");
    both.sort();
    assert_eq!(both, ["320100-B02-000003", "320100-T03-000001"]);
}

#[tokio::test]
async fn a_word_is_found_where_the_text_was_cut_across_it() {
    // Alone, 环境监测 is one word; in this name jieba cuts 生态环境|监测数据, so the index holds
    // 环境 and 监测 there, not 环境监测.
    let index = index_with(vec![
        document("320100-T12-000001", "生态环境监测数据批量导出"),
        document("320100-T12-000002", "环境污染投诉处理记录"),
        document("320100-T12-000003", "监测站点与生态环境保护规划"),
    ])
    .await;
    assert_eq!(search_codes(&index, "环境监测"), ["320100-T12-000001"]);
    assert_eq!(search_codes(&index, "生态环境监测"), ["320100-T12-000001"]);
    // Names are indexed without positions: there the finer words need only all occur.
    assert!(search_codes(&index, "name:环境监测").contains(&"320100-T12-000001".to_owned()));
    let mut both = search_codes(&index, "生态环境");
    both.sort();
    assert_eq!(both, ["320100-T12-000001", "320100-T12-000003"]);
}

#[tokio::test]
async fn phrases_need_adjacent_words_in_order() {
    let mut scattered = document("320100-T03-000002", "缴存比例与住房补贴");
    scattered.summary = "公积金相关".into();
    let index = index_with(vec![
        document("320100-T03-000001", "住房公积金缴存明细"),
        scattered,
    ])
    .await;
    assert_eq!(
        search_codes(&index, "\"公积金缴存\""),
        ["320100-T03-000001"]
    );
    assert_eq!(search_codes(&index, "“公积金 缴存”"), ["320100-T03-000001"]);
    assert_eq!(search_codes(&index, "\"缴存公积金\""), Vec::<String>::new());
    assert_eq!(search_codes(&index, "公积金 缴存").len(), 2);
}

#[tokio::test]
async fn english_names_are_stemmed_and_case_insensitive() {
    let mut registration = document("320100-B02-000001", "企业登记注册信息");
    registration.name_en = Some("Enterprise Registration Information".into());
    let mut loans = document("320100-T03-000002", "住房公积金贷款");
    loans.name_en = Some("Housing Provident Fund Loans".into());
    let index = index_with(vec![registration, loans]).await;
    assert_eq!(search_codes(&index, "registrations"), ["320100-B02-000001"]);
    assert_eq!(search_codes(&index, "REGISTERED"), Vec::<String>::new());
    assert_eq!(search_codes(&index, "loan"), ["320100-T03-000002"]);
    assert_eq!(
        search_codes(&index, "\"provident funds\""),
        ["320100-T03-000002"]
    );
    assert_eq!(
        search_codes(&index, "name_en:housing"),
        ["320100-T03-000002"]
    );
}

#[tokio::test]
async fn every_text_field_is_searched_and_names_weigh_most() {
    let in_name = document("320100-B01-000001", "不动产登记信息");
    let mut in_summary = document("320100-B01-000002", "房屋信息");
    in_summary.summary = "记录不动产登记的权利人和坐落。".into();
    let mut in_items = document("320100-B01-000003", "权属信息");
    in_items.items = vec!["不动产权证书号 property_certificate_no".into()];
    let mut in_tags = document("320100-B01-000004", "地籍信息");
    in_tags.tags = vec!["不动产".into()];
    let mut by_provider = document("320100-B01-000005", "规划许可");
    by_provider.provider_name = "南京市规划和自然资源局".into();
    let index = index_with(vec![in_name, in_summary, in_items, in_tags, by_provider]).await;
    let found = search_codes(&index, "不动产");
    assert_eq!(found.len(), 4, "{found:?}");
    assert_eq!(
        found[0], "320100-B01-000001",
        "the name match ranks first: {found:?}"
    );
    assert_eq!(search_codes(&index, "自然资源"), ["320100-B01-000005"]);
    assert_eq!(
        search_codes(&index, "property_certificate_no"),
        ["320100-B01-000003"]
    );
    assert_eq!(search_codes(&index, "name:不动产"), ["320100-B01-000001"]);
    assert_eq!(search_codes(&index, "tags:不动产"), ["320100-B01-000004"]);
    assert_eq!(
        search_codes(&index, "provider:南京市规划和自然资源局"),
        ["320100-B01-000005"]
    );
    assert_eq!(
        search_codes(&index, "provider:自然资源"),
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn operators_and_codes() {
    let index = index_with(vec![
        document("320100-T03-000001", "住房公积金缴存信息"),
        document("320100-T03-000002", "住房公积金贷款信息"),
        document("320102-T03-000003", "社会保险参保信息"),
    ])
    .await;
    assert_eq!(search_codes(&index, "公积金 -贷款"), ["320100-T03-000001"]);
    assert_eq!(
        search_codes(&index, "公积金 NOT 贷款"),
        ["320100-T03-000001"]
    );
    assert_eq!(search_codes(&index, "-公积金"), ["320102-T03-000003"]);
    let mut either = search_codes(&index, "贷款 OR 社会保险");
    either.sort();
    assert_eq!(either, ["320100-T03-000002", "320102-T03-000003"]);
    assert_eq!(search_codes(&index, "(缴存 OR 贷款) AND 公积金").len(), 2);
    assert_eq!(
        search_codes(&index, "320102-T03-000003"),
        ["320102-T03-000003"]
    );
    assert_eq!(
        search_codes(&index, "code:320100-T03-000002"),
        ["320100-T03-000002"]
    );
    assert_eq!(
        search_codes(&index, "！？").len(),
        0,
        "punctuation finds nothing"
    );
    assert_eq!(search_codes(&index, "*:*").len(), 3);
    let response = index.search(&query("")).unwrap();
    assert_eq!(response.total, 3);
    assert!(response.hits.iter().all(|hit| hit.score.is_none()));
    let response = index.search(&query("公积金")).unwrap();
    assert!(response.hits.iter().all(|hit| hit.score.unwrap() > 0.0));
    assert_eq!(codes(&response).len(), 2);
}

#[tokio::test]
async fn snippets_highlight_and_escape() {
    let mut fund = document("320100-T03-000001", "住房公积金缴存信息<测试>");
    fund.summary = format!(
        "{}。本资源记录公积金缴存的账户余额与月缴存额 & 缴存比例。",
        "本市各区数据汇聚后统一治理，".repeat(10)
    );
    let plain = document("320100-T03-000002", "公积金");
    let index = index_with(vec![fund, plain]).await;
    let request = SearchRequest {
        snippets: true,
        ..query("公积金 缴存")
    };
    let response = index.search(&request).unwrap();
    let hit = &response.hits[0];
    assert_eq!(hit.code, "320100-T03-000001");
    let name = hit.name_snippet.as_deref().unwrap();
    assert!(name.starts_with("住房<em>公积金缴存</em>"), "{name}");
    assert!(name.ends_with("&lt;测试&gt;"), "{name}");
    let summary = hit.summary_snippet.as_deref().unwrap();
    assert!(
        summary.contains("<em>公积金</em><em>缴存</em>") || summary.contains("<em>公积金缴存</em>"),
        "{summary}"
    );
    assert!(summary.contains("&amp;"), "{summary}");
    assert!(
        summary.starts_with('…'),
        "the passage around the match: {summary}"
    );
    let without = index.search(&query("公积金")).unwrap();
    assert!(without.hits.iter().all(|hit| hit.name_snippet.is_none()));
}

#[tokio::test]
async fn snippets_show_the_passage_with_most_query_words() {
    let mut long = document("320100-T03-000003", "住房公积金缴存信息");
    long.summary = format!(
        "公积金账户开设情况。{}。本资源记录公积金缴存的月缴存额；{}",
        "本市各区数据汇聚后统一治理，".repeat(8),
        "按季度更新。".repeat(20)
    );
    let mut english = document("320100-T03-000004", "户籍登记");
    english.summary = "Household registration records, updated daily.".to_owned();
    let index = index_with(vec![long, english]).await;
    let snippets = |text: &str| {
        let response = index
            .search(&SearchRequest {
                snippets: true,
                ..query(text)
            })
            .unwrap();
        assert_eq!(response.hits.len(), 1, "{text}");
        let hit = &response.hits[0];
        (
            hit.name_snippet.clone().unwrap(),
            hit.summary_snippet.clone().unwrap(),
        )
    };
    // The first mention has one of the two words; the passage holding both wins, and begins
    // at its clause.
    let (name, summary) = snippets("公积金 缴存");
    assert_eq!(name, "住房<em>公积金缴存</em>信息");
    assert!(
        summary.starts_with("…本资源记录<em>公积金缴存</em>的月<em>缴存</em>额；按季度更新。"),
        "{summary}"
    );
    assert!(summary.ends_with('…'), "{summary}");
    let text = summary.replace("<em>", "").replace("</em>", "");
    assert_eq!(text.trim_matches('…').len(), 300, "{summary}");
    // Latin words are matched as they are indexed: case-folded and stemmed.
    let (name, summary) = snippets("registrations");
    assert_eq!(name, "户籍登记");
    assert_eq!(
        summary,
        "Household <em>registration</em> records, updated daily."
    );
}
