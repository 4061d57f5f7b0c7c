"""Issue 14: inline Prometheus metrics that differ only in one label's value are fetched as one
grouped query and split back. Differential against a real Prometheus (Debian's `prometheus`): the
same data read through xmetrics with --prometheus-coalesce on and off gives every value, timestamp
and error equal through the external metrics API, and Prometheus receives fewer query calls.

Between xmetrics and Prometheus sits a small proxy written here. It forwards every /api/v1/query
call to the real Prometheus, counts it, and pins its evaluation time (`time=`) to one instant
chosen by the test: both runs are then answered at the same time, so their timestamps can be
compared for equality, not only their values. Prometheus' own
prometheus_http_requests_total{handler="/api/v1/query"} (its /metrics) counts the same calls."""
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import wait_for
from test_prometheus_backend import BASE, PROMETHEUS, running_prometheus

QUEUES = [f"q{i}" for i in range(12)]
ABSENT = "q5"  # no series at all: the error of an empty answer
BROKEN = "q7"  # one of its two series is NaN: sum and avg are NaN (an error), max is the other


def exposition():
    """Two pods per queue with values that differ per queue, the same queues in another env (which
    the selectors exclude), and a queue nobody asks for."""
    lines = ["# TYPE queue_depth gauge"]
    for i, q in enumerate(QUEUES):
        if q == ABSENT:
            continue
        lines.append(f'queue_depth{{env="prod",queue="{q}",pod="a"}} {i * 10 + 1.5}')
        lines.append(f'queue_depth{{env="prod",queue="{q}",pod="b"}} {"NaN" if q == BROKEN else i + 0.25}')
        lines.append(f'queue_depth{{env="dev",queue="{q}",pod="a"}} {1000 + i}')
    lines.append('queue_depth{env="prod",queue="q99",pod="a"} 99')
    return ("\n".join(lines) + "\n").encode()


class Exporter(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        body = exposition()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class PinningProxy:
    """Forwards /api/v1/query (GET or POST form) to Prometheus with `time` replaced by `pinned`;
    records (the time xmetrics asked for, the PromQL) of every call."""

    def __init__(self, upstream):
        self.upstream = upstream
        self.pinned = None
        self.calls = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self.forward(urllib.parse.urlsplit(self.path).query)

            def do_POST(self):
                self.forward(self.rfile.read(int(self.headers.get("Content-Length", 0))).decode())

            def forward(self, form):
                params = urllib.parse.parse_qs(form, keep_blank_values=True)
                with proxy.lock:
                    proxy.calls.append((params.get("time", [""])[0], params["query"][0]))
                    if proxy.pinned is not None:
                        params["time"] = [proxy.pinned]
                body = urllib.parse.urlencode({k: v[0] for k, v in params.items()}).encode()
                request = urllib.request.Request(f"{proxy.upstream}/api/v1/query", data=body,
                                                 headers={"Content-Type":
                                                          "application/x-www-form-urlencoded"})
                try:
                    with urllib.request.urlopen(request, timeout=10) as r:
                        status, answer = r.status, r.read()
                except urllib.error.HTTPError as e:
                    status, answer = e.code, e.read()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def snapshot(self):
        with self.lock:
            return list(self.calls)


@pytest.fixture(scope="module")
def prometheus():
    if not PROMETHEUS:
        pytest.fail("prometheus is not installed (scripts/setup test installs it)")
    exporter = ThreadingHTTPServer(("127.0.0.1", 0), Exporter)
    threading.Thread(target=exporter.serve_forever, daemon=True).start()
    try:
        with running_prometheus(f"""  - job_name: exporter
    static_configs:
      - targets: ["127.0.0.1:{exporter.server_address[1]}"]
""") as (url, query):
            expected = 3 * (len(QUEUES) - 1) + 1
            wait_for(lambda: len(query("queue_depth") or []) == expected, timeout=30,
                     interval=0.2, what="Prometheus to scrape every queue")
            proxy = PinningProxy(url)
            try:
                yield url, query, proxy
            finally:
                proxy.server.shutdown()
    finally:
        exporter.shutdown()


def query_calls_seen_by_prometheus(url):
    """Prometheus' own count of /api/v1/query calls (every code), read from its /metrics."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as r:
        text = r.read().decode()
    total = 0
    for line in text.splitlines():
        if line.startswith("prometheus_http_requests_total{") and \
                'handler="/api/v1/query"' in line:
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


def selector(q):
    return f"env=prod,queue={q}"


def read_all(xm):
    """Every queue's answer through the external metrics API: (status, parsed body or text)."""
    out = {}
    for q in QUEUES:
        path = f"{BASE}/namespaces/default/queue.depth?labelSelector=" + urllib.parse.quote(
            selector(q), safe="")
        status, _, body = xm.request(path)
        out[q] = (status, json.loads(body)["items"] if status == 200 else body)
    return out


def run(start_xmetrics, url, query, proxy, aggregation, coalesce):
    """One xmetrics process on the proxy: asks for every queue, then lets it refresh every metric
    in a few full rounds. Returns what the API answers and the calls made after the first fetches."""
    xm = start_xmetrics("--backend", "prometheus", "--prometheus-url", proxy.url,
                        "--prometheus-aggregation", aggregation,
                        f"--prometheus-coalesce={'true' if coalesce else 'false'}")
    before = query_calls_seen_by_prometheus(url)
    start = len(proxy.snapshot())
    read_all(xm)  # the first requests: each metric's first fetch, one by one in both modes

    def refreshed_everything():
        metrics = xm.status()["metrics"]
        return len(metrics) == len(QUEUES) and all(m.get("lastFetchAgeSeconds", 99) <= 1
                                                   for m in metrics)
    wait_for(refreshed_everything, timeout=20, interval=0.1, what="every queue to be refreshed")
    # Steady state: five refresh rounds (distinct evaluation times xmetrics asks for).
    steady_from = len(proxy.snapshot())
    wait_for(lambda: len({t for t, _ in proxy.snapshot()[steady_from:]}) >= 6, timeout=30,
             interval=0.1, what="five more refresh rounds")
    answers = read_all(xm)
    status = xm.status()
    xm.stop()  # no call in flight once it has exited
    calls = proxy.snapshot()
    seen = query_calls_seen_by_prometheus(url) - before
    steady = calls[steady_from:]
    rounds = sorted({t for t, _ in steady})[1:-1]  # whole rounds only: not the first or last seen
    per_round = [sum(1 for t, _ in steady if t == r) for r in rounds]
    return {"answers": answers, "total": len(calls) - start, "seen_by_prometheus": seen,
            "per_round": per_round, "queries": {q for _, q in steady}, "status": status}


@pytest.mark.parametrize("aggregation", ["sum", "avg", "max"])
def test_coalesced_and_separate_queries_answer_alike(start_xmetrics, prometheus, aggregation):
    url, query, proxy = prometheus
    # One evaluation instant for both runs; the fixture saw every series scraped before it.
    pinned = time.time()
    proxy.pinned = f"{pinned:.3f}"
    try:
        off = run(start_xmetrics, url, query, proxy, aggregation, coalesce=False)
        on = run(start_xmetrics, url, query, proxy, aggregation, coalesce=True)
    finally:
        proxy.pinned = None

    # Every answer equal: value, timestamp, labels, and the error text of the absent and NaN queue.
    assert on["answers"] == off["answers"]
    answers = off["answers"]
    stamps = {items[0]["timestamp"] for status, items in answers.values() if status == 200}
    # Every metric's point is the one Prometheus evaluated at the pinned instant, in both runs.
    assert stamps == {time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(pinned)))}
    assert answers[ABSENT][0] == 404 and "Prometheus returned no series" in answers[ABSENT][1]
    if aggregation != "max":
        assert answers[BROKEN][0] == 404 and "Prometheus returned NaN" in answers[BROKEN][1]
    # The values are what Prometheus computes for each queue's own query.
    for i, q in enumerate(QUEUES):
        if q == ABSENT or (q == BROKEN and aggregation != "max"):
            continue
        status, items = answers[q]
        assert status == 200, items
        a, b = i * 10 + 1.5, i + 0.25
        want = {"sum": a + b, "avg": (a + b) / 2, "max": max(a, b)}[aggregation]
        if q == BROKEN:
            want = a  # Prometheus' max passes over a NaN
        quantity = items[0]["value"]
        got = float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)
        assert got == pytest.approx(want), (q, quantity)

    # Fewer calls: with coalescing each refresh is one grouped query instead of one per queue.
    grouped = (f'{aggregation} by (queue)(queue_depth{{env="prod",queue=~"'
               + "|".join(sorted(QUEUES)) + '"})')
    assert grouped in on["queries"], on["queries"]
    assert on["queries"] == {grouped}
    assert off["queries"] == {f'{aggregation}(queue_depth{{env="prod",queue="{q}"}})'
                              for q in QUEUES}
    assert off["per_round"] and set(off["per_round"]) == {len(QUEUES)}, off["per_round"]
    assert on["per_round"] and set(on["per_round"]) == {1}, on["per_round"]
    assert on["total"] < off["total"]
    # Prometheus itself saw exactly the calls the proxy forwarded.
    assert on["seen_by_prometheus"] == on["total"]
    assert off["seen_by_prometheus"] == off["total"]
    assert on["status"]["backend"]["details"]["coalescing"] == "on"
    assert off["status"]["backend"]["details"]["coalescing"] == "off"
    print(f"\n{aggregation}: query calls off={off['total']} on={on['total']} "
          f"(Prometheus counted off={off['seen_by_prometheus']} on={on['seen_by_prometheus']}; "
          f"xmetrics status calls off={off['status']['backend']['calls']} "
          f"on={on['status']['backend']['calls']}), "
          f"per refresh round off={off['per_round']} on={on['per_round']}")
