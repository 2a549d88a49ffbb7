//! Malformed queries are syntax errors with readable messages.

use civitas_search::SearchError;

use crate::support::{document, index_with, query};

#[tokio::test]
async fn malformed_queries_are_syntax_errors() {
    let index = index_with(vec![document("320100-B01-000001", "人口信息")]).await;
    for (text, expected) in [
        (
            "\"人口",
            "unbalanced quotes: the phrase opened at character 1 is not closed",
        ),
        (
            "(人口 OR 法人",
            "unbalanced parentheses: '(' at character 1 is not closed",
        ),
        (
            "人口)",
            "unbalanced parentheses: ')' at character 3 closes no '('",
        ),
        ("人口 OR", "OR at character 4 must stand between two terms"),
        (
            "- 人口",
            "'-' at character 1 must be followed by a term, without a space",
        ),
    ] {
        match index.search(&query(text)) {
            Err(SearchError::Syntax { message }) => assert_eq!(message, expected, "{text}"),
            other => panic!("{text}: expected a syntax error, got {other:?}"),
        }
    }
    let error = index.search(&query("(人口")).unwrap_err();
    assert!(
        error.to_string().starts_with("search query error: "),
        "{error}"
    );
}
