"""--backend prometheus against a real Prometheus (Debian's `prometheus`) scraping an endpoint this
test serves; the value read through xmetrics matches what Prometheus computes. And the same
Prometheus scraping xmetrics' own /metrics, as a cluster's Prometheus would."""
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import wait_for

PROMETHEUS = shutil.which("prometheus")
BASE = "/apis/external.metrics.k8s.io/v1beta1"
EXPOSITION = """# TYPE queue_depth gauge
queue_depth{queue="emails",env="prod"} 12
queue_depth{queue="sms",env="prod"} 30
queue_depth{queue="push",env="dev"} 5
# TYPE ratio gauge
ratio{kind="broken"} NaN
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Exporter(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        body = EXPOSITION.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextlib.contextmanager
def running_prometheus(scrape_configs):
    """A Prometheus scraping every second with `scrape_configs` (YAML list items); yields its URL
    and a function running an instant query (None while it cannot answer)."""
    if not PROMETHEUS:
        pytest.fail("prometheus is not installed (scripts/setup test installs it)")
    workdir = tempfile.mkdtemp(prefix="xmetrics-prom-")
    config = os.path.join(workdir, "prometheus.yml")
    with open(config, "w") as f:
        f.write(f"""global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
{scrape_configs}""")
    port = free_port()
    log = open(os.path.join(workdir, "prometheus.log"), "w")
    proc = subprocess.Popen([PROMETHEUS, f"--config.file={config}",
                             f"--storage.tsdb.path={workdir}/data",
                             f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def query(q):
        try:
            with urllib.request.urlopen(f"{url}/api/v1/query?query={urllib.parse.quote(q)}",
                                        timeout=2) as r:
                return json.loads(r.read())["data"]["result"]
        except OSError:
            return None

    query.process = proc  # for tests that stop it (SIGSTOP) to play a hung Prometheus
    try:
        yield url, query
    finally:
        proc.send_signal(signal.SIGCONT)
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)


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
            wait_for(lambda: query("queue_depth"), timeout=30, interval=0.2,
                     what="Prometheus to scrape the exporter")
            yield url, query
    finally:
        exporter.shutdown()


def get(xm, name, selector=None):
    path = f"{BASE}/namespaces/default/{name}"
    if selector:
        path += "?labelSelector=" + urllib.parse.quote(selector, safe="")
    return xm.request(path)


def test_inline_metrics_match_what_prometheus_computes(start_xmetrics, prometheus):
    url, query = prometheus
    xm = start_xmetrics("--backend", "prometheus", "--prometheus-url", url)
    res = xm.get_raw(f"{BASE}/namespaces/default/queue.depth?labelSelector=env%3Dprod")
    item = json.loads(res.stdout)["items"][0]
    expected = query('sum(queue_depth{env="prod"})')[0]["value"][1]
    assert expected == "42"
    assert item["value"] == "42"
    _, _, body = get(xm, "queue.depth", "queue in (emails,push)")
    assert json.loads(body)["items"][0]["value"] == "17"
    _, _, body = get(xm, "queue.depth", "queue notin (emails),env!=dev")
    assert json.loads(body)["items"][0]["value"] == "30"
    queries = {m["selector"]: m["query"] for m in xm.status()["metrics"]}
    assert queries["env=prod"] == 'sum(queue_depth{env="prod"})'
    assert xm.status()["backend"]["name"] == "prometheus"


def test_empty_and_nan_results_are_errors_that_say_so(start_xmetrics, prometheus):
    url, _ = prometheus
    xm = start_xmetrics("--backend", "prometheus", "--prometheus-url", url,
                        "--prometheus-aggregation", "max")
    status, _, body = get(xm, "nothing.scraped")
    assert status == 404 and "Prometheus returned no series" in body, body
    status, _, body = get(xm, "ratio", "kind=broken")
    assert status == 404 and "Prometheus returned NaN" in body, body


def test_several_backends_with_a_per_metric_choice_and_explicit_promql(start_xmetrics, prometheus,
                                                                        tmp_path):
    """Embedded stays the default; one metric is answered by Prometheus with an explicit PromQL
    query and another by Prometheus's own inline translation, all from one config file."""
    url, query = prometheus
    config = tmp_path / "xmetrics.yaml"
    config.write_text(f"""backend: embedded
backends: prometheus
prometheus-url: {url}
metrics:
  - name: emails.waiting
    backend: prometheus
    query: max(queue_depth{{queue="emails"}}) * 2
  - name: queue_depth
    backend: prometheus
""")
    xm = start_xmetrics("--config", str(config))
    before = xm.status()["dogstatsd"]["metrics"]
    xm.send("local.gauge:7|g|#env:it")
    xm.wait_ingested(before + 1)

    expected = query('max(queue_depth{queue="emails"}) * 2')[0]["value"][1]
    status, _, body = get(xm, "emails.waiting")
    assert status == 200, body
    assert json.loads(body)["items"][0]["value"] == expected == "24"
    status, _, body = get(xm, "queue_depth", "env=prod")
    assert status == 200, body
    assert json.loads(body)["items"][0]["value"] == "42"  # sum over emails and sms
    status, _, body = get(xm, "local.gauge", "env=it")
    assert status == 200, body
    assert json.loads(body)["items"][0]["value"] == "7"

    report = xm.status()
    by_name = {m["metricName"]: m for m in report["metrics"]}
    assert by_name["emails.waiting"]["backend"] == "prometheus"
    assert by_name["emails.waiting"]["resolution"] == "configured"
    assert by_name["emails.waiting"]["query"] == 'max(queue_depth{queue="emails"}) * 2'
    assert by_name["queue_depth"]["query"] == 'sum(queue_depth{env="prod"})'
    assert by_name["local.gauge"]["backend"] == "embedded"
    assert by_name["local.gauge"]["resolution"] == "inline"
    assert [b["name"] for b in report["backends"]] == ["embedded", "prometheus"]
    assert report["backend"]["name"] == "embedded"


def test_a_metric_choosing_a_backend_that_is_not_running_stops_the_start(start_xmetrics, tmp_path):
    config = tmp_path / "xmetrics.yaml"
    config.write_text("""metrics:
  - name: emails.waiting
    backend: prometheus
    query: up
""")
    with pytest.raises(AssertionError) as failure:
        start_xmetrics("--config", str(config))
    message = str(failure.value)
    assert "emails.waiting" in message and "not running" in message and "backends" in message


def test_prometheus_scrapes_xmetrics_own_metrics_over_tls_with_a_token(start_xmetrics):
    xm = start_xmetrics()
    with running_prometheus(f"""  - job_name: xmetrics
    scheme: https
    tls_config:
      ca_file: {xm.ca_file}
    authorization:
      credentials: {xm.token}
    static_configs:
      - targets: ["127.0.0.1:{xm.port}"]
""") as (_, query):
        up = wait_for(lambda: query('up{job="xmetrics"} == 1'), timeout=30, interval=0.2,
                      what="Prometheus to scrape xmetrics")
        assert up[0]["value"][1] == "1"
        # Its own scrapes are counted, and the histogram arrived as one.
        scrapes = wait_for(
            lambda: query('xmetrics_http_requests_total{job="xmetrics",path="metrics",code="200"} > 1'),
            timeout=30, interval=0.2, what="a second scrape to be counted")
        assert float(scrapes[0]["value"][1]) > 1
        assert query('xmetrics_http_request_duration_seconds_bucket{path="metrics",le="+Inf"}')


def test_sigterm_while_prometheus_hangs_exits_within_a_second(start_xmetrics):
    """Issue 13, item 14: Prometheus stopped (SIGSTOP: its connections stay open, nothing answers)
    while xmetrics asks it; SIGTERM cancels the call and xmetrics is gone within a second."""
    import time
    if not PROMETHEUS:
        pytest.fail("prometheus is not installed (scripts/setup test installs it)")
    with running_prometheus("  []\n") as (url, query):
        wait_for(lambda: query("up") is not None, timeout=30, interval=0.2,
                 what="Prometheus to answer")
        xm = start_xmetrics("--backend", "prometheus", "--prometheus-url", url,
                            "--first-fetch-timeout", "1s")
        query.process.send_signal(signal.SIGSTOP)
        get(xm, "hung.metric")  # its first fetch gives up after 1 s; the call hangs on
        started = time.monotonic()
        xm.proc.send_signal(signal.SIGTERM)
        xm.proc.wait(timeout=15)
        took = time.monotonic() - started
        assert took < 1.0, f"SIGTERM took {took:.2f}s with Prometheus hung"
        assert xm.proc.returncode == 0


def test_a_hung_prometheus_costs_only_its_own_metrics(start_xmetrics, tmp_path):
    """Issue 13, item 2: Prometheus stopped (SIGSTOP) while xmetrics asks it. The embedded metrics
    of the same process go on being refreshed, and a new embedded metric gets its first value at
    once: each backend has its own refresh loop."""
    import time
    with running_prometheus("  []\n") as (url, query):
        wait_for(lambda: query("up") is not None, timeout=30, interval=0.2,
                 what="Prometheus to answer")
        config = tmp_path / "xmetrics.yaml"
        config.write_text(f"""backend: embedded
backends: prometheus
prometheus-url: {url}
metrics:
  - name: from.prometheus
    backend: prometheus
    query: vector(5)
""")
        xm = start_xmetrics("--config", str(config), "--first-fetch-timeout", "3s")
        before = xm.status()["dogstatsd"]["metrics"]
        xm.send("local.gauge:7|g|#env:it")
        xm.wait_ingested(before + 1)
        status, _, body = get(xm, "from.prometheus")
        assert status == 200 and json.loads(body)["items"][0]["value"] == "5", body
        status, _, body = get(xm, "local.gauge", "env=it")
        assert status == 200, body

        query.process.send_signal(signal.SIGSTOP)
        try:
            def local_fetch_age():
                by_name = {m["metricName"]: m for m in xm.status()["metrics"]}
                return by_name["local.gauge"]["lastFetchAgeSeconds"]
            # 12 s: longer than one Prometheus timeout, so a loop shared with it would show it.
            deadline = time.monotonic() + 12
            worst = 0
            while time.monotonic() < deadline:
                worst = max(worst, local_fetch_age())
                time.sleep(0.25)
            assert worst <= 3, f"the embedded metric went {worst}s without a refresh"

            xm.send("fresh.gauge:3|g")
            wait_for(lambda: xm.status()["dogstatsd"]["metrics"] >= before + 2, timeout=10,
                     interval=0.05, what="the new gauge to be ingested")
            asked = time.monotonic()
            status, _, body = get(xm, "fresh.gauge")
            took = time.monotonic() - asked
            assert status == 200, body
            assert json.loads(body)["items"][0]["value"] == "3"
            assert took < 1.0, f"a new embedded metric waited {took:.2f}s behind Prometheus"
            # Prometheus' own metric is the one that suffers: not refreshed since it stopped.
            by_name = {m["metricName"]: m for m in xm.status()["metrics"]}
            assert by_name["from.prometheus"]["lastFetchAgeSeconds"] >= 10
        finally:
            query.process.send_signal(signal.SIGCONT)
