"""The external metrics API end to end: DogStatsD in, kubectl get --raw out, over real TLS."""
import calendar
import json
import time
import urllib.parse

from datadog.dogstatsd import DogStatsd

BASE = "/apis/external.metrics.k8s.io/v1beta1"


def metric_path(name, selector=None, namespace="default"):
    path = f"{BASE}/namespaces/{namespace}/{name}"
    if selector is not None:
        path += "?labelSelector=" + urllib.parse.quote(selector, safe="")
    return path


def wait_for_fresh_bucket():
    """Waits (at most 5 s) until the first half of a 10 s flush interval, so what a test sends next
    lands in one interval."""
    while time.time() % 10 > 5:
        time.sleep(0.1)


def read_items(xmetrics, name, selector=None):
    res = xmetrics.get_raw(metric_path(name, selector))
    body = json.loads(res.stdout)
    assert body["kind"] == "ExternalMetricValueList"
    assert body["apiVersion"] == "external.metrics.k8s.io/v1beta1"
    return body["items"]


def test_counter_from_the_datadog_client_reads_back_as_a_per_second_rate(xmetrics):
    client = DogStatsd(host=xmetrics.dogstatsd[0], port=xmetrics.dogstatsd[1],
                       disable_telemetry=True, disable_buffering=True)
    wait_for_fresh_bucket()
    before = xmetrics.status()["dogstatsd"]["metrics"]
    sent_at = time.time()
    # 30 increments in one 10 s flush interval = 3 per second, as the Datadog Agent reports counts.
    for _ in range(30):
        client.increment("checkout.requests", tags=["env:prod", "team:payments"])
    client.close_socket()
    xmetrics.wait_ingested(before + 30)

    items = read_items(xmetrics, "checkout.requests", "env=prod")
    assert len(items) == 1
    item = items[0]
    assert item["metricName"] == "checkout.requests"
    assert item["metricLabels"] == {"env": "prod"}
    assert item["value"] == "3"
    # The timestamp is the data point's — the start of its .rollup(30) bucket — not the request's.
    ts = calendar.timegm(time.strptime(item["timestamp"], "%Y-%m-%dT%H:%M:%SZ"))
    assert sent_at - 30 <= ts <= sent_at
    assert ts % 30 == 0


def test_counter_rate_is_exact_within_one_bucket(xmetrics):
    wait_for_fresh_bucket()
    before = xmetrics.status()["dogstatsd"]["metrics"]
    xmetrics.send("\n".join(["orders.created:1|c|#env:prod"] * 25))
    xmetrics.wait_ingested(before + 25)
    items = read_items(xmetrics, "orders.created", "env=prod")
    assert items[0]["value"] == "2500m"  # 25 in 10 s = 2.5/s


def test_gauge_value_uses_the_kubernetes_quantity_form(xmetrics):
    before = xmetrics.status()["dogstatsd"]["metrics"]
    xmetrics.send("queue.depth:1.5|g|#queue:emails\nqueue.depth:2000|g|#queue:sms")
    xmetrics.wait_ingested(before + 2)
    assert read_items(xmetrics, "queue.depth", "queue=emails")[0]["value"] == "1500m"
    assert read_items(xmetrics, "queue.depth", "queue=sms")[0]["value"] == "2k"
    # No selector: avg over both series.
    assert read_items(xmetrics, "queue.depth")[0]["value"] == "1000750m"


def test_every_selector_operator_is_translated(xmetrics):
    before = xmetrics.status()["dogstatsd"]["metrics"]
    xmetrics.send("\n".join([
        "jobs.pending:10|g|#env:prod,region:eu",
        "jobs.pending:20|g|#env:prod,region:us",
        "jobs.pending:40|g|#env:staging,region:eu,canary",
    ]))
    xmetrics.wait_ingested(before + 3)
    assert read_items(xmetrics, "jobs.pending", "region in (eu,us),env=prod")[0]["value"] == "15"
    assert read_items(xmetrics, "jobs.pending", "env!=prod")[0]["value"] == "40"
    assert read_items(xmetrics, "jobs.pending", "region notin (us)")[0]["value"] == "25"
    assert read_items(xmetrics, "jobs.pending", "canary")[0]["value"] == "40"
    assert read_items(xmetrics, "jobs.pending", "!canary")[0]["value"] == "15"
    queries = {m["selector"]: m["query"] for m in xmetrics.status()["metrics"]
               if m["metricName"] == "jobs.pending"}
    assert queries["env=prod,region in (eu,us)"] == \
        "avg:jobs.pending{env:prod AND region IN (eu,us)}.rollup(30)"
    assert queries["!canary"] == "avg:jobs.pending{NOT canary:*}.rollup(30)"


def test_equality_selectors_give_the_cluster_agent_query(xmetrics):
    xmetrics.send("nginx.net.request_per_s:7|g|#app:puppet,env:demo")
    time.sleep(0.2)
    xmetrics.get_raw(metric_path("nginx.net.request_per_s", "env=demo,app=puppet"), check=False)
    queries = [m["query"] for m in xmetrics.status()["metrics"]
               if m["metricName"] == "nginx.net.request_per_s"]
    assert queries == ["avg:nginx.net.request_per_s{app:puppet,env:demo}.rollup(30)"]


def test_a_metric_with_no_data_is_an_error_naming_the_query(xmetrics):
    status, headers, body = xmetrics.request(metric_path("never.sent", "app=web"))
    assert status == 404
    assert headers["Content-Type"] == "application/json"
    s = json.loads(body)
    assert s["kind"] == "Status" and s["reason"] == "NotFound" and s["code"] == 404
    assert "never.sent" in s["message"]
    assert "avg:never.sent{app:web}.rollup(30)" in s["message"]


def test_an_old_data_point_is_served_as_stale_not_as_a_number(xmetrics):
    old = int(time.time()) - 200  # within the 300 s window, beyond max-age 120 s
    before = xmetrics.status()["dogstatsd"]["metrics"]
    xmetrics.send(f"legacy.gauge:5|g|#env:old|T{old}")
    xmetrics.wait_ingested(before + 1)
    status, _, body = xmetrics.request(metric_path("legacy.gauge", "env=old"))
    s = json.loads(body)
    assert status == 503, body
    assert s["reason"] == "ServiceUnavailable"
    assert "stale" in s["message"] and "older than max-age 120s" in s["message"]
    assert "query-validity-period 30s" in s["message"]
    assert "legacy.gauge" in s["message"]


def test_a_value_just_past_max_age_is_served_in_the_query_validity_grace(start_xmetrics):
    """The Cluster Agent's query_validity_period: a point 135 s old (stamped at its 30 s rollup
    bucket's start: 135-165 s) is past max-age 120 s but within a 60 s grace, so it is still
    served, while status says it is not valid but in grace."""
    xmetrics = start_xmetrics("--query-validity-period", "60s")
    old = int(time.time()) - 135
    before = xmetrics.status()["dogstatsd"]["metrics"]
    xmetrics.send(f"grace.gauge:6|g|#env:grace|T{old}")
    xmetrics.wait_ingested(before + 1)
    status, _, body = xmetrics.request(metric_path("grace.gauge", "env=grace"))
    assert status == 200, body
    assert json.loads(body)["items"][0]["value"] == "6"
    entry = next(m for m in xmetrics.status()["metrics"] if m["metricName"] == "grace.gauge")
    assert entry["valid"] is False and entry["inGrace"] is True, entry
    assert entry["error"].startswith("in grace: older than max-age 120s"), entry


def test_metric_names_with_capitals_resolve_to_the_same_metric(xmetrics):
    before = xmetrics.status()["dogstatsd"]["metrics"]
    xmetrics.send("Shop.Visits:4|g|#env:prod")
    xmetrics.wait_ingested(before + 1)
    assert read_items(xmetrics, "shop.visits", "env=prod")[0]["value"] == "4"
    assert read_items(xmetrics, "Shop.Visits", "env=prod")[0]["value"] == "4"


def test_an_embedded_only_process_never_loads_libcurl(start_xmetrics):
    """libcurl and its ~25 libraries (3 MB resident) are loaded at the first outbound call; an
    embedded-only process makes none, even though its follower client exists. A client that
    loaded it at construction took idle RSS from 14 to 19 MB unnoticed."""
    xm = start_xmetrics()
    xm.send("idle.check:1|g")
    xm.request(metric_path("idle.check"))
    with open(f"/proc/{xm.proc.pid}/maps") as f:
        loaded = {line.split()[-1] for line in f if ".so" in line}
    assert not [lib for lib in loaded if "libcurl" in lib], sorted(loaded)
