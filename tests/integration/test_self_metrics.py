"""/metrics: xmetrics' own metrics over the same TLS and authentication as the API, read with the
Prometheus client library's parser."""
import math
import time
import urllib.parse

from prometheus_client.parser import text_string_to_metric_families


BASE = "/apis/external.metrics.k8s.io/v1beta1"


def metric_path(name, selector=None, namespace="default"):
    path = f"{BASE}/namespaces/{urllib.parse.quote(namespace, safe='')}/{name}"
    if selector is not None:
        path += "?labelSelector=" + urllib.parse.quote(selector, safe="")
    return path


class Scrape:
    """One parsed exposition: every sample by name and labels."""

    def __init__(self, text):
        self.families = {f.name: f for f in text_string_to_metric_families(text)}
        self.samples = {}
        for family in self.families.values():
            for s in family.samples:
                key = (s.name, tuple(sorted(s.labels.items())))
                assert key not in self.samples, f"duplicate series {key}"
                self.samples[key] = s.value

    def get(self, name, **labels):
        return self.samples.get((name, tuple(sorted(labels.items()))))

    def series(self, name):
        return {k[1]: v for k, v in self.samples.items() if k[0] == name}


def scrape(xm, **kwargs):
    status, headers, body = xm.request("/metrics", **kwargs)
    assert status == 200, body
    assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    return Scrape(body), body


def test_unauthenticated_scrapes_are_refused(xmetrics):
    status, _, body = xmetrics.request("/metrics", client_cert=False)
    assert status == 401, body
    assert "Unauthorized" in body
    status, _, _ = xmetrics.request("/metrics", client_cert=False,
                                    headers={"Authorization": "Bearer not-a-known-token"})
    assert status == 401


def test_a_bearer_token_may_scrape(xmetrics):
    parsed, _ = scrape(xmetrics, client_cert=False,
                       headers={"Authorization": f"Bearer {xmetrics.token}"})
    assert list(parsed.series("xmetrics_build_info").values()) == [1]


def test_counters_and_metric_state_follow_a_known_sequence_of_requests(start_xmetrics):
    xm = start_xmetrics()
    before = xm.status()["dogstatsd"]["metrics"]
    xm.send("selfm.gauge:5|g|#env:prod")
    xm.wait_ingested(before + 1)

    # 3 reads answered 200 (the first registers the metric and fetches it at once), 1 read of a
    # metric nobody sends (404), 2 health checks, 1 unauthenticated scrape (401).
    for _ in range(3):
        status, _, body = xm.request(metric_path("selfm.gauge", "env=prod"))
        assert status == 200, body
    status, _, body = xm.request(metric_path("selfm.never.sent"))
    assert status == 404, body
    for _ in range(2):
        assert xm.request("/healthz", client_cert=False)[0] == 200
    assert xm.request("/metrics", client_cert=False)[0] == 401

    parsed, text = scrape(xm)
    # HELP and TYPE once per family.
    for family in parsed.families.values():
        assert text.count(f"# TYPE {family.name} ") + text.count(f"# TYPE {family.name}_total ") \
            == 1, family.name

    requests = "xmetrics_http_requests_total"
    assert parsed.get(requests, path="external_metric", code="200") == 3
    assert parsed.get(requests, path="external_metric", code="404") == 1
    assert parsed.get(requests, path="health", code="200") == 2
    assert parsed.get(requests, path="metrics", code="401") == 1
    assert parsed.get(requests, path="status", code="200") >= 1  # the harness reads the status
    # Only route classes, never raw paths.
    assert {dict(k)["path"] for k in parsed.series(requests)} <= {
        "discovery", "external_metric", "status", "health", "openapi", "metrics", "replication",
        "other"}

    duration = "xmetrics_http_request_duration_seconds"
    assert parsed.families[duration].type == "histogram"
    buckets = sorted(((float(dict(k)["le"]), v) for k, v in parsed.series(duration + "_bucket").items()
                      if dict(k)["path"] == "external_metric"))
    assert buckets[-1][0] == math.inf
    assert [b[0] for b in buckets[:3]] == [0.0001, 0.00025, 0.0005]
    counts = [v for _, v in buckets]
    assert counts == sorted(counts), "buckets are cumulative"
    assert buckets[-1][1] == 4
    assert parsed.get(duration + "_count", path="external_metric") == 4
    assert 0 < parsed.get(duration + "_sum", path="external_metric") < 10

    labels = {"namespace": "default", "metric": "selfm.gauge", "selector": "env=prod"}
    assert parsed.get("xmetrics_metric_valid", **labels) == 1
    age = parsed.get("xmetrics_metric_value_age_seconds", **labels)
    assert 0 <= age <= 60, age  # the start of its 30 s rollup bucket
    missing = {"namespace": "default", "metric": "selfm.never.sent", "selector": ""}
    assert parsed.get("xmetrics_metric_valid", **missing) == 0
    assert parsed.get("xmetrics_metric_value_age_seconds", **missing) is None

    assert parsed.get("xmetrics_backend_first_fetches_total") >= 2
    assert parsed.get("xmetrics_refresh_cycles_total") >= 1
    assert parsed.get("xmetrics_refresh_cycle_duration_seconds") >= 0
    assert parsed.get("xmetrics_dogstatsd_packets_total") == 1  # the one datagram sent above
    assert parsed.get("xmetrics_dogstatsd_malformed_total") == 0
    assert parsed.get("xmetrics_dogstatsd_dropped_total") == 0
    assert parsed.get("xmetrics_leader") == 1
    assert list(parsed.series("xmetrics_build_info").values()) == [1]
    assert parsed.get("process_resident_memory_bytes") > 1 << 20
    assert time.time() - 600 < parsed.get("process_start_time_seconds") <= time.time() + 1
    # Standalone, embedded backend: no cluster watches and no remote backend calls.
    assert not parsed.series("xmetrics_watch_restarts_total")
    assert not parsed.series("xmetrics_backend_calls_total")

    # A later scrape counts the earlier one; the age moves on with the clock.
    time.sleep(1.1)
    again, _ = scrape(xm)
    assert again.get(requests, path="metrics", code="200") == 1
    assert again.get("xmetrics_metric_value_age_seconds", **labels) >= age + 1


def test_a_hostile_namespace_never_becomes_a_label_value(start_xmetrics):
    xm = start_xmetrics()
    # Quotes, a backslash, a line feed and a byte that is not UTF-8 in the URL's namespace: refused
    # at the door (a namespace is a DNS label), so no series ever carries them. The exposition's
    # own escaping of such values is covered by tests/unit/telemetry/exposition_test.cpp.
    raw = urllib.parse.quote('we"ird\\ns\nx', safe="") + "%FF"
    status, _, _ = xm.request(f"{BASE}/namespaces/{raw}/selfm.odd", decode=False)
    assert status == 400
    status, _, _ = xm.request(f"{BASE}/namespaces/default/selfm.odd", decode=False)
    assert status == 404
    parsed, _ = scrape(xm)  # the body must decode as UTF-8
    namespaces = {dict(k)["namespace"] for k in parsed.series("xmetrics_metric_valid")}
    assert namespaces == {"default"}, namespaces


def test_the_metrics_path_is_counted_without_the_query_string(xmetrics):
    # The server is shared with the module's other tests, which scrape it too: count from here.
    counted = {"path": "metrics", "code": "200"}
    before = scrape(xmetrics)[0].get("xmetrics_http_requests_total", **counted) or 0
    status, _, body = xmetrics.request("/metrics?x=1")
    assert status == 200, body
    parsed, _ = scrape(xmetrics)
    # The scrape above and the one with a query string; this one counts after it is answered.
    assert parsed.get("xmetrics_http_requests_total", **counted) == before + 2
