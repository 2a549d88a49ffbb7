//! A paced, open-loop HTTP load generator for `bench/gateway`'s latency runs, in the manner of
//! wrk2: requests go out on one global schedule at a constant rate, request k due at
//! `start + k / rate`, whatever the answers do, and each latency is measured from the request's
//! due time, not from when it was sent. A request that waits for a free connection because the
//! server is slow therefore counts its wait, so coordinated omission is corrected.
//!
//!     paced_load --url URL --rate R --seconds S --connections C [--warmup W] [--header 'Name: value']...
//!
//! It opens C keep-alive HTTP/1.1 connections, sends GET requests for W seconds (default 1) that
//! are not recorded and then for S seconds that are, and prints one line of JSON on stdout:
//! `requests` (recorded requests answered 2xx), `errors` (recorded requests answered otherwise,
//! failed, or unanswered 5 s after the schedule ended), `rate` (the achieved rate of 2xx answers),
//! exact percentiles of the latencies in milliseconds, and `mean_send_error_us`, how late the
//! requests whose connection was idle before their due time went out. A line on stderr shows the
//! pacing in more detail.
//!
//! The connections run on one single-threaded tokio runtime. tokio's timer has a resolution of
//! 1 ms, too coarse for thousands of requests a second, and spinning until a due time would take
//! a core from the servers under test; so a second thread does nothing but sleep until each due
//! time (with the process's timer slack lowered to 1 µs) and then hand out a permit to send. On
//! the 2-core VM this was written on, at 2,000/s, requests went out 45 to 55 µs late on average
//! (about 35 µs of it the sleep's own wake-up, the rest the hand-over to the runtime), 99.8 % of
//! the 1 ms buckets held exactly 2 sends, and the generator used about 50 µs of CPU per request.

use std::collections::BTreeMap;
use std::ops::Range;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HOST, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use tokio::sync::Semaphore;

const USAGE: &str = "usage: paced_load --url URL --rate R --seconds S --connections C \
                     [--warmup W] [--header 'Name: value']...";

/// How long requests may still be answered after the schedule has ended; later ones are errors.
const DRAIN: Duration = Duration::from_secs(5);

/// How long a connection task waits before trying to reconnect after a failed connect.
const RECONNECT_PAUSE: Duration = Duration::from_millis(10);

#[derive(Debug)]
struct Options {
    address: String,
    /// The request target: the URL's path and query.
    path: Uri,
    rate: f64,
    seconds: f64,
    connections: usize,
    warmup: f64,
    headers: HeaderMap,
}

fn parse_options(arguments: impl IntoIterator<Item = String>) -> Result<Options, String> {
    fn number(flag: &str, value: &str, zero_allowed: bool) -> Result<f64, String> {
        match value.parse::<f64>() {
            Ok(number) if number.is_finite() && (number > 0.0 || zero_allowed && number == 0.0) => {
                Ok(number)
            }
            _ if zero_allowed => Err(format!("invalid {flag} '{value}': expected a number ≥ 0")),
            _ => Err(format!("invalid {flag} '{value}': expected a number > 0")),
        }
    }
    let (mut url, mut rate, mut seconds, mut connections) = (None, None, None, None);
    let mut warmup = 1.0;
    let mut headers = HeaderMap::new();
    let mut arguments = arguments.into_iter();
    while let Some(flag) = arguments.next() {
        if !matches!(
            flag.as_str(),
            "--url" | "--rate" | "--seconds" | "--connections" | "--warmup" | "--header"
        ) {
            return Err(format!("unknown argument '{flag}'"));
        }
        let value = arguments
            .next()
            .ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--url" => url = Some(value),
            "--rate" => rate = Some(number(&flag, &value, false)?),
            "--seconds" => seconds = Some(number(&flag, &value, false)?),
            "--warmup" => warmup = number(&flag, &value, true)?,
            "--connections" => match value.parse::<usize>() {
                Ok(count) if count > 0 => connections = Some(count),
                _ => {
                    return Err(format!(
                        "invalid --connections '{value}': expected a count of at least 1"
                    ));
                }
            },
            _ => {
                let invalid = || format!("invalid --header '{value}': expected 'Name: value'");
                let (name, header_value) = value.split_once(':').ok_or_else(invalid)?;
                let name = HeaderName::try_from(name.trim()).map_err(|_| invalid())?;
                let header_value =
                    HeaderValue::try_from(header_value.trim()).map_err(|_| invalid())?;
                headers.append(name, header_value);
            }
        }
    }
    let url = url.ok_or("--url is required")?;
    let invalid_url = || format!("invalid --url '{url}': expected http://HOST[:PORT][/PATH]");
    let uri: Uri = url.parse().map_err(|_| invalid_url())?;
    if uri.scheme_str() != Some("http") {
        return Err(invalid_url());
    }
    let authority = uri.authority().ok_or_else(invalid_url)?;
    let address = format!(
        "{}:{}",
        authority.host(),
        authority.port_u16().unwrap_or(80)
    );
    if !headers.contains_key(HOST) {
        let host = HeaderValue::try_from(authority.as_str()).map_err(|_| invalid_url())?;
        headers.insert(HOST, host);
    }
    let path = Uri::try_from(uri.path_and_query().map_or("/", |path| path.as_str()))
        .map_err(|_| invalid_url())?;
    let rate: f64 = rate.ok_or("--rate is required")?;
    let seconds: f64 = seconds.ok_or("--seconds is required")?;
    if (rate * (warmup + seconds)) >= u32::MAX as f64 {
        return Err(format!(
            "--rate {rate} for {warmup} + {seconds} s is too many requests"
        ));
    }
    Ok(Options {
        address,
        path,
        rate,
        seconds,
        connections: connections.ok_or("--connections is required")?,
        warmup,
        headers,
    })
}

/// The run shared by the pacing thread and the connection tasks.
struct Run {
    start: Instant,
    rate: f64,
    /// Every request of the schedule, warmup included.
    total: u64,
    recorded: Range<u64>,
    /// One permit per request that is due; the pacing thread adds them.
    due_requests: Semaphore,
    /// The next request to send; a connection takes it after taking a permit.
    next: AtomicU64,
    tally: Mutex<Tally>,
}

impl Run {
    fn due(&self, request: u64) -> Instant {
        self.start + Duration::from_secs_f64(request as f64 / self.rate)
    }

    fn record(
        &self,
        request: u64,
        idle_since: Instant,
        sent: Instant,
        completed: Instant,
        answered_2xx: bool,
    ) {
        let mut tally = self.tally.lock().unwrap();
        tally.finished += 1;
        if !self.recorded.contains(&request) {
            return;
        }
        let due = self.due(request);
        let window_start = self.due(self.recorded.start);
        tally
            .send_offsets_us
            .push(micros(sent.saturating_duration_since(window_start)));
        if idle_since <= due {
            let error = sent.saturating_duration_since(due);
            tally.paced_sends += 1;
            tally.send_error_total += error;
            tally.send_error_max = tally.send_error_max.max(error);
        }
        if answered_2xx {
            tally.latencies_us.push(micros(completed - due));
            tally.last_completion = Some(completed);
        } else {
            tally.errors += 1;
        }
    }
}

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u32>,
    errors: u64,
    /// Requests of the whole schedule that ended one way or another.
    finished: u64,
    last_completion: Option<Instant>,
    /// Recorded requests whose connection was idle before they were due, and how late in total
    /// they went out: the pacing's own error, apart from queueing behind busy connections.
    paced_sends: u64,
    send_error_total: Duration,
    send_error_max: Duration,
    /// When each recorded request went out, in microseconds from the start of the window.
    send_offsets_us: Vec<u32>,
    reconnects: u64,
}

/// Hands out a permit at each request's due time; returns how late it woke on average.
fn pace(run: &Run) -> Duration {
    let mut late = Duration::ZERO;
    for request in 0..run.total {
        let due = run.due(request);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        late += Instant::now().saturating_duration_since(due);
        run.due_requests.add_permits(1);
    }
    late / u32::try_from(run.total.max(1)).expect("checked in parse_options")
}

async fn connect(address: &str) -> std::io::Result<SendRequest<Empty<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(address).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(std::io::Error::other)?;
    tokio::spawn(connection);
    Ok(sender)
}

/// Sends one request and reads the whole answer; true if it was 2xx.
async fn exchange(
    sender: &mut SendRequest<Empty<Bytes>>,
    request: Request<Empty<Bytes>>,
) -> hyper::Result<bool> {
    let answer = sender.send_request(request).await?;
    let success = answer.status().is_success();
    answer.into_body().collect().await?;
    Ok(success)
}

/// One connection's loop: wait for a due request, send it, record it; reconnect on failure.
async fn drive_connection(
    run: Arc<Run>,
    options: Arc<Options>,
    mut sender: SendRequest<Empty<Bytes>>,
) {
    let reconnect = || async {
        run.tally.lock().unwrap().reconnects += 1;
        loop {
            match connect(&options.address).await {
                Ok(sender) => return sender,
                Err(_) => tokio::time::sleep(RECONNECT_PAUSE).await,
            }
        }
    };
    loop {
        // A connection the server closed after its last answer is replaced without an error.
        if sender.ready().await.is_err() {
            sender = reconnect().await;
            continue;
        }
        let idle_since = Instant::now();
        let Ok(permit) = run.due_requests.acquire().await else {
            return;
        };
        permit.forget();
        let request_number = run.next.fetch_add(1, Ordering::Relaxed);
        let mut request = Request::new(Empty::new());
        *request.uri_mut() = options.path.clone();
        *request.headers_mut() = options.headers.clone();
        let sent = Instant::now();
        let outcome = exchange(&mut sender, request).await;
        let completed = Instant::now();

        let answered_2xx = outcome.as_ref().is_ok_and(|success| *success);
        run.record(request_number, idle_since, sent, completed, answered_2xx);
        if outcome.is_err() {
            sender = reconnect().await;
        }
    }
}

fn micros(duration: Duration) -> u32 {
    u32::try_from(duration.as_micros()).unwrap_or(u32::MAX)
}

/// The nearest-rank percentile of sorted values, given in parts per thousand (990 for the p99):
/// the smallest value that at least that share of the values do not exceed. Integer arithmetic,
/// so that 99.9 % of 1,000 values is exactly the 999th.
fn percentile(sorted: &[u32], per_mille: u64) -> Option<u32> {
    debug_assert!(sorted.is_sorted());
    let count = sorted.len() as u64;
    let rank = (per_mille * count).div_ceil(1000).clamp(1, count.max(1));
    sorted.get(rank as usize - 1).copied()
}

async fn load(options: Options) -> Result<String, String> {
    let options = Arc::new(options);
    let mut senders = Vec::with_capacity(options.connections);
    for _ in 0..options.connections {
        let sender = connect(&options.address)
            .await
            .map_err(|error| format!("cannot connect to {}: {error}", options.address))?;
        senders.push(sender);
    }
    let first_recorded = (options.warmup * options.rate).ceil() as u64;
    let total = ((options.warmup + options.seconds) * options.rate).ceil() as u64;
    let run = Arc::new(Run {
        start: Instant::now(),
        rate: options.rate,
        total,
        recorded: first_recorded..total,
        due_requests: Semaphore::new(0),
        next: AtomicU64::new(0),
        tally: Mutex::new(Tally {
            latencies_us: Vec::with_capacity((total - first_recorded) as usize),
            send_offsets_us: Vec::with_capacity((total - first_recorded) as usize),
            ..Tally::default()
        }),
    });
    for sender in senders {
        tokio::spawn(drive_connection(run.clone(), options.clone(), sender));
    }
    let pacer = {
        let run = run.clone();
        std::thread::spawn(move || pace(&run))
    };

    let end = run.due(total);
    tokio::time::sleep_until(end.into()).await;
    while run.tally.lock().unwrap().finished < total && end.elapsed() < DRAIN {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    run.due_requests.close();
    let pacer_late = pacer.join().map_err(|_| "the pacing thread panicked")?;

    let mut tally = run.tally.lock().unwrap();
    let recorded = run.recorded.end - run.recorded.start;
    let answered_or_failed = tally.latencies_us.len() as u64 + tally.errors;
    let unanswered = recorded - answered_or_failed;
    tally.latencies_us.sort_unstable();
    let latencies = &tally.latencies_us;
    let window_start = run.due(run.recorded.start);
    let span = tally
        .last_completion
        .map_or(0.0, |last| (last - window_start).as_secs_f64())
        .max(options.seconds);
    let milliseconds = |per_mille| {
        percentile(latencies, per_mille).map_or("null".to_owned(), |us| {
            format!("{:.3}", f64::from(us) / 1000.0)
        })
    };
    let mean_send_error_us = if tally.paced_sends == 0 {
        0.0
    } else {
        tally.send_error_total.as_secs_f64() * 1e6 / tally.paced_sends as f64
    };

    let mut sends_per_bucket = BTreeMap::<u32, u32>::new();
    for offset in &tally.send_offsets_us {
        *sends_per_bucket.entry(offset / 1000).or_default() += 1;
    }
    let buckets = (options.seconds * 1000.0).ceil() as u32;
    let mut buckets_by_sends = BTreeMap::<u32, u32>::new();
    for bucket in 0..buckets.max(sends_per_bucket.keys().last().map_or(0, |last| last + 1)) {
        *buckets_by_sends
            .entry(sends_per_bucket.get(&bucket).copied().unwrap_or(0))
            .or_default() += 1;
    }
    let histogram: Vec<String> = buckets_by_sends
        .iter()
        .map(|(sends, buckets)| format!("{sends}: {buckets}"))
        .collect();
    eprintln!(
        "paced_load: {paced} of {recorded} recorded requests paced (their connection idle before \
         they were due), sent {mean_send_error_us:.1} µs late on average ({pacer_late} µs of it \
         the pacing thread's wake-up), {max} µs at most; {unanswered} unanswered; {reconnects} \
         reconnects; 1 ms buckets by sends {{{histogram}}}",
        paced = tally.paced_sends,
        pacer_late = pacer_late.as_micros(),
        max = tally.send_error_max.as_micros(),
        reconnects = tally.reconnects,
        histogram = histogram.join(", "),
    );
    Ok(format!(
        "{{\"requests\":{requests},\"errors\":{errors},\"rate\":{rate:.1},\"p50_ms\":{p50},\
         \"p90_ms\":{p90},\"p99_ms\":{p99},\"p999_ms\":{p999},\"max_ms\":{max},\
         \"mean_send_error_us\":{mean_send_error_us:.1}}}",
        requests = latencies.len(),
        errors = tally.errors + unanswered,
        rate = latencies.len() as f64 / span,
        p50 = milliseconds(500),
        p90 = milliseconds(900),
        p99 = milliseconds(990),
        p999 = milliseconds(999),
        max = milliseconds(1000),
    ))
}

fn main() -> ExitCode {
    let options = match parse_options(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("paced_load: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    // The pacing thread inherits the timer slack, the time by which Linux may delay its wake-ups
    // to merge them with others (50 µs by default); 1 µs lets it wake close to each due time.
    // Elsewhere the file does not exist and the default stays.
    let _ = std::fs::write("/proc/self/timerslack_ns", "1000");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match runtime.block_on(load(options)) {
        Ok(json) => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("paced_load: {message}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(values: &[u32], per_mille: u64, expected: Option<u32>) {
        let mut sorted = values.to_vec();
        sorted.sort_unstable();
        assert_eq!(
            percentile(&sorted, per_mille),
            expected,
            "{per_mille}‰ of {values:?}"
        );
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let thousand: Vec<u32> = (1..=1000).collect();
        check(&thousand, 500, Some(500));
        check(&thousand, 990, Some(990));
        check(&thousand, 999, Some(999));
        check(&thousand, 1000, Some(1000));
        // 99 % of 10 values is 9.9 of them: the 10th.
        check(&[5, 1, 4, 2, 3, 10, 9, 8, 7, 6], 990, Some(10));
        check(&[5, 1, 4, 2, 3, 10, 9, 8, 7, 6], 500, Some(5));
        check(&[7], 500, Some(7));
        check(&[7], 0, Some(7));
        check(&[], 500, None);
    }

    #[test]
    fn bad_arguments_name_the_argument() {
        let parse = |line: &str| parse_options(line.split_whitespace().map(str::to_owned));
        let error = |line: &str| parse(line).unwrap_err();
        let base = "--url http://127.0.0.1:8080/x --seconds 5 --connections 4";
        assert!(error(&format!("{base} --rate fast")).contains("--rate 'fast'"));
        assert!(error(&format!("{base} --rate 0")).contains("--rate '0'"));
        assert!(error(&format!("{base} --rate 10 --warmup -1")).contains("--warmup '-1'"));
        assert!(
            error(&format!("{base} --rate 10 --header nocolon")).contains("--header 'nocolon'")
        );
        assert!(error(&format!("{base} --rate 10 --speed 3")).contains("'--speed'"));
        assert!(error(&format!("{base} --rate")).contains("--rate needs a value"));
        assert!(error("--rate 10 --seconds 5 --connections 4").contains("--url is required"));
        assert!(error("--url https://x/ --rate 10 --seconds 5 --connections 4").contains("--url"));

        let options = parse(&format!(
            "{base} --rate 2000 --header Authorization:Bearer-k"
        ))
        .unwrap();
        assert_eq!(options.address, "127.0.0.1:8080");
        assert_eq!(options.path, "/x");
        assert_eq!(options.headers["authorization"], "Bearer-k");
        assert_eq!(options.headers["host"], "127.0.0.1:8080");
        assert_eq!(options.warmup, 1.0);
    }
}
