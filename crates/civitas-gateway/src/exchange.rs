//! One call through the gateway, in order: route, decide, limit, forward, filter, record durably,
//! answer. Every outcome, refusals and upstream failures included, ends in an exchange record.

use std::{
    collections::BTreeSet,
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use civitas_access::{
    decide,
    decision::{ConsumerFacts, Decision, DecisionRequest, LocalTime, ResourceFacts},
};
use civitas_core::{CitizenId, access::SystemRef};
use civitas_ledger::record::{self, Decision as RecordDecision, ExchangeRecord, Sha256Digest};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use hyper::body::{Body as _, Incoming};
use jiff::Timestamp;

use crate::{
    BULK_ROWS_HEADER, CONSUMER_HEADER, Caller, EXCHANGE_ID_HEADER, Gateway, ITEMS_HEADER,
    RECEIPT_HEADER,
    body::{self, GatewayBody, TallyBody, full, sha256},
    deadline,
    filter::Treatment,
    limits::Admission,
    metrics::ExchangeLabels,
    problem::Problem,
    snapshot::CompiledService,
    thread_own,
};

/// What one exchange did, for its ledger record.
pub(crate) struct Exchange {
    pub(crate) id: String,
    pub(crate) started: Instant,
    pub(crate) at: Timestamp,
    pub(crate) consumer: SystemRef,
    pub(crate) service: Arc<CompiledService>,
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) grant: Option<String>,
    pub(crate) rule: Option<String>,
    pub(crate) allowed: bool,
    pub(crate) request_bytes: u64,
    pub(crate) request_sha256: [u8; 32],
    pub(crate) items: BTreeSet<String>,
    pub(crate) masked: BTreeSet<String>,
    /// An internal call ([`Gateway::call_as`]): the record need only be in order when the call
    /// answers, since its caller's own durable record follows it.
    pub(crate) durable_later: bool,
    /// The citizen ID numbers the exchange concerns, in plaintext: only their keyed hashes are
    /// recorded ([`Gateway::exchange_record`]), each computed once.
    pub(crate) subjects: BTreeSet<String>,
}

impl Exchange {
    /// An exchange that has decided nothing yet, at the current time, with a new id.
    pub(crate) fn begin(
        consumer: &SystemRef,
        service: Arc<CompiledService>,
        method: &str,
        path: String,
        started: Instant,
        durable_later: bool,
    ) -> Exchange {
        Exchange {
            id: new_exchange_id(),
            started,
            at: Timestamp::now(),
            consumer: consumer.clone(),
            service,
            method: method.to_owned(),
            path,
            grant: None,
            rule: None,
            allowed: false,
            request_bytes: 0,
            request_sha256: empty_sha256(),
            items: BTreeSet::new(),
            masked: BTreeSet::new(),
            durable_later,
            subjects: BTreeSet::new(),
        }
    }
}

fn empty_sha256() -> [u8; 32] {
    static EMPTY: std::sync::LazyLock<[u8; 32]> = std::sync::LazyLock::new(|| sha256(&[]));
    *EMPTY
}

/// A new exchange id: a time-ordered UUID (version 7) whose 74 random bits come from a
/// per-thread SplitMix64 sequence seeded by the operating system, so that an id costs no system
/// call. Ids name exchanges; they are not secrets.
fn new_exchange_id() -> String {
    thread_local! {
        static STATE: std::cell::Cell<u64> = std::cell::Cell::new({
            let mut seed = [0; 8];
            getrandom::fill(&mut seed).expect("the operating system provides randomness");
            u64::from_le_bytes(seed)
        });
    }
    fn next(state: &std::cell::Cell<u64>) -> u64 {
        let mut z = state.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
        state.set(z);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    let (first, second) = STATE.with(|state| (next(state), next(state)));
    let mut random = [0; 10];
    random[..8].copy_from_slice(&first.to_le_bytes());
    random[8..].copy_from_slice(&second.to_le_bytes()[..2]);
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64);
    uuid::Builder::from_unix_timestamp_millis(millis, &random)
        .into_uuid()
        .to_string()
}

/// Replaces every valid citizen ID number in `text` (a path with its query, as sent) by its
/// masked form, so that paths and queries recorded in the ledger carry no plaintext ID numbers.
/// The text is percent-decoded first, so an encoded separator such as `%2C` cannot hide the ID
/// number next to it; the record holds the decoded text. Tokens are runs of ASCII letters and
/// digits; only those of an ID number's length are parsed.
fn redact_citizen_ids(text: &str, found: &mut BTreeSet<String>) -> String {
    let decoded = percent_encoding::percent_decode_str(text).decode_utf8_lossy();
    let mut out = String::with_capacity(decoded.len());
    let mut rest = decoded.as_ref();
    while !rest.is_empty() {
        let token_end = rest
            .find(|character: char| !character.is_ascii_alphanumeric())
            .unwrap_or(rest.len());
        let (token, after) = rest.split_at(token_end);
        match (token.len() == 18).then(|| CitizenId::parse(token)) {
            Some(Ok(id)) => {
                out.push_str(&civitas_access::mask::mask_citizen_id(id.as_str()));
                if !found.contains(id.as_str()) {
                    found.insert(id.as_str().to_owned());
                }
            }
            _ => out.push_str(token),
        }
        let separators_end = after
            .find(|character: char| character.is_ascii_alphanumeric())
            .unwrap_or(after.len());
        out.push_str(&after[..separators_end]);
        rest = &after[separators_end..];
    }
    out
}

/// The items a call asks for in `civitas-items` (a comma-separated list, which may be split over
/// several header lines); `None` for a call without the header, which asks for every granted item.
/// A value that is not text is refused rather than read as no header, which would deliver more
/// than the consumer asked for.
fn requested_items(headers: &HeaderMap) -> Result<Option<Vec<String>>, Problem> {
    let mut items: Option<Vec<String>> = None;
    for value in headers.get_all(ITEMS_HEADER) {
        let text = value.to_str().map_err(|_| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "bad_header",
                format!(
                    "the {ITEMS_HEADER} header must be a comma-separated list of item codes in \
                     visible ASCII"
                ),
            )
        })?;
        items.get_or_insert_with(Vec::new).extend(
            text.split(',')
                .map(str::trim)
                .filter(|item| !item.is_empty())
                .map(str::to_owned),
        );
    }
    Ok(items)
}

/// The rows a bulk read announces in `civitas-bulk-rows`; `None` for a call without the header.
/// A value that is not one whole number is refused rather than read as no header: that would
/// make a bulk read an ordinary call, out of reach of the policies that limit bulk reads.
fn bulk_rows(headers: &HeaderMap) -> Result<Option<u64>, Problem> {
    let mut values = headers.get_all(BULK_ROWS_HEADER).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let rows = value
        .to_str()
        .ok()
        .filter(|text| !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit()))
        .and_then(|text| text.parse::<u64>().ok());
    match (rows, values.next()) {
        (Some(rows), None) => Ok(Some(rows)),
        _ => Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "bad_header",
            format!(
                "the {BULK_ROWS_HEADER} header must be given once, as a whole number of rows \
                 (0 to {})",
                u64::MAX
            ),
        )),
    }
}

/// The longest path and query a call may have, as nginx's default buffers for a request line:
/// a call's record holds its path, and a record is at most 64 KiB.
const MAX_TARGET_BYTES: usize = 8 * 1024;

impl Gateway {
    /// The whole pipeline for one call.
    pub async fn handle(
        &self,
        caller: Caller,
        request: Request<GatewayBody>,
    ) -> Response<GatewayBody> {
        let started = Instant::now();
        let (parts, request_body) = request.into_parts();
        let path = parts.uri.path().to_owned();
        let query = parts.uri.query().map(str::to_owned);
        let Some(rest) = path.strip_prefix("/x/") else {
            if let Some(answer) = self.probe(&parts.method, &path) {
                return answer;
            }
            return Problem::new(
                StatusCode::NOT_FOUND,
                "no_route",
                format!("gateway paths are /x/ORG/SYSTEM/SERVICE/…, not {path}"),
            )
            .response(None);
        };
        if let Some(why) = self.handed_over() {
            // Not recorded, as with a ledger that refuses appends: the node is out of service.
            return Problem::new(StatusCode::SERVICE_UNAVAILABLE, "store_handed_over", why)
                .response(None);
        }
        let target = parts
            .uri
            .path_and_query()
            .map_or(0, |target| target.as_str().len());
        if target > MAX_TARGET_BYTES {
            // Refused before a service is chosen, like an unknown one, so not recorded: its
            // record could not hold the path.
            return Problem::new(
                StatusCode::URI_TOO_LONG,
                "uri_too_long",
                format!(
                    "the request's path and query are {target} bytes; the gateway takes at most \
                     {MAX_TARGET_BYTES}"
                ),
            )
            .response(None);
        }
        let mut segments = rest.splitn(4, '/');
        let (Some(organization), Some(system), Some(service_code)) =
            (segments.next(), segments.next(), segments.next())
        else {
            return Problem::new(
                StatusCode::NOT_FOUND,
                "no_route",
                "gateway paths are /x/ORG/SYSTEM/SERVICE/…",
            )
            .response(None);
        };
        let service_path = format!("/{}", segments.next().unwrap_or(""));
        // An internal call's record need only be in order (see `call_as`).
        let durable_later = matches!(caller, Caller::Internal(_));
        let consumer = match self.authenticate(&caller, &parts.headers) {
            Ok(consumer) => consumer,
            Err(problem) => {
                let mut response = problem.response(None);
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
                return response;
            }
        };
        if service_code == "video"
            && parts.method == Method::POST
            && let Some(device) = service_path
                .strip_prefix('/')
                .and_then(|p| p.strip_suffix("/play"))
        {
            return self
                .play(
                    consumer,
                    organization,
                    system,
                    device,
                    started,
                    durable_later,
                )
                .await;
        }
        // `{org}/{system}/{code}`, the service's name, as the path spells it.
        let service_name = &rest[..organization.len() + system.len() + service_code.len() + 2];
        let Some(service) = self
            .inner
            .snapshot
            .read()
            .expect("snapshot lock")
            .service_named(service_name)
        else {
            return Problem::new(
                StatusCode::NOT_FOUND,
                "no_service",
                format!("no active service {organization}/{system}/{service_code}"),
            )
            .response(None);
        };
        let mut subjects_plain = BTreeSet::new();
        let recorded_path = match &query {
            Some(query) => {
                redact_citizen_ids(&format!("{service_path}?{query}"), &mut subjects_plain)
            }
            None => redact_citizen_ids(&service_path, &mut subjects_plain),
        };
        let mut exchange = Exchange::begin(
            &consumer,
            service.clone(),
            parts.method.as_str(),
            recorded_path,
            started,
            durable_later,
        );
        exchange.subjects = subjects_plain;

        if !service.allows_method(parts.method.as_str()) {
            let problem = Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("{} does not allow {}", service.name, parts.method),
            );
            return self.refuse_for(exchange, problem).await;
        }
        if let Some(segment) = traversing_segment(&service_path) {
            let problem = Problem::new(
                StatusCode::BAD_REQUEST,
                "bad_path",
                format!(
                    "the path segment {segment:?} could lead outside {}; dot segments and \
                     encoded slashes are refused",
                    service.name
                ),
            );
            return self.refuse_for(exchange, problem).await;
        }
        if !service.allows_path(&service_path) {
            let problem = Problem::new(
                StatusCode::NOT_FOUND,
                "path_not_allowed",
                format!("{} offers no {service_path}", service.name),
            );
            return self.refuse_for(exchange, problem).await;
        }

        // Decide.
        let now = exchange.at;
        let requested_items = match requested_items(&parts.headers) {
            Ok(items) => items,
            Err(problem) => return self.refuse_for(exchange, problem).await,
        };
        let expected_rows = match bulk_rows(&parts.headers) {
            Ok(rows) => rows,
            Err(problem) => return self.refuse_for(exchange, problem).await,
        };
        let Some(decision) = self.decide_for(
            &consumer,
            service.resource.clone(),
            requested_items,
            expected_rows,
            now,
        ) else {
            return self.refuse_unknown_consumer(exchange).await;
        };
        let (grant_id, deliver, mask) = match decision {
            Decision::Deny { reason, rule } => {
                let what = format!("read {}", service.resource.code);
                return self.refuse_denied(exchange, &what, &reason, rule).await;
            }
            Decision::Allow {
                grant_id,
                rule,
                deliver,
                mask,
                ..
            } => {
                exchange.grant = Some(grant_id.clone());
                exchange.rule = Some(rule);
                (grant_id, deliver, mask)
            }
        };

        // A service whose circuit is open fails fast before the call counts against the
        // grant's rate and daily quota: retries during an outage do not use up a day's calls.
        if let Some(wait) =
            self.inner
                .breakers
                .open_for(&service.name, &service.upstream, Instant::now())
        {
            return self.circuit_open(exchange, &service, wait).await;
        }

        // The grant's rate and daily quota.
        if let Err((rule, problem)) = self.within_limits(&grant_id) {
            exchange.rule = Some(rule);
            return self.refuse(exchange, problem).await;
        }
        exchange.allowed = true;

        // The circuit breaker: this call may be the probe of a circuit whose open period is
        // over (or, rarely, find it opened since the look above).
        let admission = self
            .inner
            .breakers
            .admit(&service.name, &service.upstream, Instant::now());
        if let Admission::Open(wait) = admission {
            exchange.allowed = false;
            return self.circuit_open(exchange, &service, wait).await;
        }

        // Forward.
        let upstream_path = match &query {
            Some(query) => format!("{service_path}?{query}"),
            None => service_path.clone(),
        };
        let uri = match service.upstream_uri(&upstream_path) {
            Ok(uri) => uri,
            Err(error) => {
                exchange.allowed = false;
                let problem = Problem::new(StatusCode::BAD_REQUEST, "bad_path", error.to_string());
                return self.refuse_for(exchange, problem).await;
            }
        };
        // A request without a body (most calls are GETs) needs no tally: its size and digest
        // are those of nothing, which the exchange starts with.
        let (upstream_body, request_tally) = if request_body.is_end_stream() {
            (body::empty(), None)
        } else {
            let (tallied, tally) = TallyBody::new(request_body);
            (tallied.boxed_unsync(), Some(tally))
        };
        let mut upstream_request = Request::builder()
            .method(parts.method.clone())
            .uri(uri)
            .body(upstream_body)
            .expect("a valid upstream request");
        let headers = upstream_request.headers_mut();
        for (name, value) in end_to_end(&parts.headers) {
            if *name == header::AUTHORIZATION
                || *name == header::HOST
                || *name == header::ACCEPT_ENCODING
            {
                continue;
            }
            headers.append(name.clone(), value.clone());
        }
        headers.insert(
            CONSUMER_HEADER,
            HeaderValue::from_str(&consumer.to_string()).expect("codes are header values"),
        );
        headers.insert(
            EXCHANGE_ID_HEADER,
            HeaderValue::from_str(&exchange.id).expect("a uuid is a header value"),
        );
        // A JSON answer is filtered as text: it must come uncompressed.
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("identity"),
        );
        let sent = Instant::now();
        let outcome = Self::within(service.timeout, self.send_upstream(upstream_request)).await;
        if let Some(tally) = request_tally {
            let tally = tally.current();
            exchange.request_bytes = tally.bytes;
            exchange.request_sha256 = tally.sha256;
        }
        let upstream_response = match outcome {
            Ok(Ok(response)) => response,
            Ok(Err(error)) => {
                self.inner
                    .breakers
                    .failed(&service.name, &service.upstream, Instant::now());
                let problem = Problem::new(
                    StatusCode::BAD_GATEWAY,
                    "upstream_refused",
                    format!("{} could not be reached: {error}", service.name),
                );
                return self.refuse_for(exchange, problem).await;
            }
            Err(deadline::Elapsed) => return self.timed_out(exchange, &service).await,
        };
        if upstream_response.status().is_server_error() {
            self.inner
                .breakers
                .failed(&service.name, &service.upstream, Instant::now());
        } else {
            self.inner.breakers.succeeded(&service.name);
        }
        let (upstream_parts, upstream_body) = upstream_response.into_parts();
        let is_json = upstream_parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| {
                let mime = value.split(';').next().unwrap_or("").trim();
                mime == "application/json" || mime.ends_with("+json")
            });
        let treatment_of = |item: &str| -> Treatment {
            if let Some(masked) = mask.iter().find(|masked| masked.code == item) {
                Treatment::Mask(masked.kind)
            } else if deliver.iter().any(|delivered| delivered == item) {
                Treatment::Deliver
            } else {
                Treatment::Drop
            }
        };
        if is_json {
            // The whole answer must arrive within the service's time limit.
            let limited =
                http_body_util::Limited::new(upstream_body, self.inner.config.max_json_bytes);
            let left = service.timeout.saturating_sub(sent.elapsed());
            let bytes = match Self::within(left, limited.collect()).await {
                Ok(Ok(collected)) => collected.to_bytes(),
                Err(deadline::Elapsed) => return self.timed_out(exchange, &service).await,
                Ok(Err(error)) => {
                    let problem = Problem::new(
                        StatusCode::BAD_GATEWAY,
                        "upstream_body",
                        format!(
                            "{}'s answer could not be read whole for filtering: {error}",
                            service.name
                        ),
                    );
                    return self.refuse_for(exchange, problem).await;
                }
            };
            let delivered_body = if bytes.is_empty() {
                bytes
            } else {
                let filtered = service.tree.filter_json(&bytes, &treatment_of, &|item| {
                    service.citizen_id_items.contains(item)
                });
                let (filtered, delivered) = match filtered {
                    Ok(filtered) => filtered,
                    Err(error) => {
                        let problem = Problem::new(
                            StatusCode::BAD_GATEWAY,
                            "upstream_malformed_json",
                            format!("{} answered malformed JSON: {error}", service.name),
                        );
                        return self.refuse_for(exchange, problem).await;
                    }
                };
                exchange.items = delivered.items;
                exchange.masked = delivered.masked;
                exchange.subjects.extend(delivered.citizen_ids);
                Bytes::from(filtered)
            };
            let mut response = Response::new(full(delivered_body.clone()));
            *response.status_mut() = upstream_parts.status;
            copy_end_to_end_headers(&upstream_parts.headers, response.headers_mut());
            response.headers_mut().remove(header::CONTENT_LENGTH);
            return self
                .complete(
                    exchange,
                    response,
                    delivered_body.len() as u64,
                    sha256(&delivered_body),
                )
                .await;
        }

        // A non-JSON answer cannot be filtered field by field: it passes only when the grant
        // delivers every item of the resource as it is.
        let unfilterable = service
            .resource
            .items
            .iter()
            .any(|item| treatment_of(&item.code) != Treatment::Deliver);
        if unfilterable && upstream_parts.status.is_success() {
            exchange.allowed = false;
            let problem = Problem::new(
                StatusCode::BAD_GATEWAY,
                "unfilterable_answer",
                format!(
                    "{} answered in a format that cannot be filtered to the granted items",
                    service.name
                ),
            );
            return self.refuse_for(exchange, problem).await;
        }
        // An error answer (a 404 page, say) delivers none of the resource's items, but its body
        // could still hold personal data (an error page echoing the record it failed on): when
        // the grant does not deliver every item as it is, the provider's status and headers pass
        // and its body is withheld. This is the provider's answer, not a refusal: it carries no
        // `Civitas-Refusal`, so a 404 still reads as the provider's "not found".
        if unfilterable && !upstream_body.is_end_stream() {
            drop(upstream_body);
            let problem = Problem::new(
                upstream_parts.status,
                "upstream_body_withheld",
                format!(
                    "{} answered {} in a format that cannot be filtered to the granted items, so \
                     the gateway withholds its body",
                    service.name, upstream_parts.status
                ),
            );
            let body = problem.body(None);
            let mut response = Response::new(full(body.clone()));
            *response.status_mut() = upstream_parts.status;
            copy_end_to_end_headers(&upstream_parts.headers, response.headers_mut());
            let headers = response.headers_mut();
            headers.remove(header::CONTENT_LENGTH);
            headers.remove(header::CONTENT_ENCODING);
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/problem+json"),
            );
            let digest = sha256(&body);
            return self
                .complete(exchange, response, body.len() as u64, digest)
                .await;
        }
        // A successful answer delivers the resource's items; an error answer whose grant delivers
        // every item as it is passes as the upstream sent it, but delivers none of them.
        if upstream_parts.status.is_success() {
            exchange.items = service
                .resource
                .items
                .iter()
                .map(|item| item.code.clone())
                .collect();
        }
        self.stream(exchange, upstream_parts, upstream_body).await
    }

    /// `GET /healthz` (the gateway is up) and `GET /readyz` (it can answer calls: its ledger
    /// takes appends and the store is still its ledger's; damage the ledger scrub found is
    /// named in the body) on the gateway's own
    /// listener, for the load balancer in front of it, and
    /// `GET /docs/problems`, where the `type` of the gateway's problem documents points; `None`
    /// for any other path. None of them is an exchange, so none is recorded.
    fn probe(&self, method: &Method, path: &str) -> Option<Response<GatewayBody>> {
        if path != "/healthz" && path != "/readyz" && path != "/docs/problems" {
            return None;
        }
        if method != Method::GET && method != Method::HEAD {
            let mut response = Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("{path} answers GET and HEAD, not {method}"),
            )
            .response(None);
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return Some(response);
        }
        if path == "/readyz"
            && let Some(failure) = self.inner.ledger.failure()
        {
            return Some(
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ledger_unavailable",
                    format!("the ledger refuses appends, so no call can be answered: {failure}"),
                )
                .response(None),
            );
        }
        if path == "/readyz"
            && let Some(why) = self.handed_over()
        {
            return Some(
                Problem::new(StatusCode::SERVICE_UNAVAILABLE, "store_handed_over", why)
                    .response(None),
            );
        }
        if path == "/docs/problems" {
            let mut response = Response::new(full(Bytes::from(civitas_core::problems::page())));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            return Some(response);
        }
        let text = if path == "/healthz" {
            "ok\n".to_owned()
        } else {
            // As on the API's listener: damage the ledger scrub found in old records is named,
            // but the gateway stays ready, since it still records every new exchange.
            let notice = self
                .inner
                .ledger
                .scrub_status()
                .and_then(|status| status.damage_notice());
            format!("ready\n{}", notice.unwrap_or_default())
        };
        let mut response = Response::new(full(Bytes::from(text)));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        Some(response)
    }

    /// The access decision for `consumer` on `resource` at `now`, from the grants and policies
    /// in memory; `None` when the consumer's organization is unknown. `expected_rows` makes the
    /// call a bulk read.
    pub(crate) fn decide_for(
        &self,
        consumer: &SystemRef,
        resource: ResourceFacts,
        requested_items: Option<Vec<String>>,
        expected_rows: Option<u64>,
        now: Timestamp,
    ) -> Option<Decision> {
        let snapshot = self.inner.snapshot.read().expect("snapshot lock");
        let organization = snapshot.organizations.get(&consumer.organization)?;
        let request = DecisionRequest {
            consumer: ConsumerFacts {
                system: consumer.clone(),
                region: organization.region,
                level: organization.level,
            },
            resource,
            requested_items,
            at: now,
            local_time: LocalTime::at_offset(now, self.inner.config.utc_offset),
            bulk: expected_rows.is_some(),
            expected_rows: expected_rows.unwrap_or(0),
        };
        Some(decide(&request, &snapshot.grants, &snapshot.policies))
    }

    /// Refuses (and records) a call from a system whose organization the node does not know.
    pub(crate) async fn refuse_unknown_consumer(
        &self,
        mut exchange: Exchange,
    ) -> Response<GatewayBody> {
        exchange.rule = Some("unknown_consumer".into());
        let problem = Problem::new(
            StatusCode::FORBIDDEN,
            "denied",
            "the calling system's organization is unknown",
        );
        self.refuse(exchange, problem).await
    }

    /// Refuses (and records) a call the decision denied: 403 naming what the consumer may not
    /// do (`what`, such as "read 320100-B01-000001"), why, and the rule that decided.
    pub(crate) async fn refuse_denied(
        &self,
        mut exchange: Exchange,
        what: &str,
        reason: &civitas_access::DenyReason,
        rule: String,
    ) -> Response<GatewayBody> {
        let mut detail = format!(
            "{} may not {what} ({reason}, decided by {rule})",
            exchange.consumer
        );
        if *reason == civitas_access::DenyReason::PolicyFailed {
            // Refused for a fault of the platform, not of the call: say who can mend it.
            let policy = rule.strip_prefix("policy:").unwrap_or(&rule);
            detail.push_str(&format!(
                "; platform policy {policy} cannot be evaluated, so exchanges it decides are \
                 refused until a platform admin fixes or deactivates it"
            ));
        }
        let problem = Problem::new(StatusCode::FORBIDDEN, "denied", detail);
        exchange.rule = Some(rule);
        self.refuse(exchange, problem).await
    }

    /// Appends an exchange's record before its answer: durably, or for an internal call only in
    /// order (see [`Gateway::call_as`]).
    async fn append_record(
        &self,
        exchange: &Exchange,
        record: ExchangeRecord,
    ) -> civitas_ledger::Result<u64> {
        let mut records = record::encode_exchange(record);
        let ledger = &self.inner.ledger;
        let started = Instant::now();
        let appended = if records.len() > 1 {
            // An answer about more people than one record lists (rare): its records go in one
            // durable write.
            ledger.append_batch(records).await.map(|range| range.start)
        } else {
            let bytes = records.pop().expect("an exchange's record");
            match (
                thread_own(|own| own.completions.clone()),
                exchange.durable_later,
            ) {
                (Some(via), false) => ledger.append_via(&via, bytes).await,
                (Some(via), true) => ledger.append_ordered_via(&via, bytes).await,
                (None, false) => ledger.append(bytes).await,
                (None, true) => ledger.append_ordered(bytes).await,
            }
        };
        self.inner
            .metrics
            .ledger_waits
            .observe(started.elapsed().as_secs_f64());
        appended
    }

    /// The service's circuit is open: 503 with the time until calls may try again, recorded.
    async fn circuit_open(
        &self,
        exchange: Exchange,
        service: &CompiledService,
        wait: Duration,
    ) -> Response<GatewayBody> {
        let mut problem = Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "circuit_open",
            format!(
                "{} failed repeatedly; calls fail fast until a probe succeeds",
                service.name
            ),
        );
        problem.retry_after = Some(wait);
        self.refuse_for(exchange, problem).await
    }

    /// The upstream did not answer whole within the service's time limit: 504, recorded.
    async fn timed_out(
        &self,
        exchange: Exchange,
        service: &CompiledService,
    ) -> Response<GatewayBody> {
        self.inner
            .breakers
            .failed(&service.name, &service.upstream, Instant::now());
        let problem = Problem::new(
            StatusCode::GATEWAY_TIMEOUT,
            "upstream_timeout",
            format!(
                "{} did not answer within {} ms",
                service.name,
                service.timeout.as_millis()
            ),
        );
        self.refuse_for(exchange, problem).await
    }

    /// Refuses (and records) a call whose rule is the problem's own code: `bad_path`,
    /// `upstream_refused` and the like.
    pub(crate) async fn refuse_for(
        &self,
        mut exchange: Exchange,
        problem: Problem,
    ) -> Response<GatewayBody> {
        exchange.rule = Some(problem.code.into());
        self.refuse(exchange, problem).await
    }

    /// Records a refusal (or failure) in the ledger and answers with the problem.
    pub(crate) async fn refuse(
        &self,
        mut exchange: Exchange,
        problem: Problem,
    ) -> Response<GatewayBody> {
        exchange.allowed = exchange.allowed && problem.status.is_success();
        let body = problem.body(exchange.rule.as_deref());
        let digest = sha256(&body);
        let mut response = problem.response(exchange.rule.as_deref());
        *response.body_mut() = full(body.clone());
        self.complete(exchange, response, body.len() as u64, digest)
            .await
    }

    /// Appends the exchange record, waits for it to be durable (for an internal call, only in
    /// order), and answers.
    pub(crate) async fn complete(
        &self,
        mut exchange: Exchange,
        mut response: Response<GatewayBody>,
        response_bytes: u64,
        response_sha256: [u8; 32],
    ) -> Response<GatewayBody> {
        let status = response.status();
        let record =
            self.exchange_record(&mut exchange, status, response_bytes, response_sha256, None);
        let index = match self.append_record(&exchange, record).await {
            Ok(index) => index,
            Err(error) => return ledger_unavailable(&error),
        };
        if let Some(grant) = &exchange.grant
            && exchange.allowed
        {
            self.inner.daily.add_bytes(grant, response_bytes);
        }
        self.observe(&exchange, status, response_bytes);
        let headers = response.headers_mut();
        headers.insert(
            EXCHANGE_ID_HEADER,
            HeaderValue::from_str(&exchange.id).expect("a uuid is a header value"),
        );
        headers.insert(RECEIPT_HEADER, HeaderValue::from(index));
        response
    }

    /// Streams a non-JSON answer: the exchange record (with the request's digest) is made
    /// durable before the answer's headers go out, and a completion record with the answer's
    /// size and digest follows when the body has been sent.
    async fn stream(
        &self,
        mut exchange: Exchange,
        upstream_parts: http::response::Parts,
        upstream_body: Incoming,
    ) -> Response<GatewayBody> {
        let status = upstream_parts.status;
        let opening = self.exchange_record(
            &mut exchange,
            status,
            0,
            empty_sha256(),
            Some("stream_start"),
        );
        let index = match self.append_record(&exchange, opening).await {
            Ok(index) => index,
            Err(error) => return ledger_unavailable(&error),
        };
        let (tallied, tally) = TallyBody::new(upstream_body);
        let mut response = Response::new(http_body_util::BodyExt::boxed_unsync(tallied));
        *response.status_mut() = status;
        copy_end_to_end_headers(&upstream_parts.headers, response.headers_mut());
        response.headers_mut().insert(
            EXCHANGE_ID_HEADER,
            HeaderValue::from_str(&exchange.id).expect("a uuid is a header value"),
        );
        response
            .headers_mut()
            .insert(RECEIPT_HEADER, HeaderValue::from(index));
        let gateway = self.clone();
        // On the runtime the gateway was made on, which outlives the gateway's threads: a
        // completion record still being appended when they stop is not dropped with them.
        self.inner.background.spawn(async move {
            let tally = tally.finished().await;
            let completion = gateway.exchange_record(
                &mut exchange,
                status,
                tally.bytes,
                tally.sha256,
                Some("stream_complete"),
            );
            if let Err(error) = gateway
                .inner
                .ledger
                .append_batch(record::encode_exchange(completion))
                .await
            {
                tracing::error!(%error, exchange = exchange.id, "stream completion record not appended");
            }
            if let Some(grant) = &exchange.grant {
                gateway.inner.daily.add_bytes(grant, tally.bytes);
            }
            gateway.observe(&exchange, status, tally.bytes);
        });
        response
    }

    /// Counts a call against `grant_id`'s rate and daily quota, or says which limit refuses it
    /// (the rule to record and the 429 to answer).
    pub(crate) fn within_limits(&self, grant_id: &str) -> Result<(), (String, Problem)> {
        let (rate, quota) = {
            let snapshot = self.inner.snapshot.read().expect("snapshot lock");
            snapshot
                .grants
                .get(grant_id)
                .map(|grant| (grant.requests_per_second, grant.calls_per_day))
                .unwrap_or((None, None))
        };
        if let Some(rate) = rate
            && let Err(wait) = self.inner.rates.take(grant_id, rate, Instant::now())
        {
            let mut problem = Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("grant {grant_id} allows {rate} requests per second"),
            );
            problem.retry_after = Some(wait);
            return Err((format!("rate_limit:{grant_id}"), problem));
        }
        if !self.with_today(|day| self.inner.daily.admit(grant_id, day, quota)) {
            let local = self.inner.config.utc_offset.to_datetime(Timestamp::now());
            let seconds_left = 86_400
                - (i64::from(local.hour()) * 3600
                    + i64::from(local.minute()) * 60
                    + i64::from(local.second()));
            let mut problem = Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "quota_exhausted",
                format!("grant {grant_id} allows {} calls a day", quota.unwrap_or(0)),
            );
            problem.retry_after = Some(Duration::from_secs(seconds_left.max(1) as u64));
            return Err((format!("quota:{grant_id}"), problem));
        }
        Ok(())
    }

    /// The ledger record of `exchange`. Only keyed hashes of the subjects' ID numbers are
    /// recorded. Without a `phase` the record is the exchange's only one, and takes the
    /// exchange's rule, method, path and items instead of copying them.
    fn exchange_record(
        &self,
        exchange: &mut Exchange,
        status: StatusCode,
        response_bytes: u64,
        response_sha256: [u8; 32],
        phase: Option<&str>,
    ) -> ExchangeRecord {
        let only = phase.is_none();
        let take_or_clone = |text: &mut String| {
            if only {
                std::mem::take(text)
            } else {
                text.clone()
            }
        };
        let rule = match (phase, &mut exchange.rule) {
            (Some(phase), Some(rule)) => Some(format!("{rule};{phase}")),
            (Some(phase), None) => Some(phase.to_owned()),
            (None, rule) => rule.take(),
        };
        let method = take_or_clone(&mut exchange.method);
        let path = take_or_clone(&mut exchange.path);
        let (items, masked) = if only {
            (
                std::mem::take(&mut exchange.items).into_iter().collect(),
                std::mem::take(&mut exchange.masked).into_iter().collect(),
            )
        } else {
            (
                exchange.items.iter().cloned().collect(),
                exchange.masked.iter().cloned().collect(),
            )
        };
        let mut subjects: Vec<String> = exchange
            .subjects
            .iter()
            .map(|id| self.subject_hash(id))
            .collect();
        // The record lists them in order, as a set of hashes.
        subjects.sort_unstable();
        ExchangeRecord {
            at: exchange.at,
            exchange_id: exchange.id.clone(),
            consumer: exchange.consumer.to_string(),
            provider: exchange.service.service.provider.to_string(),
            service: exchange.service.service.draft.code.to_string(),
            resource: exchange.service.resource.code.to_string(),
            grant: exchange.grant.clone(),
            decision: if exchange.allowed {
                RecordDecision::Allow
            } else {
                RecordDecision::Deny
            },
            rule,
            method,
            path,
            status: status.as_u16(),
            request_bytes: exchange.request_bytes,
            response_bytes,
            request_sha256: Sha256Digest(exchange.request_sha256),
            response_sha256: Sha256Digest(response_sha256),
            latency_us: exchange.started.elapsed().as_micros() as u64,
            items,
            masked,
            subjects,
            subjects_continued: 0,
        }
    }

    fn observe(&self, exchange: &Exchange, status: StatusCode, response_bytes: u64) {
        let labels = ExchangeLabels {
            consumer: exchange.consumer.to_string(),
            provider: exchange.service.service.provider.to_string(),
            service: exchange.service.service.draft.code.to_string(),
            status: status.as_u16(),
        };
        let metrics = &self.inner.metrics;
        metrics.exchanges.get_or_create(&labels).inc();
        metrics
            .durations
            .get_or_create(&labels)
            .observe(exchange.started.elapsed().as_secs_f64());
        metrics
            .response_bytes
            .get_or_create(&labels)
            .inc_by(response_bytes);
    }
}

/// The answer to a call whose exchange record could not be appended: no exchange is
/// acknowledged before its record is durable.
fn ledger_unavailable(error: &civitas_ledger::Error) -> Response<GatewayBody> {
    tracing::error!(%error, "exchange record not appended; refusing the answer");
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "ledger_unavailable",
        "the exchange could not be recorded, so it is not delivered",
    )
    .response(None)
}

/// The first segment of a service path that an upstream could resolve to a place outside the
/// service: `.` and `..` (RFC 3986 §5.2.4), also percent-encoded, and any segment holding an
/// encoded slash or backslash, which some servers decode into separators after the gateway has
/// matched the path against the service's patterns.
fn traversing_segment(path: &str) -> Option<&str> {
    path.split('/').find(|segment| {
        // Most segments hold none of these: they cost no allocation.
        if !segment.contains(['.', '%', '\\']) {
            return false;
        }
        let lower = segment.to_ascii_lowercase();
        let dots = lower.replace("%2e", ".");
        dots == "."
            || dots == ".."
            || lower.contains("%2f")
            || lower.contains("%5c")
            || lower.contains('\\')
    })
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

/// The headers of `headers` that pass through the gateway: not hop-by-hop (RFC 9110 §7.6.1),
/// including those the `Connection` header names, and not the gateway's own `civitas-` headers,
/// which only the gateway sets (a consumer cannot pose as another system to the upstream, nor an
/// upstream hand out receipts).
fn end_to_end(headers: &HeaderMap) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
    let connection_named: Vec<&str> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .collect();
    headers.iter().filter(move |(name, _)| {
        !is_hop_by_hop(name)
            && !name.as_str().starts_with("civitas-")
            && !connection_named
                .iter()
                .any(|named| name.as_str().eq_ignore_ascii_case(named))
    })
}

fn copy_end_to_end_headers(from: &HeaderMap, to: &mut HeaderMap) {
    for (name, value) in end_to_end(from) {
        to.append(name.clone(), value.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exchange_ids_are_distinct_time_ordered_uuids() {
        let ids: BTreeSet<String> = (0..10_000).map(|_| new_exchange_id()).collect();
        assert_eq!(ids.len(), 10_000);
        for id in ids.iter().take(10) {
            let uuid = uuid::Uuid::parse_str(id).unwrap();
            assert_eq!(uuid.get_version_num(), 7);
            let (seconds, _) = uuid.get_timestamp().unwrap().to_unix();
            assert!(seconds.abs_diff(Timestamp::now().as_second() as u64) < 60);
        }
    }

    #[test]
    fn the_requested_items_are_read_from_every_header_line_or_refused() {
        let read = |values: &[&[u8]]| {
            let mut headers = HeaderMap::new();
            for value in values {
                headers.append(ITEMS_HEADER, HeaderValue::from_bytes(value).unwrap());
            }
            requested_items(&headers).map_err(|problem| (problem.status, problem.code))
        };
        assert_eq!(read(&[]), Ok(None));
        assert_eq!(read(&[b""]), Ok(Some(vec![])));
        assert_eq!(
            read(&[b" name, id_number ,", b"balance"]),
            Ok(Some(vec![
                "name".to_owned(),
                "id_number".to_owned(),
                "balance".to_owned()
            ]))
        );
        assert_eq!(
            read(&[b"name", "姓名".as_bytes()]),
            Err((StatusCode::BAD_REQUEST, "bad_header"))
        );
    }

    #[test]
    fn a_bulk_read_s_row_count_is_one_whole_number() {
        let check = |values: &[&[u8]], expected: Option<Option<u64>>| {
            let mut headers = HeaderMap::new();
            for value in values {
                headers.append(BULK_ROWS_HEADER, HeaderValue::from_bytes(value).unwrap());
            }
            let rows = bulk_rows(&headers);
            if let Err(problem) = &rows {
                assert_eq!(
                    (problem.status, problem.code),
                    (StatusCode::BAD_REQUEST, "bad_header")
                );
                assert!(
                    problem.detail.contains(BULK_ROWS_HEADER),
                    "{}",
                    problem.detail
                );
            }
            assert_eq!(rows.ok(), expected, "{values:?}");
        };
        check(&[], Some(None));
        check(&[b"0"], Some(Some(0)));
        check(&[b"250000"], Some(Some(250_000)));
        check(&[b"18446744073709551615"], Some(Some(u64::MAX)));
        for unreadable in [
            &b"many"[..],
            b"",
            b"-1",
            b"+5",
            b"1.5",
            b"1e6",
            b"1,000",
            b"18446744073709551616",
            b"\xe5\x8d\x81",
        ] {
            check(&[unreadable], None);
        }
        check(&[b"10", b"10"], None);
    }

    #[test]
    fn paths_that_could_leave_the_service_are_found() {
        for path in [
            "/../admin",
            "/accounts/..",
            "/a/./b",
            "/%2e%2e/admin",
            "/.%2E/admin",
            "/a%2fb",
            "/a%5Cb",
            "/a\\b",
        ] {
            assert!(traversing_segment(path).is_some(), "{path}");
        }
        for path in [
            "/",
            "/accounts/110105",
            "/a..b/c",
            "/v1.2/x",
            "/.well-known/x",
        ] {
            assert_eq!(traversing_segment(path), None, "{path}");
        }
    }

    #[test]
    fn citizen_ids_in_paths_are_redacted() {
        let check = |text: &str, expected: &str, ids: &[&str]| {
            let mut found = BTreeSet::new();
            assert_eq!(redact_citizen_ids(text, &mut found), expected);
            assert_eq!(found.iter().map(String::as_str).collect::<Vec<_>>(), ids);
        };
        check("", "", &[]);
        check(
            "/persons/11010519491231002X",
            "/persons/110105********002X",
            &["11010519491231002X"],
        );
        check(
            "/p?owner=11010519491231002x&again=11010519491231002X/",
            "/p?owner=110105********002X&again=110105********002X/",
            &["11010519491231002X"],
        );
        // Encoded separators do not hide an ID number; the record holds the decoded text.
        check(
            "/p?ids=11010519491231002X%2C11010519491231002x&n=%E5%BC%A0+三",
            "/p?ids=110105********002X,110105********002X&n=张+三",
            &["11010519491231002X"],
        );
        check(
            "/p/%3A11010519491231002X%22",
            "/p/:110105********002X\"",
            &["11010519491231002X"],
        );
        // Not ID numbers: a wrong check character, a longer token, a birth date that is none.
        check(
            "//110105194912310021/11010519491231002X9/110105194913310023",
            "//110105194912310021/11010519491231002X9/110105194913310023",
            &[],
        );
    }
}
