//! The gateway's problem answers (RFC 9457 problem+json), each naming its stable code and, for a
//! refused exchange, the rule that refused it.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use serde_json::json;

use crate::body::{GatewayBody, full};

/// A problem answer of the gateway.
pub(crate) struct Problem {
    pub(crate) status: StatusCode,
    pub(crate) code: &'static str,
    pub(crate) detail: String,
    pub(crate) retry_after: Option<Duration>,
}

impl Problem {
    pub(crate) fn new(
        status: StatusCode,
        code: &'static str,
        detail: impl Into<String>,
    ) -> Problem {
        Problem {
            status,
            code,
            detail: detail.into(),
            retry_after: None,
        }
    }

    pub(crate) fn body(&self, rule: Option<&str>) -> Bytes {
        let mut body = json!({
            "type": format!("/docs/problems#{}", self.code),
            "title": self.status.canonical_reason().unwrap_or("error").to_lowercase(),
            "status": self.status.as_u16(),
            "detail": self.detail,
            "code": self.code,
        });
        if let Some(rule) = rule {
            body["rule"] = json!(rule);
        }
        Bytes::from(body.to_string())
    }

    pub(crate) fn response(&self, rule: Option<&str>) -> Response<GatewayBody> {
        let mut response = Response::new(full(self.body(rule)));
        *response.status_mut() = self.status;
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        response
            .headers_mut()
            .insert(crate::REFUSAL_HEADER, HeaderValue::from_static(self.code));
        if let Some(wait) = self.retry_after {
            let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
