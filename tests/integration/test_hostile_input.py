"""Hostile bytes on loopback: what a request path or a backend's answer holds never reaches JSON as
anything but valid UTF-8, and a namespace that Kubernetes could not have is refused at the door."""
import json
import os
import signal
import socket
import ssl
import subprocess
import time

import pytest

from conftest import wait_for
from test_datadog_backend import start_datadog
from test_external_metrics import metric_path

BASE = "/apis/external.metrics.k8s.io/v1beta1"


def strict_json(body):
    """The body as a JSON decoder that insists on UTF-8 reads it (bytes 0x80-0xff fail)."""
    return json.loads(body.decode("utf-8", errors="strict"))


def test_a_namespace_kubernetes_could_not_have_is_a_400_naming_it(start_xmetrics, request):
    xm = start_xmetrics()
    for ns in ("%ff%fe", "..", "%00", "Default", "a_b", "-a", "a" * 64):
        status, _, body = xm.request(f"{BASE}/namespaces/{ns}/queue.depth", decode=False)
        s = strict_json(body)
        assert status == 400 and s["reason"] == "BadRequest", (ns, status, s)
        assert "invalid namespace" in s["message"] and "DNS label" in s["message"], s
    status, _, body = xm.request(f"{BASE}/namespaces/%ff%fe/queue.depth", decode=False)
    assert "\\xff\\xfe" in strict_json(body)["message"]
    # None of them was registered: status stays valid UTF-8 JSON and `xmetrics status` reads it.
    status, _, body = xm.request("/xmetrics/v1/status", decode=False)
    assert status == 200
    assert not [m for m in strict_json(body)["metrics"] if m["namespace"] != "default"]
    binary = os.path.abspath(request.config.getoption("--xmetrics-binary"))
    res = subprocess.run([binary, "status", "--kubeconfig", xm.kubeconfig], capture_output=True,
                         timeout=30)
    assert res.returncode == 0, res.stderr
    res.stdout.decode("utf-8", errors="strict")


def test_a_selector_of_hostile_bytes_comes_back_escaped(start_xmetrics):
    xm = start_xmetrics()
    status, _, body = xm.request(f"{BASE}/namespaces/default/queue.depth?labelSelector=a%3D%ff%c3",
                                 decode=False)
    s = strict_json(body)
    assert status == 400 and "invalid labelSelector" in s["message"], s
    assert "\\xff\\xc3" in s["message"], s["message"]


def test_a_backend_answering_bytes_that_are_not_utf8_gives_a_valid_error(start_xmetrics,
                                                                          fake_datadog):
    dd = fake_datadog()
    dd.values["binary.answer"] = 1
    junk = bytes(range(0x80, 0x100)) * 128  # 16 KB of bytes 0x80-0xff
    dd.fail_next(*[("status", 400, junk)] * 20)
    xm = start_datadog(start_xmetrics, dd)
    status, _, body = xm.request(f"{BASE}/namespaces/default/binary.answer", decode=False)
    s = strict_json(body)
    assert status >= 400 and s["kind"] == "Status", s
    assert "\\x80" in s["message"] or "\\xff" in s["message"], s["message"][:300]
    status, _, body = xm.request("/xmetrics/v1/status", decode=False)
    assert status == 200
    (m,) = [m for m in strict_json(body)["metrics"] if m["metricName"] == "binary.answer"]
    assert m["valid"] is False and m["error"], m


def test_keys_and_url_credentials_echoed_by_the_backend_are_never_shown(start_xmetrics,
                                                                        fake_datadog):
    """A Datadog (or proxy) that echoes the request's headers in its error bodies, behind an
    endpoint URL with user:password@: neither key nor password reaches the logs, the status, the
    self-metrics or the Status an HPA gets."""
    dd = fake_datadog()
    dd.values["echo.metric"] = 1
    password = "hunter2-url-password"
    echo = json.dumps({"errors": [f"bad request; headers: DD-API-KEY={dd.api_key} "
                                  f"DD-APPLICATION-KEY={dd.app_key} url=http://bob:{password}@x"]})
    dd.fail_next(("status", 500, echo), ("status", 500, echo), *[("status", 400, echo)] * 10)
    endpoint = dd.url.replace("http://", f"http://alice:{password}@")
    xm = start_xmetrics("--backend", "datadog", "--datadog-endpoint", endpoint,
                        "--datadog-endpoint-backoff", "1s", "--datadog-timeout", "1s",
                        env={"DD_API_KEY": dd.api_key, "DD_APP_KEY": dd.app_key})
    seen = []
    for _ in range(3):
        status, _, body = xm.request(f"{BASE}/namespaces/default/echo.metric", decode=False)
        seen.append(body.decode())
    assert any("bad request; headers" in b for b in seen), seen  # the echo itself is shown...
    assert any("<redacted>" in b for b in seen), seen            # ...with the secrets taken out
    for path in ("/xmetrics/v1/status", "/metrics", "/xmetrics/v1/config"):
        status, _, body = xm.request(path, decode=False)
        assert status == 200, path
        seen.append(body.decode())
    seen.append(xm.logs())
    for text in seen:
        for secret in (dd.api_key, dd.app_key, password):
            assert secret not in text, (secret, text[:2000])


def test_huge_selectors_are_refused_at_the_door_naming_the_limit(start_xmetrics):
    xm = start_xmetrics()
    big = ",".join(f"k{i}=v" for i in range(65))  # 65 requirements, well under 4 KiB
    status, _, body = xm.request(f"{BASE}/namespaces/default/m?labelSelector={big}", decode=False)
    s = strict_json(body)
    assert status == 400 and "65 requirements" in s["message"] and "at most 64" in s["message"], s
    long_value = "a=" + "x" * 5000
    status, _, body = xm.request(f"{BASE}/namespaces/default/m?labelSelector={long_value}",
                                 decode=False)
    s = strict_json(body)
    assert status == 400 and "5002 bytes" in s["message"] and "at most 4096" in s["message"], s
    fine = ",".join(f"k{i}=v" for i in range(64))
    status, _, body = xm.request(f"{BASE}/namespaces/default/m?labelSelector={fine}", decode=False)
    assert status == 404, body  # accepted, just no such series
    assert len([m for m in xm.status()["metrics"] if m["metricName"] == "m"]) == 1


def _tls(xm):
    ctx = ssl.create_default_context(cafile=xm.ca_file)
    ctx.load_cert_chain(xm.client_cert, xm.client_key)
    return ctx.wrap_socket(socket.create_connection((xm.host, xm.port), timeout=5),
                           server_hostname="localhost")


def _closed_by_server(sock):
    sock.setblocking(False)
    try:
        return sock.recv(1) == b""
    except (ssl.SSLWantReadError, BlockingIOError):
        return False
    except OSError:
        return True
    finally:
        sock.setblocking(True)


def test_a_request_trickled_a_byte_a_second_is_cut_while_idle_and_new_clients_are_served(
        start_xmetrics):
    """Slowloris, small: 20 connections send a request head one byte a second. Each is closed
    about 10 s after its first byte (the request timeout), not after the 90 s idle timeout; an
    idle keep-alive connection (no byte sent) stays usable; a new client is served meanwhile."""
    xm = start_xmetrics()
    head = b"GET /apis HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + b"a" * 200
    slow = [_tls(xm) for _ in range(20)]
    idle = _tls(xm)
    started = time.monotonic()
    closed_at = {}
    fresh_latency = []
    for second in range(16):
        for i, sock in enumerate(slow):
            if i in closed_at:
                continue
            if _closed_by_server(sock):
                closed_at[i] = time.monotonic() - started
                continue
            try:
                sock.send(head[second:second + 1])
            except OSError:
                closed_at[i] = time.monotonic() - started
        t = time.monotonic()
        status, _, _ = xm.request("/apis")
        fresh_latency.append(time.monotonic() - t)
        assert status == 200
        if len(closed_at) == len(slow):
            break
        time.sleep(1)
    assert len(closed_at) == len(slow), f"still open after {time.monotonic() - started:.0f}s"
    assert max(closed_at.values()) < 13, closed_at
    assert min(closed_at.values()) > 8, closed_at  # the timeout, not an early cut
    assert max(fresh_latency) < 1.0, fresh_latency
    # The idle connection, silent all along, still serves a request.
    idle.sendall(b"GET /apis HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert idle.recv(64).startswith(b"HTTP/1.1 200"), "the idle keep-alive connection was cut"
    for sock in slow + [idle]:
        sock.close()


def _post(xm, path, body, token=None):
    import http.client
    ctx = ssl.create_default_context(cafile=xm.ca_file)
    if token is None:
        ctx.load_cert_chain(xm.client_cert, xm.client_key)
    conn = http.client.HTTPSConnection(xm.host, xm.port, context=ctx, timeout=10)
    try:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        conn.request("POST", path, body=body, headers=headers)
        res = conn.getresponse()
        return res.status, res.read().decode()
    finally:
        conn.close()


def test_only_the_replicas_own_certificate_may_replicate(start_xmetrics):
    """One POST carrying thousands of invented metrics spent the API budget: demand through
    /xmetrics/v1/replicate comes only from the replicas (xmetrics' own CA), and within bounds."""
    xm = start_xmetrics()
    invented = {"generation": 0, "demand": [
        {"namespace": "default", "metricName": f"invented.m{i}", "selector": ""} for i in range(50)]}
    status, body = _post(xm, "/xmetrics/v1/replicate", json.dumps(invented), token=xm.token)
    assert status == 403, body
    assert "only xmetrics' replicas" in json.loads(body)["message"], body
    assert not [m for m in xm.status()["metrics"] if m["metricName"].startswith("invented.")]
    # The replicas' identity: allowed, and hostile items in its demand are dropped.
    demand = {"generation": 0, "demand": [
        {"namespace": "default", "metricName": "replica.wanted", "selector": ""},
        {"namespace": "..", "metricName": "replica.badns", "selector": ""},
        {"namespace": "default", "metricName": "replica.huge", "selector": "a=" + "x" * 5000}]}
    status, body = _post(xm, "/xmetrics/v1/replicate", json.dumps(demand))
    assert status == 200, body
    names = {m["metricName"] for m in xm.status()["metrics"]}
    assert "replica.wanted" in names and not names & {"replica.badns", "replica.huge"}, names


def test_sigterm_while_a_backend_hangs_exits_within_a_second(start_xmetrics, fake_datadog):
    """Issue 13, items 8 and 14: Kubernetes sends SIGKILL 30 s after SIGTERM. A Datadog call that
    hangs (the API accepted the connection and never answers) is cancelled at shutdown, and the
    process is gone within a second, with its last log line."""
    dd = fake_datadog()
    dd.values["hung.metric"] = 1
    xm = start_xmetrics("--backend", "datadog", "--datadog-endpoint", dd.url,
                        "--datadog-timeout", "60s", "--first-fetch-timeout", "1s",
                        env={"DD_API_KEY": dd.api_key, "DD_APP_KEY": dd.app_key})
    dd.fail_next(*[("timeout", 60)] * 5)
    xm.request(metric_path("hung.metric"))  # its first fetch gives up after 1 s; the call hangs on
    wait_for(lambda: len(dd.calls) >= 1, what="the hung call")
    started = time.monotonic()
    xm.proc.send_signal(signal.SIGTERM)
    xm.proc.wait(timeout=10)
    took = time.monotonic() - started
    assert xm.proc.returncode == 0, xm.logs()
    assert took < 1.0, f"SIGTERM took {took:.2f}s with a hung Datadog call"
    assert "stopped" in xm.logs().splitlines()[-1]


def test_sigterm_answers_a_waiting_first_fetch_and_exits_within_a_second(start_xmetrics,
                                                                          fake_datadog):
    """A request waiting for its first fetch (up to first-fetch-timeout, 5 s) when SIGTERM comes
    is answered at once, and the process exits within a second."""
    import threading
    dd = fake_datadog()
    xm = start_xmetrics("--backend", "datadog", "--datadog-endpoint", dd.url,
                        "--datadog-timeout", "60s",
                        env={"DD_API_KEY": dd.api_key, "DD_APP_KEY": dd.app_key})
    dd.fail_next(*[("timeout", 60)] * 5)
    answer = {}

    def ask():
        try:
            answer["status"], _, answer["body"] = xm.request(metric_path("waiting.metric"))
        except Exception as e:  # noqa: BLE001 - a closed connection is an answer too
            answer["error"] = repr(e)

    asking = threading.Thread(target=ask)
    asking.start()
    wait_for(lambda: len(dd.calls) >= 1, what="the first fetch's call")
    started = time.monotonic()
    xm.proc.send_signal(signal.SIGTERM)
    xm.proc.wait(timeout=10)
    took = time.monotonic() - started
    asking.join(timeout=10)
    assert took < 1.0, f"SIGTERM took {took:.2f}s with a first fetch waiting"
    # Answered, saying why (or the connection closed): never left to the client's timeout.
    assert "error" in answer or "shutting down" in answer["body"], answer


def test_a_flood_of_invented_names_does_not_lock_out_a_real_metric(start_xmetrics):
    """Issue 13, item 5: invented names filled --max-metrics and every new legitimate metric got
    429 for inactive-after (10 min). Names that never had a value make room now."""
    xm = start_xmetrics("--max-metrics", "20")
    before = xm.status()["dogstatsd"]["metrics"]
    xm.send("real.queue:7|g|#queue:jobs")
    xm.wait_ingested(before + 1)
    for i in range(40):
        status, _, body = xm.request(metric_path(f"invented.{i}"))
        assert status == 404, body  # no such series, and registered all the same
    status, _, body = xm.request(metric_path("real.queue", "queue=jobs"))
    assert status == 200, body
    assert json.loads(body)["items"][0]["value"] == "7"
    # The dropped names leave the published values at the next refresh (1 s here).
    wait_for(lambda: len(xm.status()["metrics"]) <= 20, timeout=5,
             what="the published values to hold at most --max-metrics")


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


@pytest.mark.measures_rss
def test_a_flood_of_invented_dogstatsd_tag_sets_stays_within_the_bytes_bound(start_xmetrics):
    """Issue 13, item 6: a million tag sets of histograms took 773 MB before maxSeries refused the
    rest, and then every new legitimate series for 15 min. 40,000 here (150 MB unbounded) against
    a 4 MiB bound: memory stays flat, and a series a query reads and a brand-new one are served."""
    from test_self_metrics import scrape
    xm = start_xmetrics("--embedded-max-bytes", "4Mi")
    before = xm.status()["dogstatsd"]["metrics"]
    xm.send("checkout.requests:5|g|#env:prod")
    xm.wait_ingested(before + 1)
    status, _, body = xm.request(metric_path("checkout.requests", "env=prod"))
    assert status == 200, body  # read by a query: protected from eviction from now on
    rss_before = rss_kb(xm.proc.pid)

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    flood, per_datagram = 40_000, 20
    for first in range(0, flood, per_datagram):
        sock.sendto("\n".join(f"flood.latency:{i % 100}|h|#env:prod,request_id:{i}"
                              for i in range(first, first + per_datagram)).encode(), xm.dogstatsd)
        if first % (per_datagram * 50) == 0:
            time.sleep(0.002)  # paced so the kernel keeps (nearly) all of it
    sock.close()
    ingested = before + 1

    def settled():
        nonlocal ingested
        now = xm.status()["dogstatsd"]["metrics"]
        done, ingested = now == ingested, now
        return done
    wait_for(settled, timeout=20, interval=0.3, what="the flood to be ingested")
    assert ingested - before > flood // 2, "most of the flood should have arrived"

    parsed, _ = scrape(xm)
    assert parsed.get("xmetrics_embedded_max_bytes") == 4 << 20
    assert 0 < parsed.get("xmetrics_embedded_bytes") <= 4 << 20
    assert parsed.get("xmetrics_embedded_evicted_series_total") > flood // 4
    assert parsed.get("xmetrics_embedded_refused_total", bound="bytes") == 0
    grown_mb = (rss_kb(xm.proc.pid) - rss_before) / 1024
    assert grown_mb < 30, f"VmRSS grew by {grown_mb:.0f} MB over a 4 MiB bound"

    # A brand-new series after the flood is stored and served; the one a query read survived.
    ingested = xm.status()["dogstatsd"]["metrics"]
    xm.send("checkout.latency:42|ms|#env:prod")
    xm.wait_ingested(ingested + 1)
    status, _, body = xm.request(metric_path("checkout.latency.avg", "env=prod"))
    assert status == 200, body
    assert json.loads(body)["items"][0]["value"] == "42"
    status, _, body = xm.request(metric_path("checkout.requests", "env=prod"))
    assert status == 200, body
    assert json.loads(body)["items"][0]["value"] == "5"


def test_a_full_connection_table_never_starves_new_clients(start_xmetrics):
    """Issue 13, item 1: at the connection cap, tricklers filled every slot and new clients waited
    in the backlog until one timed out (p50 5 s). Now a new client takes the place of the
    connection that has done least for longest: the oldest trickler first, never one answering;
    an idle keep-alive connection is kept while tricklers can make room."""
    cap = 30
    xm = start_xmetrics("--max-connections", str(cap))
    idle = _tls(xm)  # a keep-alive client between requests (the aggregator)
    time.sleep(0.2)
    head = b"GET /apis HTTP/1.1\r\nHost: localhost\r\nX-Slow: "
    slow = []
    for i in range(cap - 1):  # the rest of the table: each has sent a first byte of a request
        sock = _tls(xm)
        sock.send(head[:1])
        slow.append(sock)
    time.sleep(0.3)
    latencies = []
    fresh = []
    for _ in range(20):  # new clients that stay connected: each needs a slot of its own
        t = time.monotonic()
        sock = _tls(xm)
        sock.sendall(b"GET /apis HTTP/1.1\r\nHost: localhost\r\n\r\n")
        answer = sock.recv(64)
        latencies.append(time.monotonic() - t)
        assert answer.startswith(b"HTTP/1.1 200"), answer
        fresh.append(sock)
    assert max(latencies) < 1.0, latencies  # was: the 10 s request timeout of a trickler
    time.sleep(0.2)
    cut = [i for i, sock in enumerate(slow) if _closed_by_server(sock)]
    # Each new client took one trickler's place, the oldest first; the served clients, idle now,
    # were kept (tricklers go before idle connections).
    assert cut == list(range(20)), cut
    assert not any(_closed_by_server(sock) for sock in fresh)
    idle.sendall(b"GET /apis HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert idle.recv(64).startswith(b"HTTP/1.1 200"), "the idle keep-alive connection was cut"
    for sock in slow + fresh + [idle]:
        sock.close()


def test_sigterm_with_idle_keep_alive_connections_exits_within_a_second(start_xmetrics):
    """Issue 13, item 8: idle keep-alive connections (an aggregator holds some) no longer hold
    the exit: stop closes every connection that is not answering a request."""
    xm = start_xmetrics()
    held = [_tls(xm) for _ in range(20)]
    for sock in held[:10]:
        sock.sendall(b"GET /apis HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert sock.recv(64).startswith(b"HTTP/1.1 200")
    started = time.monotonic()
    xm.proc.send_signal(signal.SIGTERM)
    xm.proc.wait(timeout=15)
    took = time.monotonic() - started
    assert took < 0.5, f"SIGTERM took {took:.2f}s with 20 idle connections"
    assert xm.proc.returncode == 0
    for sock in held:
        sock.close()
