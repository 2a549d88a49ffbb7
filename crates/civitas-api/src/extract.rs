//! Extractors that turn bad input into problem documents: JSON bodies that name the field at
//! fault, and query strings parsed the same way.

use axum::{
    extract::{FromRequest, FromRequestParts, Request},
    http::{header, request::Parts},
};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// The largest JSON body accepted by the API.
pub const MAX_JSON_BODY: usize = 4 * 1024 * 1024;

/// A JSON request body. Malformed JSON is a 400 `malformed_json`; well-formed JSON with a wrong
/// or missing field is a 422 `invalid_field` naming the field's path.
pub struct Json<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(';').next())
            .is_some_and(|mime| {
                let mime = mime.trim();
                mime == "application/json" || mime.ends_with("+json")
            });
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        // The router's `DefaultBodyLimit` is `MAX_JSON_BODY`; a body that stops short (the
        // client went away) is no JSON document either.
        let body = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(|rejection| match rejection.status() {
                axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
                    ApiError::PayloadTooLarge(MAX_JSON_BODY)
                }
                _ => ApiError::MalformedJson(format!(
                    "the body could not be read: {}",
                    rejection.body_text()
                )),
            })?;
        parse_json(&body).map(Json)
    }
}

/// Parses a JSON document, telling syntax errors (400) from data errors (422 naming the field).
/// Text with a NUL character is refused whatever field it is in (422 naming the field):
/// PostgreSQL cannot store it and SQLite would, so refusing it here makes both stores answer
/// alike, and nothing with a NUL reaches a store, a search index or a ledger record.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        if inner.is_syntax() || inner.is_eof() || inner.is_io() {
            ApiError::MalformedJson(inner.to_string())
        } else {
            ApiError::invalid(
                if path == "." { "body".to_owned() } else { path },
                strip_position(&inner.to_string()),
            )
        }
    })?;
    deserializer
        .end()
        .map_err(|error| ApiError::MalformedJson(error.to_string()))?;
    if has_escaped_nul(body)
        && let Ok(document) = serde_json::from_slice::<serde_json::Value>(body)
        && let Some(field) = nul_field(&document, &mut Vec::new())
    {
        return Err(ApiError::invalid(
            field,
            "must not contain the NUL character (U+0000)",
        ));
    }
    Ok(value)
}

/// Whether a JSON document holds the escape `\u0000` (JSON strings can carry NUL no other way),
/// looking past escaped backslashes: `\\u0000` is a backslash followed by the text `u0000`.
fn has_escaped_nul(body: &[u8]) -> bool {
    const ESCAPE: &[u8] = b"\\u0000";
    let mut from = 0;
    while let Some(found) = body[from..]
        .windows(ESCAPE.len())
        .position(|window| window == ESCAPE)
    {
        let at = from + found;
        let backslashes_before = body[..at]
            .iter()
            .rev()
            .take_while(|&&byte| byte == b'\\')
            .count();
        if backslashes_before % 2 == 0 {
            return true;
        }
        from = at + 1;
    }
    false
}

/// The path (as serde_path_to_error writes it: `items[2].label`) of the first key or text in
/// `value` holding a NUL; `path` is the way to `value`.
fn nul_field(value: &serde_json::Value, path: &mut Vec<String>) -> Option<String> {
    let join = |path: &[String]| {
        let mut joined = String::new();
        for segment in path {
            if !joined.is_empty() && !segment.starts_with('[') {
                joined.push('.');
            }
            joined.push_str(segment);
        }
        if joined.is_empty() {
            "body".to_owned()
        } else {
            joined
        }
    };
    match value {
        serde_json::Value::String(text) if text.contains('\0') => Some(join(path)),
        serde_json::Value::Array(items) => items.iter().enumerate().find_map(|(index, item)| {
            path.push(format!("[{index}]"));
            let found = nul_field(item, path);
            path.pop();
            found
        }),
        serde_json::Value::Object(fields) => fields.iter().find_map(|(key, item)| {
            path.push(key.clone());
            let found = if key.contains('\0') {
                Some(join(path))
            } else {
                nul_field(item, path)
            };
            path.pop();
            found
        }),
        _ => None,
    }
}

/// serde_json appends " at line 1 column 42" to data errors; the field path says more.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(index) => message[..index].to_owned(),
        None => message.to_owned(),
    }
}

/// A query string. A parameter with a bad value is a 422 `invalid_field` naming the parameter,
/// as is one with a NUL character (`%00`), which the stores would treat differently.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        if let Some((name, _)) = form_urlencoded::parse(query.as_bytes())
            .find(|(name, value)| name.contains('\0') || value.contains('\0'))
        {
            return Err(ApiError::invalid(
                name.into_owned(),
                "must not contain the NUL character (U+0000)",
            ));
        }
        let deserializer = serde_urlencoded_deserializer(query);
        serde_path_to_error::deserialize(deserializer)
            .map(Query)
            .map_err(|error| {
                let path = error.path().to_string();
                let message = error.into_inner().to_string();
                let field = if path == "." {
                    // A missing or unknown parameter: serde names it in the message.
                    "query".to_owned()
                } else {
                    path
                };
                ApiError::invalid(field, message)
            })
    }
}

/// Path parameters. A parameter with a NUL character (`%00`) is a 422 `invalid_field` naming
/// it, as in a query string: PostgreSQL cannot take NUL in text, so a key id or a certificate
/// serial holding one was a 500 there (and a 404 on SQLite). A parameter that is not UTF-8 once
/// decoded is a 422 `invalid_field` too, as a problem document like every other refusal.
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let refused = |status: axum::http::StatusCode, message: String| {
            if status.is_server_error() {
                // A route whose parameters do not fit its handler: a bug, not bad input.
                ApiError::internal(anyhow::anyhow!(message))
            } else {
                ApiError::invalid("path", message)
            }
        };
        let params = axum::extract::RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|rejection| refused(rejection.status(), rejection.body_text()))?;
        if let Some((name, _)) = params.iter().find(|(_, value)| value.contains('\0')) {
            return Err(ApiError::invalid(
                name,
                "must not contain the NUL character (U+0000)",
            ));
        }
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Path(value))
            .map_err(|rejection| refused(rejection.status(), rejection.body_text()))
    }
}

fn serde_urlencoded_deserializer(query: &str) -> serde_urlencoded::Deserializer<'_> {
    serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_at_fault(body: &str) -> Option<String> {
        match parse_json::<serde_json::Value>(body.as_bytes()) {
            Err(ApiError::InvalidField { field, .. }) => Some(field),
            Err(other) => panic!("{body}: {other:?}"),
            Ok(_) => None,
        }
    }

    #[test]
    fn text_with_nul_is_refused_naming_its_field() {
        assert_eq!(
            field_at_fault(r#"{"label":"a\u0000b"}"#).as_deref(),
            Some("label")
        );
        assert_eq!(
            field_at_fault(r#"{"items":[{"name":"x"},{"name":"\u0000"}]}"#).as_deref(),
            Some("items[1].name")
        );
        assert_eq!(field_at_fault(r#"{"a\u0000":1}"#).as_deref(), Some("a\0"));
        assert_eq!(field_at_fault(r#"["\u0000"]"#).as_deref(), Some("[0]"));
        assert_eq!(field_at_fault(r#""\u0000""#).as_deref(), Some("body"));
    }

    #[test]
    fn an_escaped_backslash_before_u0000_is_text() {
        // `\\u0000` in JSON is a backslash and the letters u0000, not a NUL.
        assert_eq!(field_at_fault(r#"{"path":"C:\\u0000"}"#), None);
        assert_eq!(
            field_at_fault(r#"{"path":"\\\u0000"}"#).as_deref(),
            Some("path")
        );
    }
}
