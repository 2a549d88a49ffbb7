"""Runs the gateway benchmark; see bench/gateway/run. Python standard library only.

One nginx (one worker per core) serves the upstream (a static 1 KB JSON record with three
personal items) and, on another port, proxies to it with keep-alive connections; civitas
(`civitas serve`, the release binary) proxies to the same upstream through its whole pipeline;
with --hyper-proxy, a bare proxy on civitas' HTTP stack (tokio, hyper, the hyper-util client),
served as the gateway is (a single-threaded runtime per core), shows that stack's own floor.
Throughput: wrk with the same threads and connections against each target, interleaved rounds,
median. Latency: paced_load (civitas-gateway's example) at fixed request rates (30 % and 60 % of
the slower proxy's throughput; a rate that a target does not sustain is flagged), the same
connections for each target, interleaved rounds, median of each percentile. It sends on one evenly
spaced schedule and measures each latency from the request's scheduled time, as wrk2 does, so
queueing behind a slow answer counts. Each proxy's CPU per request is measured at the fixed
rates too: below saturation every request pays for its own wake-ups. hey is not used: its rate
limit is per worker and all workers tick in lockstep, so at 2,000/s 32 workers fire together
every 16 ms and its p99 measures how fast such a burst drains.
"""

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

ADMIN_KEY = "cvk_bench-admin-key-0123456789"
PROVIDER = "11320100013201004T"
CONSUMER = "11320100013201020G"
# A valid ID number (its check digit holds): the gateway indexes every call that delivers it.
CITIZEN = "320102199001011232"
RESOURCE = "320100-B01-000001"

UPSTREAM = "upstream (direct)"
NGINX = "nginx reverse proxy"
CIVITAS = "civitas gateway"
HYPER = "bare hyper proxy (civitas' HTTP stack alone)"
# paced_load's warmup before each fixed-rate measurement, sent at the same rate.
PACED_WARMUP_SECONDS = 1


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api(base, method, path, body=None, key=ADMIN_KEY):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method)
    request.add_header("Authorization", "Bearer " + key)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request) as response:
            text = response.read()
            return json.loads(text) if text else None
    except urllib.error.HTTPError as error:
        raise SystemExit(f"{method} {path}: {error.code} {error.read().decode()}") from None


def upstream_record():
    """About 1 KB of JSON with three personal items (ID number, name, mobile)."""
    record = {
        "id_number": CITIZEN,
        "name": "王芳",
        "mobile": "13812345678",
        "gender": "female",
        "birth_date": "1990-01-01",
        "status": "normal",
        "region": "320102",
        "household_id": "H3201020012345",
        "employer": "南京某某科技有限公司",
        "insured": True,
        "history": [{"month": "%d-%02d" % (2025 + (m + 8) // 12, (m + 8) % 12 + 1), "paid": True, "base": 8800.0}
                    for m in range(1, 15)],
    }
    text = json.dumps(record, ensure_ascii=False)
    return text


FIELDS = [
    ("id_number", "公民身份号码", "string", "personal", "citizen_id", "$.id_number"),
    ("name", "姓名", "string", "personal", "name", "$.name"),
    ("mobile", "手机号码", "string", "personal", "mobile", "$.mobile"),
    ("gender", "性别", "string", "internal", None, "$.gender"),
    ("birth_date", "出生日期", "date", "internal", None, "$.birth_date"),
    ("status", "状态", "string", "internal", None, "$.status"),
    ("region", "区域", "string", "internal", None, "$.region"),
    ("household_id", "户号", "string", "internal", None, "$.household_id"),
    ("employer", "单位", "string", "internal", None, "$.employer"),
    ("insured", "参保", "boolean", "internal", None, "$.insured"),
    ("history_month", "月份", "string", "internal", None, "$.history[*].month"),
    ("history_paid", "缴费", "boolean", "internal", None, "$.history[*].paid"),
    ("history_base", "基数", "decimal", "internal", None, "$.history[*].base"),
]


def nginx_config(prefix, upstream_port, proxy_port):
    return f"""
worker_processes {os.cpu_count()};
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    upstream backend {{ server 127.0.0.1:{upstream_port}; keepalive 128; }}
    server {{
        listen 127.0.0.1:{upstream_port};
        location /persons/ {{ default_type application/json; root {prefix}; try_files /record.json =404; }}
    }}
    server {{
        listen 127.0.0.1:{proxy_port};
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


def setup_exchange(base, upstream_port):
    """Provider and consumer, an interface resource with three personal items, a service on the
    upstream, an unconditional grant (personal items masked) and the consumer system's key."""
    for code, name, system, consumes in [
        (PROVIDER, "南京市公安局", "population", False),
        (CONSUMER, "南京住房公积金管理中心", "portal", True),
    ]:
        api(base, "POST", "/api/v1/organizations", {"code": code, "name": name, "level": "municipal", "region": "320100"})
        api(base, "POST", f"/api/v1/organizations/{code}/systems",
            {"code": system, "name": system, "consumes": consumes, "provides": not consumes})
    items = [{"code": c, "name": n, "data_type": t, "sensitivity": s, **({"mask": m} if m else {})}
             for c, n, t, s, m, _ in FIELDS]
    api(base, "POST", "/api/v1/resources", {
        "code": RESOURCE, "kind": "interface", "classification": "B01", "name": "人口基础信息",
        "provider": PROVIDER, "provider_system": "population", "format": "json", "items": items,
        "sharing": {"type": "unconditional", "method": "interface"}, "open_type": "closed", "update_cycle": "realtime"})
    api(base, "PUT", f"/api/v1/organizations/{PROVIDER}/systems/population/services/persons", {
        "code": "persons", "resource": RESOURCE, "upstream": f"http://127.0.0.1:{upstream_port}",
        "paths": ["/persons/{id}"], "timeout_ms": 5000,
        "fields": [{"item": c, "path": p} for c, _, _, _, _, p in FIELDS]})
    api(base, "POST", "/api/v1/applications", {
        "consumer": {"organization": CONSUMER, "system": "portal"}, "resource": RESOURCE,
        "purpose": "benchmark", "legal_basis": "benchmark", "valid_days": 30})
    return api(base, "POST", "/api/v1/keys", {"owner": {"kind": "system", "organization": CONSUMER, "system": "portal"}})["key"]


def check_gateway(url, key, base=None):
    """One call through the gateway: masked, receipted, and (given the API's base URL) found in
    the personal-data access index under the person whose data it delivered."""
    deadline = time.time() + 10
    while True:
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
        try:
            with urllib.request.urlopen(request) as response:
                answer = json.loads(response.read())
                headers = {k.lower() for k in response.headers.keys()}
                break
        except urllib.error.HTTPError as error:
            # The gateway follows the store within a second.
            if time.time() > deadline:
                raise SystemExit(f"the gateway refused the check call: {error.code} {error.read().decode()}") from None
            time.sleep(0.2)
    assert answer["id_number"] == "320102********1232" and answer["name"] == "王*" and answer["mobile"] != "13812345678", answer
    assert len(answer["history"]) == 14, answer
    assert "civitas-receipt" in headers and "civitas-exchange-id" in headers, headers
    if base is not None:
        report = api(base, "GET", f"/api/v1/audit/subjects/{CITIZEN}")
        assert report["accesses"], report


def wrk(url, seconds, connections, headers=()):
    command = ["wrk", f"-t{os.cpu_count()}", f"-c{connections}", f"-d{seconds}s"]
    for header in headers:
        command += ["-H", header]
    output = subprocess.run(command + [url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    failures = int(non2xx.group(1)) if non2xx else 0
    if errors:
        failures += sum(int(g) for g in errors.groups())
    return rps, failures


def paced_load(binary, url, seconds, connections, rate, headers=()):
    """Latency at a fixed rate: `rate` requests/s on one schedule over `connections` connections,
    after PACED_WARMUP_SECONDS of warmup. Returns p50, p99, p99.9 (ms), the achieved rate, the
    failed count and how late paced_load sent on average (µs)."""
    command = [binary, "--url", url, "--rate", str(rate), "--seconds", str(seconds),
               "--connections", str(connections), "--warmup", str(PACED_WARMUP_SECONDS)]
    for header in headers:
        command += ["--header", header]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"paced_load failed: {result.stderr.strip()}")
    answer = json.loads(result.stdout)
    if answer["p50_ms"] is None:
        raise SystemExit(f"paced_load: no 2xx answer from {url}")
    return (answer["p50_ms"], answer["p99_ms"], answer["p999_ms"], answer["rate"], answer["errors"],
            answer["mean_send_error_us"])


def ledger_wait_buckets(base):
    """civitas_gateway_ledger_wait_seconds from civitas' /metrics: [(upper bound s, cumulative count)]."""
    with urllib.request.urlopen(base + "/metrics") as response:
        text = response.read().decode()
    buckets = []
    for match in re.finditer(r'^civitas_gateway_ledger_wait_seconds_bucket\{le="([^"]+)"\} (\S+)$', text, re.M):
        buckets.append((float("inf") if match.group(1) == "+Inf" else float(match.group(1)), float(match.group(2))))
    if not buckets:
        raise SystemExit("civitas' /metrics has no civitas_gateway_ledger_wait_seconds")
    return sorted(buckets)


def bucket_quantile(before, after, quantile):
    """The quantile (s) of what a cumulative histogram counted between two readings, interpolated
    linearly within its bucket; None if it counted nothing."""
    counts = [(bound, a - b) for (bound, a), (_, b) in zip(after, before)]
    total = counts[-1][1]
    if total <= 0:
        return None
    wanted = quantile * total
    lower, below = 0.0, 0.0
    for bound, cumulative in counts:
        if cumulative >= wanted:
            if bound == float("inf"):
                return lower
            return lower + (bound - lower) * (wanted - below) / max(cumulative - below, 1e-9)
        lower, below = bound, cumulative
    return lower


def stat_times(path):
    """The name, and the user and system CPU seconds, in a /proc stat file (of a process or a
    thread)."""
    with open(path) as stat:
        text = stat.read()
    fields = text.rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return text[text.index("(") + 1:text.rindex(")")], int(fields[11]) / tick, int(fields[12]) / tick


def cpu_seconds(pids):
    """User and system CPU time the processes have used so far."""
    return sum(user + system for _, user, system in (stat_times(f"/proc/{pid}/stat") for pid in pids))


# civitas' threads by what they do, from their names: (group, name prefixes).
THREAD_GROUPS = (
    ("gateway threads", ("gateway-",)),
    ("ledger writer", ("ledger-",)),
    ("main runtime and store (personal-data index, API)", ("tokio-", "sqlx-", "civitas")),
)


def cpu_spent(nginx, own):
    """CPU seconds so far of (nginx's processes, the target's own process)."""
    return cpu_seconds(nginx), cpu_seconds(own)


def per_request_us(before, after, requests):
    """What `cpu_spent` counted between two readings, in µs per request."""
    return tuple((a - b) / requests * 1e6 for a, b in zip(after, before))


def proxy_cpu_us(samples, targets):
    """Each target's proxy CPU µs per request beyond the upstream's own, from per-round
    `per_request_us` samples: the median of each part, less what the upstream run spent in
    nginx (the upstream itself). Also returns that upstream cost."""
    medians = {name: tuple(statistics.median(v[i] for v in values) for i in range(2))
               for name, values in samples.items()}
    upstream = medians[UPSTREAM][0]
    proxy = {name: sum(medians[name]) - upstream for name in targets}
    proxy[UPSTREAM] = 0.0
    return proxy, upstream


def thread_cpu_seconds(pid):
    """User and system CPU time of the process's threads so far, summed per THREAD_GROUPS group
    (threads of no group under "other")."""
    totals = {}
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            name, user, system = stat_times(f"/proc/{pid}/task/{task}/stat")
        except OSError:
            continue  # the thread ended
        group = next((group for group, prefixes in THREAD_GROUPS if name.startswith(prefixes)), "other")
        user_so_far, system_so_far = totals.get(group, (0.0, 0.0))
        totals[group] = (user_so_far + user, system_so_far + system)
    return totals


def nginx_pids(prefix):
    with open(os.path.join(prefix, "nginx.pid")) as f:
        master = int(f.read())
    children = subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True).stdout.split()
    return [master] + [int(child) for child in children]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class RssSampler:
    """Samples a process's resident memory every 100 ms while in a `with` block."""

    def __init__(self, pid):
        self.pid = pid
        self.samples = []

    def __enter__(self):
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()
        return self

    def run(self):
        while not self.stop.is_set():
            self.samples.append(rss_kib(self.pid))
            self.stop.wait(0.1)

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def fdatasync_ms(directory, samples=200):
    """p50 and p99 of fdatasync after a small write in `directory`: the floor under every
    durable ledger append, and on a shared machine its most variable part. As the ledger's
    writer does, it writes into space already zero-filled and synced, so that the syncs do not
    grow the file."""
    path = os.path.join(directory, "fsync-probe")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    times = []
    try:
        os.write(fd, bytes(samples * 300))
        os.fdatasync(fd)
        for sample in range(samples):
            os.pwrite(fd, b"x" * 300, sample * 300)
            started = time.perf_counter()
            os.fdatasync(fd)
            times.append((time.perf_counter() - started) * 1000)
            time.sleep(0.005)
    finally:
        os.close(fd)
        os.unlink(path)
    times.sort()
    return times[len(times) // 2], times[int(len(times) * 0.99) - 1]


def loadavg():
    return " ".join(open("/proc/loadavg").read().split()[:3])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--civitas", required=True)
    parser.add_argument("--seconds", type=int, default=10, help="length of each wrk and paced_load run")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections")
    parser.add_argument("--latency-connections", type=int, default=32, help="paced_load connections for the fixed-rate runs")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=int, help="one fixed rate for the latency runs, in place of --rate-shares")
    parser.add_argument("--rate-shares", type=lambda text: [float(share) for share in text.split(",")],
                        default=[0.3, 0.6], help="fixed rates for the latency runs, as shares of the slower proxy's "
                        "throughput under wrk (default 0.3,0.6: paced_load costs more CPU per request than wrk, and "
                        "the machine's cores are shared, so the higher rate may not be sustained)")
    parser.add_argument("--profile", metavar="FILE", help="also record civitas with perf during one extra wrk run")
    parser.add_argument("--hyper-proxy", metavar="PATH", help="the bare hyper proxy (civitas-gateway's example hyper_proxy)")
    parser.add_argument("--paced-load", metavar="PATH", required=True,
                        help="the fixed-rate load generator (civitas-gateway's example paced_load)")
    arguments = parser.parse_args()

    work = tempfile.mkdtemp(prefix="civitas-bench-gateway-")
    os.chmod(work, 0o755)
    with open(os.path.join(work, "record.json"), "w") as f:
        f.write(upstream_record())
    upstream_port, proxy_port, api_port, gateway_port = free_port(), free_port(), free_port(), free_port()
    hyper_port = free_port()
    with open(os.path.join(work, "nginx.conf"), "w") as f:
        f.write(nginx_config(work, upstream_port, proxy_port))
    processes = []
    try:
        subprocess.run(["nginx", "-c", os.path.join(work, "nginx.conf"), "-p", work], check=True)
        data_dir = os.path.join(work, "civitas-data")
        civitas = subprocess.Popen(
            [arguments.civitas, "serve", "--data-dir", data_dir, "--listen", f"127.0.0.1:{api_port}",
             "--gateway-listen", f"127.0.0.1:{gateway_port}", "--log", "warn"],
            env={**os.environ, "CIVITAS_BOOTSTRAP_TOKEN": ADMIN_KEY},
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "civitas.log"), "w"))
        processes.append(civitas)
        base = f"http://127.0.0.1:{api_port}"
        for _ in range(200):
            try:
                urllib.request.urlopen(base + "/healthz")
                break
            except OSError:
                time.sleep(0.1)
        key = setup_exchange(base, upstream_port)

        targets = {
            UPSTREAM: (f"http://127.0.0.1:{upstream_port}/persons/{CITIZEN}", ()),
            NGINX: (f"http://127.0.0.1:{proxy_port}/persons/{CITIZEN}", ()),
            CIVITAS: (f"http://127.0.0.1:{gateway_port}/x/{PROVIDER}/population/persons/persons/{CITIZEN}",
                      (f"Authorization: Bearer {key}",)),
        }
        # The process each target runs in beside nginx's, whose CPU time is its own.
        own_pid = {CIVITAS: civitas.pid}
        if arguments.hyper_proxy:
            bare = subprocess.Popen([arguments.hyper_proxy, f"127.0.0.1:{hyper_port}", f"127.0.0.1:{upstream_port}"])
            processes.append(bare)
            own_pid[HYPER] = bare.pid
            targets[HYPER] = (f"http://127.0.0.1:{hyper_port}/persons/{CITIZEN}", ())
            for _ in range(100):
                try:
                    urllib.request.urlopen(targets[HYPER][0])
                    break
                except OSError:
                    time.sleep(0.05)
        check_gateway(targets[CIVITAS][0], key, base)
        size = len(urllib.request.urlopen(targets[UPSTREAM][0]).read())
        load_before = loadavg()
        print(f"upstream answer: {size} bytes; load average {load_before}", file=sys.stderr)
        for name, (url, headers) in targets.items():
            wrk(url, 2, arguments.connections, headers)

        # CPU time per request is measured too: unlike throughput, it hardly depends on what
        # else the shared machine runs. nginx's processes serve the upstream in every run.
        rss = []
        throughput = {name: [] for name in targets}
        cpu = {name: [] for name in targets}
        nginx = nginx_pids(work)
        # civitas' CPU per request by thread group, (user, system) in microseconds, per round.
        civitas_threads = []
        for round_number in range(arguments.rounds):
            for name, (url, headers) in targets.items():
                own = [own_pid[name]] if name in own_pid else []
                before = cpu_spent(nginx, own)
                threads_before = thread_cpu_seconds(civitas.pid)
                with RssSampler(civitas.pid) as sampler:
                    rps, failures = wrk(url, arguments.seconds, arguments.connections, headers)
                after = cpu_spent(nginx, own)
                threads_after = thread_cpu_seconds(civitas.pid)
                requests = rps * arguments.seconds
                cpu[name].append(per_request_us(before, after, requests))
                if name == CIVITAS:
                    civitas_threads.append({
                        group: tuple((a - b) / requests * 1e6
                                     for a, b in zip(spent, threads_before.get(group, (0.0, 0.0))))
                        for group, spent in threads_after.items()})
                    rss += sampler.samples
                if failures:
                    print(f"warning: {name}: {failures} failed answers", file=sys.stderr)
                throughput[name].append(rps)
                print(f"round {round_number + 1} wrk {name}: {rps:,.0f}/s", file=sys.stderr)
        median = {name: statistics.median(values) for name, values in throughput.items()}
        proxy_cpu, upstream_cpu = proxy_cpu_us(cpu, targets)

        if arguments.profile:
            perf = subprocess.Popen(["perf", "record", "-F", "999", "-g", "-o", arguments.profile, "-p", str(civitas.pid)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wrk(targets[CIVITAS][0], arguments.seconds, arguments.connections, targets[CIVITAS][1])
            perf.send_signal(2)
            perf.wait()

        fsync = fdatasync_ms(data_dir)
        slower = min(median[NGINX], median[CIVITAS])
        rates = [arguments.rate] if arguments.rate else [int(share * slower) for share in arguments.rate_shares]
        # at_rate[rate][name]: the medians of p50, p99, p99.9 and the achieved rate;
        # proxy_cpu_at_rate[rate][name]: the median proxy's CPU µs per request at that rate.
        at_rate = {}
        proxy_cpu_at_rate = {}
        # ledger_wait_at_rate[rate]: the medians of civitas' p50 and p99 wait for its ledger append.
        ledger_wait_at_rate = {}
        for rate in rates:
            latency = {name: [] for name in targets}
            cpu_at_rate = {name: [] for name in targets}
            ledger_waits = []
            for round_number in range(arguments.rounds):
                for name, (url, headers) in targets.items():
                    own = [own_pid[name]] if name in own_pid else []
                    before = cpu_spent(nginx, own)
                    waits_before = ledger_wait_buckets(base) if name == CIVITAS else None
                    with RssSampler(civitas.pid) as sampler:
                        result = paced_load(arguments.paced_load, url, arguments.seconds,
                                            arguments.latency_connections, rate, headers)
                    after = cpu_spent(nginx, own)
                    if waits_before is not None:
                        waits_after = ledger_wait_buckets(base)
                        ledger_waits.append(tuple(bucket_quantile(waits_before, waits_after, q) for q in (0.5, 0.99)))
                    # paced_load sends a second of warmup at the rate before it measures.
                    requests = result[3] * arguments.seconds + rate * PACED_WARMUP_SECONDS
                    cpu_at_rate[name].append(per_request_us(before, after, requests))
                    if name == CIVITAS:
                        rss += sampler.samples
                    if result[4]:
                        print(f"warning: {name}: {result[4]} failed or non-2xx answers at {rate}/s", file=sys.stderr)
                    latency[name].append(result)
                    print(f"round {round_number + 1} paced_load {name} at {rate:,}/s: p50 {result[0]:.2f} ms, "
                          f"p99 {result[1]:.2f} ms (sent {result[5]:.0f} µs late on average)", file=sys.stderr)
            at_rate[rate] = {name: tuple(statistics.median(r[i] for r in results) for i in range(4))
                             for name, results in latency.items()}
            proxy_cpu_at_rate[rate] = proxy_cpu_us(cpu_at_rate, targets)[0]
            ledger_wait_at_rate[rate] = tuple(statistics.median(w[i] for w in ledger_waits) for i in range(2))

        ledger = api(base, "GET", "/api/v1/ledger")
        nginx_rps = median[NGINX]
        print(f"\n## Gateway benchmark ({os.cpu_count()} cores; load average {load_before} before, {loadavg()} after)\n")
        print(f"Upstream answer: {size} bytes of JSON, three personal items. Throughput: wrk -t{os.cpu_count()} "
              f"-c{arguments.connections} -d{arguments.seconds}s; latency: paced_load with {arguments.latency_connections} "
              f"connections at fixed rates on one evenly spaced schedule, measured from each request's scheduled "
              f"time; each the median of {arguments.rounds} interleaved rounds.\n")
        print("| target | requests/s | ratio to nginx | proxy's CPU µs/request |")
        print("|---|---:|---:|---:|")
        for name in targets:
            own = "–" if name == UPSTREAM else f"{proxy_cpu[name]:.0f}"
            print(f"| {name} | {median[name]:,.0f} | {median[name] / nginx_rps:.2f} | {own} |")
        print("\n| target | fixed rate | p50 ms | p99 ms | p99.9 ms | achieved rate | proxy's CPU µs/request |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for rate, results in at_rate.items():
            for name in targets:
                p50, p99, p999, achieved = results[name]
                own = "–" if name == UPSTREAM else f"{proxy_cpu_at_rate[rate][name]:.0f}"
                print(f"| {name} | {rate:,}/s ({rate / slower:.0%} of the slower proxy) | {p50:.2f} | {p99:.2f} | "
                      f"{p999:.2f} | {achieved:,.0f} | {own} |")
        ratio = median[CIVITAS] / nginx_rps
        print(f"\n- throughput ratio civitas / nginx: **{ratio:.2f}** (target ≥ 1.0: {'met' if ratio >= 1.0 else 'MISSED'}); "
              f"rounds: civitas {', '.join(f'{v:,.0f}' for v in throughput[CIVITAS])}; nginx {', '.join(f'{v:,.0f}' for v in throughput[NGINX])}")
        for rate, results in at_rate.items():
            gap = results[CIVITAS][1] - results[NGINX][1]
            sustained = all(results[name][3] >= 0.99 * rate for name in (NGINX, CIVITAS))
            print(f"- p99 civitas − nginx at {rate:,}/s: **{gap:+.2f} ms** "
                  f"(target ≤ +1 ms: {'met' if gap <= 1.0 else 'MISSED'})"
                  + ("" if sustained else "; not sustained: an achieved rate fell below 99 % of the fixed one"))
        for rate, (wait_p50, wait_p99) in ledger_wait_at_rate.items():
            p50, p99 = at_rate[rate][CIVITAS][:2]
            print(f"- civitas' wait for its durable ledger append at {rate:,}/s: p50 {wait_p50 * 1e3:.2f} ms, "
                  f"p99 {wait_p99 * 1e3:.2f} ms, of its p50 {p50:.2f} and p99 {p99:.2f} ms "
                  "(civitas_gateway_ledger_wait_seconds, interpolated within its √2 buckets, warmup included)")
        print(f"- CPU per request beyond the upstream's ({upstream_cpu:.0f} µs in nginx): nginx proxy "
              f"{proxy_cpu[NGINX]:.0f} µs, civitas {proxy_cpu[CIVITAS]:.0f} µs (median over the wrk rounds; "
              "robust to other load on the machine, unlike requests/s)"
              + (f"; the bare hyper proxy {proxy_cpu[HYPER]:.0f} µs at {median[HYPER] / nginx_rps:.2f} of nginx's "
                 "throughput, the floor of civitas' HTTP stack" if HYPER in targets else ""))
        groups = [group for group, _ in THREAD_GROUPS] + ["other"]
        split = []
        for group in groups:
            user = statistics.median(round_split.get(group, (0.0, 0.0))[0] for round_split in civitas_threads)
            system = statistics.median(round_split.get(group, (0.0, 0.0))[1] for round_split in civitas_threads)
            if user + system >= 0.05:
                split.append(f"{group} {user:.1f} / {system:.1f}")
        print(f"- civitas' CPU µs/request by thread, user / system (median over the wrk rounds): {'; '.join(split)}")
        print(f"- fdatasync on civitas' data dir, p50/p99: {fsync[0]:.2f}/{fsync[1]:.2f} ms (every civitas answer "
              "waits for a group commit of the ledger)")
        print(f"- civitas RSS under load: median **{statistics.median(rss) / 1024:.0f} MB**, peak {max(rss) / 1024:.0f} MB; "
              f"ledger records written: {ledger['size']:,}")
        print("- civitas per request: system-key authentication, grant decision, JSON filtering with three "
              "personal items masked, and a durable (fdatasync'ed, group-committed) ledger append before the answer; "
              "its gateway on one thread per core (the default), as nginx has one worker per core.")
    finally:
        for process in processes:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        subprocess.run(["nginx", "-c", os.path.join(work, "nginx.conf"), "-p", work, "-s", "stop"], capture_output=True)
        time.sleep(0.3)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
