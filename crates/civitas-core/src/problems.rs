//! The problem types civitas answers with: every stable `code` of an RFC 9457 problem document,
//! the status it comes with and what it means. A problem's `type` is `/docs/problems#CODE`; the
//! API and the gateway both serve [`page`] at `/docs/problems`, so that the link resolves on
//! whichever listener gave the answer.

/// Which listener gives a problem type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    Api,
    Gateway,
    Both,
}

/// One problem type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProblemType {
    pub code: &'static str,
    /// The HTTP status; `None` when the answer keeps the provider's status.
    pub status: Option<u16>,
    pub listener: Listener,
    /// What happened and what the caller can do about it.
    pub meaning: &'static str,
}

const fn problem(
    code: &'static str,
    status: u16,
    listener: Listener,
    meaning: &'static str,
) -> ProblemType {
    ProblemType {
        code,
        status: Some(status),
        listener,
        meaning,
    }
}

use Listener::{Api, Both, Gateway};

/// Every problem type, in the order the page lists them.
pub const PROBLEM_TYPES: &[ProblemType] = &[
    problem(
        "unauthenticated",
        401,
        Both,
        "No valid credentials came with the request. The API takes a user's or system's API key \
         as `Authorization: Bearer KEY`; the gateway takes a system's API key the same way, or \
         the system's client certificate on a listener that serves mutual TLS. A revoked or \
         expired key or certificate, or one of a deactivated system or user, is not valid.",
    ),
    problem(
        "invalid_credentials",
        401,
        Api,
        "The user name or password given to `POST /api/v1/login` is wrong.",
    ),
    problem(
        "forbidden",
        403,
        Api,
        "The caller's role or organization does not allow this action on this target. `detail` \
         names the action.",
    ),
    problem("not_found", 404, Api, "The named object does not exist."),
    problem(
        "no_route",
        404,
        Both,
        "No endpoint has this path. Gateway paths are `/x/ORG/SYSTEM/SERVICE/…`.",
    ),
    problem(
        "method_not_allowed",
        405,
        Both,
        "The endpoint, or the gateway service, does not take this method; `Allow` or `detail` \
         says which it takes.",
    ),
    problem(
        "duplicate",
        409,
        Api,
        "An object with this identifier exists already.",
    ),
    problem(
        "conflict",
        409,
        Api,
        "The change contradicts the object's current state (for example, deciding an \
         application that was decided already).",
    ),
    problem(
        "precondition_failed",
        412,
        Api,
        "`If-Match` does not name the object's current version: someone changed it since it was \
         read. Read it again and reapply the change.",
    ),
    problem(
        "invalid_field",
        422,
        Api,
        "A value breaks a rule; `field` names the input field and `detail` the rule.",
    ),
    problem(
        "malformed_json",
        400,
        Api,
        "The body is not JSON of the expected shape; `detail` says where reading stopped.",
    ),
    problem(
        "search_syntax",
        400,
        Api,
        "The search query or filter cannot be read; `detail` names the clause.",
    ),
    problem(
        "unsupported_media_type",
        415,
        Api,
        "The body must be sent as `application/json`.",
    ),
    problem(
        "payload_too_large",
        413,
        Api,
        "The body is larger than the endpoint takes.",
    ),
    problem(
        "unavailable",
        503,
        Both,
        "The store or another part the answer needs is unavailable for the moment; try again.",
    ),
    problem(
        "internal",
        500,
        Both,
        "Something went wrong inside civitas. The details are in the node's log, never in the \
         answer.",
    ),
    problem(
        "uri_too_long",
        414,
        Gateway,
        "The request's path and query are longer than the gateway takes (8 KiB), since its \
         exchange record could not hold them. Not recorded.",
    ),
    problem(
        "no_service",
        404,
        Gateway,
        "No active service has this name (`ORG/SYSTEM/SERVICE`), or the camera has no video \
         resource of that system. Not recorded: there is no service to record it against.",
    ),
    problem(
        "path_not_allowed",
        404,
        Gateway,
        "The service exists but does not offer this path: it is outside the path patterns its \
         provider registered. Recorded as a refusal.",
    ),
    problem(
        "bad_path",
        400,
        Gateway,
        "The path has dot segments or encoded slashes that could lead outside the service, or \
         cannot be forwarded. Recorded as a refusal.",
    ),
    problem(
        "bad_header",
        400,
        Gateway,
        "A `civitas-` request header cannot be read: `civitas-items` must be a comma-separated \
         list of item codes, and `civitas-bulk-rows` one whole number of rows, given once. \
         Recorded as a refusal.",
    ),
    problem(
        "denied",
        403,
        Gateway,
        "The access decision refused the call: no grant covers the calling system, resource and \
         purpose, the grant was revoked or has expired, or a platform policy forbids it. A \
         platform policy that cannot be evaluated (one that fails, or a stored one that no \
         longer parses after an upgrade) refuses too, as `policy_failed`, until a platform admin \
         fixes or deactivates it. `rule` names what decided (`policy:` and the id for a policy). \
         Recorded as a refusal.",
    ),
    problem(
        "rate_limited",
        429,
        Gateway,
        "The grant's requests per second are used up; `Retry-After` says when to try again. \
         Recorded as a refusal.",
    ),
    problem(
        "quota_exhausted",
        429,
        Gateway,
        "The grant's calls per day are used up; `Retry-After` is the time to the node's local \
         midnight. Recorded as a refusal.",
    ),
    problem(
        "circuit_open",
        503,
        Gateway,
        "The service's upstream failed repeatedly, so calls fail fast until a probe call \
         succeeds; `Retry-After` says when the next probe may go. Recorded, and not counted \
         against the grant's rate or quota.",
    ),
    problem(
        "upstream_refused",
        502,
        Gateway,
        "The provider's upstream could not be reached (connection refused or reset, TLS \
         failure). Recorded.",
    ),
    problem(
        "upstream_timeout",
        504,
        Gateway,
        "The provider's upstream did not answer, or did not send its whole JSON answer, within \
         the service's time limit. Recorded.",
    ),
    problem(
        "upstream_body",
        502,
        Gateway,
        "The upstream's JSON answer could not be read whole for filtering: it broke off, or is \
         larger than the gateway filters. Recorded.",
    ),
    problem(
        "upstream_malformed_json",
        502,
        Gateway,
        "The upstream declared JSON but sent something else, so it could not be filtered to \
         the granted items and nothing of it was delivered. Recorded.",
    ),
    problem(
        "unfilterable_answer",
        502,
        Gateway,
        "The upstream answered successfully in a format other than JSON, and the grant does not \
         deliver every item of the resource as it is, so the answer cannot be filtered and was \
         not delivered. Recorded.",
    ),
    ProblemType {
        code: "upstream_body_withheld",
        status: None,
        listener: Gateway,
        meaning: "The upstream answered with an error status in a format other than JSON, and \
                  the grant does not deliver every item as it is: its status and headers are \
                  passed on, and its body, which could echo personal data, is replaced by this \
                  document. It is the provider's answer, not a refusal, so it has no \
                  `Civitas-Refusal` header. Recorded.",
    },
    problem(
        "ledger_unavailable",
        503,
        Gateway,
        "The ledger refuses appends after a failed write or sync, and no call is answered \
         without its durable record. `/readyz` answers 503 too until the node is restarted.",
    ),
    problem(
        "store_handed_over",
        503,
        Gateway,
        "The store was handed over to another node's ledger (`civitas ledger adopt-store`) \
         while this node ran. It answers no call, since the store's personal-data access \
         index would miss what its calls delivered, and `/readyz` answers 503 on both \
         listeners. Stop the node: it will not start on that store again.",
    ),
];

/// The problem type of `code`.
pub fn find(code: &str) -> Option<&'static ProblemType> {
    PROBLEM_TYPES.iter().find(|problem| problem.code == code)
}

/// `/docs/problems`: every problem type as an HTML page, one table row per type with the code as
/// its anchor.
pub fn page() -> String {
    let mut html = String::from(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>civitas problem types</title>\n<style>\
         body{font-family:sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}\
         td,th{vertical-align:top;text-align:left;padding:.3rem .6rem;border-bottom:1px solid #ddd}\
         code{white-space:nowrap}:target{background:#fff3c4}</style>\n</head>\n<body>\n\
         <h1>Problem types</h1>\n<p>Errors are RFC 9457 <code>application/problem+json</code> \
         documents. Their <code>code</code> is stable; <code>type</code> links to its row here. \
         Answers the gateway gives itself also carry the code in <code>Civitas-Refusal</code>.\
         </p>\n<table>\n<tr><th>code</th><th>status</th><th>given by</th><th>meaning</th></tr>\n",
    );
    for problem in PROBLEM_TYPES {
        let status = problem
            .status
            .map_or_else(|| "the provider's".to_owned(), |status| status.to_string());
        let listener = match problem.listener {
            Listener::Api => "API",
            Listener::Gateway => "gateway",
            Listener::Both => "API, gateway",
        };
        html.push_str(&format!(
            "<tr id=\"{code}\"><td><code>{code}</code></td><td>{status}</td><td>{listener}</td>\
             <td>{meaning}</td></tr>\n",
            code = problem.code,
            meaning = code_spans(problem.meaning),
        ));
    }
    html.push_str("</table>\n</body>\n</html>\n");
    html
}

/// The meaning's `backticked` words as `<code>` elements. Meanings are this module's own text,
/// written without `<`, `>` or `&`.
fn code_spans(text: &str) -> String {
    let mut html = String::with_capacity(text.len() + 32);
    for (index, part) in text.split('`').enumerate() {
        if index % 2 == 1 {
            html.push_str("<code>");
            html.push_str(part);
            html.push_str("</code>");
        } else {
            html.push_str(part);
        }
    }
    html
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn codes_are_unique_snake_case_and_meanings_are_safe_html() {
        let mut seen = BTreeSet::new();
        for problem in PROBLEM_TYPES {
            assert!(seen.insert(problem.code), "{} twice", problem.code);
            assert!(
                problem
                    .code
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{}",
                problem.code
            );
            assert!(
                !problem.meaning.contains(['<', '>', '&']),
                "{}",
                problem.code
            );
            assert_eq!(
                problem.meaning.matches('`').count() % 2,
                0,
                "{}: unbalanced backticks",
                problem.code
            );
            if let Some(status) = problem.status {
                assert!((400..600).contains(&status), "{}", problem.code);
            }
        }
    }

    #[test]
    fn the_page_has_an_anchor_for_every_code() {
        let page = page();
        for problem in PROBLEM_TYPES {
            assert!(
                page.contains(&format!("<tr id=\"{}\">", problem.code)),
                "{}",
                problem.code
            );
        }
        assert!(page.contains("<code>Retry-After</code>"));
        assert_eq!(find("denied").and_then(|p| p.status), Some(403));
        assert_eq!(find("no_such_code"), None);
    }
}
