#!/usr/bin/env python3
"""xmetrics against a Go peer, side by side behind the same kube-apiserver (bench/peers).

The peer is the test adapter of sigs.k8s.io/custom-metrics-apiserver (bench/lib/peer_adapter). Both run
in cluster mode against one control plane (tests/e2e/cmd/controlplane): the same kube-apiserver
reviews the same bearer token (TokenReview) and authorises it (SubjectAccessReview) for both, and each
caches those answers its own way. Every run starts a fresh adapter, so each number below comes from
its own process:

  start to first answer  exec to the first 200 of GET /apis/external.metrics.k8s.io/v1beta1 (the
                         API's resource list, which both serve before any metric), polled every 5 ms
  RSS idle               VmRSS 2 s after the first answer
  RSS loaded             VmRSS 2 s after N metrics are registered; per metric = (loaded - idle) / N
  giving it the metrics  how long registering the N metrics took (xmetrics: each one's first GET,
                         a SubjectAccessReview each; the peer: the writes)
  req/s, p50, p99        wrk -t1 -c32 over TLS keep-alive on one external-metric GET
  CPU per request        the adapter's utime + stime over the wrk run / requests wrk completed
  through the aggregator the HPA's path: the same GET sent to kube-apiserver, which authenticates the
                         token itself and proxies to the adapter (registered as the APIService
                         v1beta1.external.metrics.k8s.io for that run) with its front-proxy client
                         certificate and X-Remote-User/-Group headers; req/s, p50/p99 and the
                         adapter's CPU per request as above, with wrk -c8 (not for standalone,
                         which has no cluster)
  SIGTERM to exit        SIGTERM to the process having exited (waitpid)

"N metrics" means, for xmetrics, N DogStatsD series each requested once (so each is registered and
refreshed every refresh period); for the peer, N custom-metric values written through its
/write-metrics endpoint (its only store of metrics: its external metrics are three fixed values).

A third kind of run, "standalone", is xmetrics with no cluster, checking the same token against a
token file: the reference for what cluster mode adds to each request.

"one thread" is xmetrics --threads 1 against the peer with GOMAXPROCS=1; "unrestricted" is each with
its defaults. Runs take turns (each kind leads in one round of three), and the table gives the median
of each kind and the ratios xmetrics / peer and xmetrics / standalone.

Standard library only. Everything listens on and talks to 127.0.0.1; every wait is bounded.
"""

import argparse
import http.client
import json
import os
import re
import signal
import ssl
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from client import HOST, Api, StatsD, free_port_value, metric_path, read_proc_status  # noqa: E402

XM_METRIC = "bench.peer.gauge"
XM_PATH = metric_path(XM_METRIC, "env=prod")
PEER_PATH = "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/my-external-metric?labelSelector=foo%3Dbar"
PREFIX = "bench.peer.m"
START_PATH = "/apis/external.metrics.k8s.io/v1beta1"


def log(msg):
    print(msg, flush=True)


def cpu_seconds(pid):
    """utime + stime of pid, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def make_peer_certs(workdir):
    """A CA and a serving certificate for 127.0.0.1 and localhost, so the peer is verified as xmetrics is."""
    ca_key, ca_crt = os.path.join(workdir, "peer-ca.key"), os.path.join(workdir, "peer-ca.crt")
    key, csr, crt = (os.path.join(workdir, n) for n in ("peer.key", "peer.csr", "peer.crt"))
    ext = os.path.join(workdir, "peer.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    run = lambda *a: subprocess.run(a, check=True, capture_output=True, timeout=60)  # noqa: E731
    run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca_crt,
        "-days", "2", "-subj", "/CN=bench-peer-ca")
    run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr, "-subj", "/CN=localhost")
    run("openssl", "x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial", "-out", crt,
        "-days", "2", "-extfile", ext)
    return ca_crt, crt, key


class Adapter:
    """One run of one adapter: a process, its port, its CA, and how to give it N metrics."""
    standalone = False  # True: no cluster behind it (no aggregator path to measure)

    def __init__(self, name, args, cfg, run_dir, one_thread):
        self.name, self.args, self.cfg, self.dir, self.one_thread = name, args, cfg, run_dir, one_thread
        os.makedirs(run_dir, exist_ok=True)
        self.log_path = os.path.join(run_dir, f"{name}.log")
        self.port = free_port_value("tcp")
        self.proc = None

    def _spawn(self, argv, env=None):
        self.log_file = open(self.log_path, "ab")
        self.proc = subprocess.Popen(argv, stdout=self.log_file, stderr=subprocess.STDOUT, env=env,
                                     stdin=subprocess.DEVNULL)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def api(self):
        return Api(self.port, self.ca, self.cfg["token"], timeout=10.0)

    def wait_first_answer(self, started, path, feed=None, timeout=90.0):
        """Seconds from started to the first 200 of path, polling every 5 ms."""
        deadline = started + timeout
        ctx = None
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited at start: {tail(self.log_path)}")
            if feed:
                feed()
            if ctx is None and os.path.exists(self.ca):
                try:
                    ctx = ssl.create_default_context(cafile=self.ca)
                except ssl.SSLError:
                    ctx = None  # the CA file is still being written
            if ctx is not None:
                try:
                    conn = http.client.HTTPSConnection(HOST, self.port, context=ctx, timeout=2.0)
                    conn.request("GET", path, headers={"Authorization": "Bearer " + self.cfg["token"]})
                    resp = conn.getresponse()
                    resp.read()
                    conn.close()
                    if resp.status == 200:
                        return time.monotonic() - started
                except ssl.SSLError:
                    ctx = None  # read the CA again: it may have been written after we read it
                except (OSError, http.client.HTTPException):
                    pass
            time.sleep(0.005)
        raise RuntimeError(f"{self.name}: no 200 on {path} within {timeout:.0f} s: {tail(self.log_path)}")

    def sigterm_to_exit(self):
        t = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            return None
        finally:
            self.log_file.close()
        return time.monotonic() - t

    def stop(self):
        if self.alive():
            self.proc.kill()
            self.proc.wait(timeout=10)


class Xmetrics(Adapter):
    """xmetrics in cluster mode: tokens reviewed and requests authorised by kube-apiserver."""
    path = XM_PATH
    standalone = False

    def start(self):
        self.udp = free_port_value("udp")
        self.statsd = StatsD(self.udp)
        certs = os.path.join(self.dir, "xmetrics-certs")
        self.ca = os.path.join(certs, "ca.crt")
        # --max-metrics above the default 10,000: the measured gauge is a metric too, and at 10,000 the
        # last of the N would take a place there is not.
        argv = [self.args.xmetrics, "serve", "--bind-address", "127.0.0.1", "--secure-port", str(self.port),
                "--cert-dir", certs, "--dogstatsd-address", f"127.0.0.1:{self.udp}", "--max-metrics", "20000"]
        if self.standalone:
            tokens = os.path.join(self.dir, "tokens.csv")
            with open(tokens, "w") as f:
                f.write(f'{self.cfg["token"]},bench-client,1,"system:authenticated"\n')
            argv += ["--token-auth-file", tokens]
        else:
            argv += ["--kubeconfig", self.cfg["adminKubeconfig"]]
        if self.one_thread:
            argv += ["--threads", "1"]
        t = time.monotonic()
        self._spawn(argv)
        seconds = self.wait_first_answer(t, START_PATH)
        # The measured metric, once it is serving (not timed).
        self.wait_first_answer(time.monotonic(), self.path,
                               feed=lambda: self.statsd.send_lines([f"{XM_METRIC}:7|g|#env:prod"]))
        return seconds

    def load(self, count):
        """count DogStatsD gauges, each requested once (registered, refreshed every period)."""
        api = self.api()
        lines = [f"{PREFIX}{i}:{i % 1000}|g|#env:prod" for i in range(count)]
        series = 0
        for attempt in range(3):  # UDP may drop a datagram under a burst; resend what is missing
            self.statsd.send_lines(lines)
            for _ in range(100):
                series = api.status().get("embedded", {}).get("series", 0)
                if series >= count + 1:
                    break
                time.sleep(0.1)
            if series >= count + 1:
                break
        bad = 0
        for i in range(count):
            code, _ = api.get(metric_path(f"{PREFIX}{i}", "env=prod"))
            bad += code != 200
        status = api.status()
        registered = len(status.get("metrics", []))
        self.store_bytes = status.get("embedded", {}).get("approxBytes", 0)
        return bad, registered - 1  # the measured metric is registered too

    def store_kb(self):
        """What the embedded store says its series take (status embedded.approxBytes), in KB."""
        return self.api().status().get("embedded", {}).get("approxBytes", 0) / 1024


class Standalone(Xmetrics):
    """xmetrics with no cluster: the same token checked against --token-auth-file. The reference for
    what cluster mode adds to a request (issue 17: within 1.5x of this)."""
    standalone = True


class Peer(Adapter):
    path = PEER_PATH

    def store_kb(self):
        return 0.0  # its values live in the map the per-metric figure measures

    def start(self):
        self.ca = self.cfg["peerCA"]
        argv = [self.args.peer, "--secure-port", str(self.port), "--bind-address", "127.0.0.1",
                "--tls-cert-file", self.cfg["peerCert"], "--tls-private-key-file", self.cfg["peerKey"],
                "--lister-kubeconfig", self.cfg["adminKubeconfig"],
                "--authentication-kubeconfig", self.cfg["adminKubeconfig"],
                "--authorization-kubeconfig", self.cfg["adminKubeconfig"],
                "--write-address", "127.0.0.1:0", "--v", "0"]
        env = dict(os.environ)
        if self.one_thread:
            env["GOMAXPROCS"] = "1"
        t = time.monotonic()
        self._spawn(argv, env)
        seconds = self.wait_first_answer(t, START_PATH)
        self.wait_first_answer(time.monotonic(), self.path)
        return seconds

    def write_port(self):
        for _ in range(100):
            with open(self.log_path, errors="replace") as f:
                m = re.search(r"write-metrics listening on 127\.0\.0\.1:(\d+)", f.read())
            if m:
                return int(m.group(1))
            time.sleep(0.05)
        raise RuntimeError(f"the peer did not print its write-metrics address: {tail(self.log_path)}")

    def load(self, count):
        """count custom-metric values, one per pod name, through POST /write-metrics."""
        conn = http.client.HTTPConnection(HOST, self.write_port(), timeout=10.0)
        bad = 0
        for i in range(count):
            conn.request("POST", f"/write-metrics/namespaces/default/pods/pod-{i}/bench-metric",
                         body=json.dumps(str(i % 1000)), headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            bad += resp.status != 200
        conn.close()
        # Read one back so the count is known to be served, not only accepted.
        code, _ = self.api().get(f"/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/pod-{count - 1}/bench-metric")
        return bad + (code != 200), count


def tail(path, n=5):
    try:
        with open(path, errors="replace") as f:
            return " | ".join(f.read().strip().splitlines()[-n:])
    except OSError:
        return "(no log)"


def to_ms(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        return float("nan")
    return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[m.group(2)]


def run_wrk(adapter, args, url=None, connections=None):
    url = url or f"https://127.0.0.1:{adapter.port}{adapter.path}"
    cpu0 = cpu_seconds(adapter.proc.pid)
    out = subprocess.run(["wrk", "-t1", f"-c{connections or args.connections}", f"-d{args.seconds}s", "--timeout", "2s", "--latency",
                          "-H", "Authorization: Bearer " + adapter.cfg["token"], url],
                         capture_output=True, text=True, timeout=args.seconds + 30)
    cpu1 = cpu_seconds(adapter.proc.pid)
    text = out.stdout
    requests = re.search(r"(\d+) requests in", text)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    p50 = re.search(r"^\s+50%\s+(\S+)", text, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", text, re.M)
    if out.returncode != 0 or not (requests and rps and p50 and p99):
        raise RuntimeError(f"wrk against {adapter.name} failed: {text} {out.stderr}")
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    errors = re.search(r"Socket errors: (.*)", text)
    n = int(requests.group(1))
    return {"rps": float(rps.group(1)), "p50_ms": to_ms(p50.group(1)), "p99_ms": to_ms(p99.group(1)),
            "cpu_us_per_request": (cpu1 - cpu0) * 1e6 / max(n, 1),
            "odd": ([f"{non2xx.group(1)} non-2xx answers"] if non2xx else []) +
                   ([f"socket errors {errors.group(1)}"] if errors else [])}


class ClusterApi:
    """kube-apiserver's REST API as the bench client (a cluster-admin service account)."""

    def __init__(self, cfg):
        url = cfg["apiserver"]
        m = re.fullmatch(r"https://([^:/]+):(\d+)/?", url)
        if not m:
            raise RuntimeError(f"unexpected apiserver URL {url}")
        self.host, self.port = m.group(1), int(m.group(2))
        self.ctx = ssl.create_default_context(cafile=cfg["caFile"])
        self.headers = {"Authorization": "Bearer " + cfg["token"], "Accept": "application/json",
                        "Content-Type": "application/json"}

    def call(self, method, path, body=None):
        conn = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=10.0)
        try:
            conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=self.headers)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, (json.loads(data) if data[:1] == b"{" else data)
        finally:
            conn.close()

    def apply(self, collection, name, obj):
        """Creates obj, or replaces the one of that name (with its resourceVersion). A 409 (the
        APIService's availability controller wrote its status in between) reads it again."""
        for _ in range(10):
            code, old = self.call("GET", f"{collection}/{name}")
            if code == 200:
                obj["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
                code, out = self.call("PUT", f"{collection}/{name}", obj)
            else:
                obj["metadata"].pop("resourceVersion", None)
                code, out = self.call("POST", collection, obj)
            if code in (200, 201):
                return
            if code != 409:
                break
            time.sleep(0.1)
        raise RuntimeError(f"{collection}/{name}: {code} {out}")


APISERVICE = "v1beta1.external.metrics.k8s.io"


def register_apiservice(cluster, adapter):
    """Points the external metrics APIService at this run's adapter, as the e2e harness does: an
    ExternalName Service "localhost" (the aggregator dials localhost:<port>), the serving certificate
    not verified (each adapter has its own CA; the bench measures requests, not verification). Returns
    the seconds until a GET of the measured metric through kube-apiserver answered 200."""
    cluster.apply("/api/v1/namespaces/default/services", "bench-adapter", {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "bench-adapter", "namespace": "default"},
        "spec": {"type": "ExternalName", "externalName": "localhost",
                 "ports": [{"name": "https", "port": adapter.port, "targetPort": adapter.port}]}})
    cluster.apply("/apis/apiregistration.k8s.io/v1/apiservices", APISERVICE, {
        "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService", "metadata": {"name": APISERVICE},
        "spec": {"group": "external.metrics.k8s.io", "version": "v1beta1", "insecureSkipTLSVerify": True,
                 "groupPriorityMinimum": 100, "versionPriority": 100,
                 "service": {"namespace": "default", "name": "bench-adapter", "port": adapter.port}}})
    t = time.monotonic()
    last = None
    while time.monotonic() - t < 60:  # the aggregator re-points its proxy when its controller syncs
        code, body = cluster.call("GET", adapter.path)
        if code == 200:
            return time.monotonic() - t
        last = (code, body if isinstance(body, bytes) else json.dumps(body))
        time.sleep(0.1)
    raise RuntimeError(f"{adapter.name} through kube-apiserver never answered 200 in 60 s: {last}")


def one_run(kind, count, one_thread, args, cfg, run_dir):
    adapter = KINDS[kind](kind, args, cfg, run_dir, one_thread)
    try:
        r = {"start_ms": adapter.start() * 1000}
        time.sleep(2)
        r["rss_idle_kb"] = read_proc_status(adapter.proc.pid)["VmRSS"]
        store_idle_kb = adapter.store_kb()
        t = time.monotonic()
        bad, registered = adapter.load(count)
        r["load_s"] = time.monotonic() - t
        r["odd"] = []
        if bad:
            r["odd"].append(f"{bad} of {count} metrics not accepted or not served")
        if registered != count:
            r["odd"].append(f"{registered} metrics registered, expected {count}")
        time.sleep(2)
        r["rss_loaded_kb"] = read_proc_status(adapter.proc.pid)["VmRSS"]
        r["store_added_kb"] = adapter.store_kb() - store_idle_kb
        w = run_wrk(adapter, args)
        r["odd"] += w.pop("odd")
        r.update(w)
        r["rss_after_wrk_kb"] = read_proc_status(adapter.proc.pid)["VmRSS"]
        for key in ("agg_rps", "agg_p50_ms", "agg_p99_ms", "agg_cpu_us_per_request"):
            r[key] = float("nan")
        if not adapter.standalone:
            register_apiservice(ClusterApi(cfg), adapter)
            # The aggregator reads the newly available group's discovery and OpenAPI documents just
            # after; that is not the requests' CPU.
            time.sleep(3)
            w = run_wrk(adapter, args, url=cfg["apiserver"].rstrip("/") + adapter.path,
                        connections=args.aggregator_connections)
            r["odd"] += [f"through the aggregator: {o}" for o in w.pop("odd")]
            r.update({"agg_" + k: v for k, v in w.items()})
        exit_s = adapter.sigterm_to_exit()
        if exit_s is None:
            r["odd"].append("ignored SIGTERM for 30 s")
        r["sigterm_ms"] = (exit_s or float("nan")) * 1000
        return r
    finally:
        adapter.stop()


KINDS = {"xmetrics": Xmetrics, "peer": Peer, "standalone": Standalone}

ROWS = [  # key, label, unit, format
    ("rps", "requests/s", "", "{:.0f}"),
    ("p50_ms", "latency p50", " ms", "{:.2f}"),
    ("p99_ms", "latency p99", " ms", "{:.2f}"),
    ("cpu_us_per_request", "CPU per request", " µs", "{:.1f}"),
    ("agg_rps", "via aggregator: req/s", "", "{:.0f}"),
    ("agg_p50_ms", "via aggregator: p50", " ms", "{:.2f}"),
    ("agg_p99_ms", "via aggregator: p99", " ms", "{:.2f}"),
    ("agg_cpu_us_per_request", "via aggregator: CPU/req", " µs", "{:.1f}"),
    ("rss_idle_mb", "RSS idle", " MB", "{:.1f}"),
    ("rss_loaded_mb", "RSS with the metrics", " MB", "{:.1f}"),
    ("per_metric_kb", "per metric above idle", " KB", "{:.2f}"),
    ("per_metric_no_store_kb", "per metric, not its series", " KB", "{:.2f}"),
    ("rss_after_wrk_mb", "RSS after the wrk run", " MB", "{:.1f}"),
    ("load_s", "giving it the metrics", " s", "{:.1f}"),
    ("start_ms", "start to first answer", " ms", "{:.0f}"),
    ("sigterm_ms", "SIGTERM to exit", " ms", "{:.1f}"),
]


# Targets of their own (issue 17), checked on the medians of the largest count, unrestricted.
TARGETS = {"rss_idle_mb": 10.0, "rss_loaded_mb": 32.0, "per_metric_no_store_kb": 1.0, "sigterm_ms": 100.0}


def medians(results, count, mode):
    """[(key, label, unit, fmt, {kind: median})] for the rows meaningful at this count (no nan)."""
    rows = []
    for key, label, unit, fmt in ROWS:
        m = {k: statistics.median(r[key] for r in runs) for (c, md, k), runs in results.items()
             if c == count and md == mode}
        # Standalone has no aggregator path: its cell stays empty; the others must all be measured.
        if all(v == v for k, v in m.items() if k != "standalone"):
            rows.append((key, label, unit, fmt, m))
    return rows


def summary_rows(results, count, mode):
    """Rows for bench/run-all's table ($BENCH_RESULTS): measurement, xmetrics, peer, ratio/target, verdict."""
    rows = []
    for key, label, unit, fmt, m in medians(results, count, mode):
        x, pv = m["xmetrics"], m["peer"]
        ratio = f"{x / pv:.2f} x peer" if pv else "-"
        verdict = "-"
        if key in TARGETS:
            ratio += f" (<= {TARGETS[key]:g}{unit})"
            verdict = "meets" if x <= TARGETS[key] else "MISSES"
        rows.append([f"peers: {label}, {count} metrics", fmt.format(x) + unit, "Go peer " + fmt.format(pv) + unit,
                     ratio, verdict])
    return rows


def derive(r, count):
    r["rss_idle_mb"] = r["rss_idle_kb"] / 1024
    r["rss_loaded_mb"] = r["rss_loaded_kb"] / 1024
    r["rss_after_wrk_mb"] = r["rss_after_wrk_kb"] / 1024
    r["per_metric_kb"] = (r["rss_loaded_kb"] - r["rss_idle_kb"]) / count if count >= 1000 else float("nan")
    # Issue 17's ≤ 1 KB counts what serving a metric costs (catalog, snapshot, rendered body, poller
    # state), not the backend's data: the embedded store's series are what DogStatsD sent.
    r["per_metric_no_store_kb"] = r["per_metric_kb"] - r["store_added_kb"] / count if count >= 1000 else float("nan")
    return r


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--xmetrics", required=True)
    p.add_argument("--peer", required=True)
    p.add_argument("--controlplane-info", required=True)
    p.add_argument("--workdir", required=True)
    p.add_argument("--counts", default="1,1000,10000")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=int, default=5)
    p.add_argument("--connections", type=int, default=32)
    # Through kube-apiserver: fewer, as HPA controllers are. Past 25 concurrent requests the
    # aggregator opens connections to an HTTP/1.1 adapter that client-go's transport (25 idle per
    # host) then closes, and the TLS handshakes of that churn are most of what is measured.
    p.add_argument("--aggregator-connections", type=int, default=8)
    p.add_argument("--modes", default="one thread,unrestricted")
    args = p.parse_args()

    with open(args.controlplane_info) as f:
        cfg = json.load(f)
    with open(cfg["clientTokenFile"]) as f:
        cfg["token"] = f.read().strip()
    cfg["peerCA"], cfg["peerCert"], cfg["peerKey"] = make_peer_certs(args.workdir)

    counts = [int(c) for c in args.counts.split(",")]
    modes = args.modes.split(",")
    results = {}  # (count, mode, kind) -> [run results]
    odd = []
    kinds = list(KINDS)
    for count in counts:
        for mode in modes:
            for rnd in range(args.rounds):
                order = kinds[rnd % len(kinds):] + kinds[:rnd % len(kinds)]  # each kind leads in turn
                for kind in order:
                    run_dir = os.path.join(args.workdir, f"{kind}-{count}-{mode.replace(' ', '-')}-{rnd}")
                    r = derive(one_run(kind, count, mode == "one thread", args, cfg, run_dir), count)
                    results.setdefault((count, mode, kind), []).append(r)
                    odd += [f"{kind}, {count} metrics, {mode}, round {rnd + 1}: {o}" for o in r["odd"]]
                    log(f"  {count:>6} metrics  {mode:<12} {kind:<10} {r['rps']:8.0f} req/s  p50 {r['p50_ms']:6.2f} ms  "
                        f"p99 {r['p99_ms']:6.2f} ms  CPU {r['cpu_us_per_request']:6.1f} µs/req  "
                        f"RSS idle {r['rss_idle_mb']:5.1f} MB, loaded {r['rss_loaded_mb']:6.1f} MB  "
                        f"start {r['start_ms']:5.0f} ms  SIGTERM {r['sigterm_ms']:6.1f} ms  "
                        f"via aggregator {r['agg_rps']:6.0f} req/s, p99 {r['agg_p99_ms']:6.2f} ms, "
                        f"CPU {r['agg_cpu_us_per_request']:6.1f} µs/req")

    log("")
    log(f"medians of {args.rounds} runs each, taking turns; xmetrics and the peer in cluster mode behind one "
        f"kube-apiserver, standalone = xmetrics with a token file")
    header = (f"{'metrics':>7} | {'mode':<12} | {'measurement':<24} | {'xmetrics':>12} | {'peer':>12} | "
              f"{'/ peer':>6} | {'standalone':>12} | {'/ standalone':>12}")
    log(header)
    log("-" * len(header))
    for count in counts:
        for mode in modes:
            for key, label, unit, fmt, m in medians(results, count, mode):
                x, pv, sa = m["xmetrics"], m["peer"], m["standalone"]
                cell = lambda v: fmt.format(v) + unit if v == v else "-"  # noqa: E731
                ratio = lambda a, b: f"{a / b:.2f}" if b and b == b else "-"  # noqa: E731
                log(f"{count:>7} | {mode:<12} | {label:<24} | {cell(x):>12} | {cell(pv):>12} | {ratio(x, pv):>6} | "
                    f"{cell(sa):>12} | {ratio(x, sa):>12}")
    if os.environ.get("BENCH_RESULTS") and "unrestricted" in modes:
        with open(os.environ["BENCH_RESULTS"], "a") as f:
            for row in summary_rows(results, max(counts), "unrestricted"):
                f.write("\t".join(row) + "\n")
    log("")
    if "unrestricted" in modes:
        targets = [f"{label} {fmt.format(m['xmetrics'])}{unit} (<= {TARGETS[key]:g}{unit}) "
                   f"{'meets' if m['xmetrics'] <= TARGETS[key] else 'MISSES'}"
                   for key, label, unit, fmt, m in medians(results, max(counts), "unrestricted") if key in TARGETS]
        log(f"targets (xmetrics in cluster mode, medians at {max(counts)} metrics, unrestricted): " + "; ".join(targets))
    log("odd: " + ("; ".join(odd) if odd else "nothing"))


if __name__ == "__main__":
    main()
