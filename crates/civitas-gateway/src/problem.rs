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
        debug_assert!(
            civitas_core::problems::find(code)
                .is_some_and(|known| known.status.is_none_or(|known| known == status.as_u16())),
            "{code} is not in civitas_core::problems with status {status}"
        );
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use civitas_core::problems::{Listener, PROBLEM_TYPES};

    /// The codes the gateway's modules pass to `Problem::new`, read from their source: the
    /// first string literal after each call's opening parenthesis.
    fn codes_in_source() -> BTreeSet<String> {
        // Every module but this one.
        let sources = [
            include_str!("body.rs"),
            include_str!("deadline.rs"),
            include_str!("exchange.rs"),
            include_str!("filter.rs"),
            include_str!("indexes.rs"),
            include_str!("lib.rs"),
            include_str!("limits.rs"),
            include_str!("metrics.rs"),
            include_str!("serve.rs"),
            include_str!("snapshot.rs"),
            include_str!("tls.rs"),
            include_str!("video.rs"),
        ];
        let mut codes = BTreeSet::new();
        for source in sources {
            for call in source.split("Problem::new(").skip(1) {
                let code = call.split('"').nth(1).expect("a code after Problem::new(");
                codes.insert(code.to_owned());
            }
        }
        codes
    }

    /// Every code the gateway answers with is documented at `/docs/problems` (`Problem::new`
    /// also checks its status in debug builds), and every code documented for the gateway is
    /// one it answers with.
    #[test]
    fn the_gateways_codes_are_the_documented_ones() {
        let documented: BTreeSet<String> = PROBLEM_TYPES
            .iter()
            .filter(|known| known.listener != Listener::Api)
            .map(|known| known.code.to_owned())
            .collect();
        assert_eq!(codes_in_source(), documented);
    }
}
