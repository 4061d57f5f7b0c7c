"""Queries that would break a shared Datadog batch are refused before they are sent.

A batch is one GET /api/v1/query?query=q1,q2,... answered by position (query_index): a query with a
top-level comma, unbalanced brackets, an unterminated quote or a metric name Datadog does not
accept would shift or swallow its neighbours. Such a query is answered with a Status naming the
metric and the fix, the fake Datadog never sees it, and the neighbours keep their fresh values.
"""
import json
import urllib.parse

import pytest

from conftest import wait_for

BASE = "/apis/external.metrics.k8s.io/v1beta1"

# name -> (query in the `metrics` setting, what the refusal says)
REFUSED = {
    "refused.comma": ("avg:comma.first{*},avg:comma.second{*}", "several top-level queries in one"),
    "refused.brace": ("avg:brace.metric{env:prod", "unbalanced brackets: the '{' opened at "
                                                   "position 16 is never closed"),
    "refused.quote": ('avg:quote.metric{service:"web}', "unterminated quote"),
    "refused.name": ("avg:bad-name.metric{*}", "invalid metric name 'bad-name.metric'"),
}
# What each refused query would put on the wire: none of it may reach the fake.
NEVER_SENT = ("comma.", "brace.", "quote.", "bad-name", "bad_name")
NEIGHBOURS = {"good.one": 1, "good.two": 2, "good.three": 3}


def metric_path(name, selector=None, namespace="default"):
    path = f"{BASE}/namespaces/{namespace}/{name}"
    if selector is not None:
        path += "?labelSelector=" + urllib.parse.quote(selector, safe="")
    return path


def write_config(tmp_path, entries):
    lines = ["metrics:"]
    for name, query in entries.items():
        lines.append(f"  - name: {name}")
        lines.append(f"    query: {json.dumps(query)}")  # a JSON string is a YAML string
    config = tmp_path / "xmetrics.yaml"
    config.write_text("\n".join(lines) + "\n")
    return config


def start_datadog(start_xmetrics, dd, config=None):
    extra = ["--config", str(config)] if config else []
    return start_xmetrics("--backend", "datadog", "--datadog-endpoint", dd.url,
                          "--datadog-endpoint-backoff", "1s", "--datadog-timeout", "1s", *extra,
                          env={"DD_API_KEY": dd.api_key, "DD_APP_KEY": dd.app_key})


def sent_queries(dd):
    return [q for c in dd.query_calls() for q in c["queries"]]


def assert_never_sent(dd):
    leaked = [q for q in sent_queries(dd) if any(n in q for n in NEVER_SENT)]
    assert not leaked, leaked


def status_of(xm, name):
    return [m for m in xm.status()["metrics"] if m["metricName"] == name]


@pytest.fixture
def refusing(start_xmetrics, fake_datadog, tmp_path):
    dd = fake_datadog()
    dd.values.update(NEIGHBOURS)
    config = write_config(tmp_path, {name: q for name, (q, _) in REFUSED.items()})
    return dd, start_datadog(start_xmetrics, dd, config)


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_a_refused_query_is_a_status_naming_the_metric_and_the_fix_and_is_never_sent(refusing,
                                                                                   name):
    dd, xm = refusing
    query, says = REFUSED[name]
    status, headers, body = xm.request(metric_path(name))
    assert status == 422, body
    assert headers["Content-Type"].startswith("application/json")
    reply = json.loads(body)
    assert reply["kind"] == "Status" and reply["status"] == "Failure", reply
    assert reply["reason"] == "Invalid" and reply["code"] == 422, reply
    message = reply["message"]
    assert f'external metric "{name}"' in message, message
    assert f'the query the metrics setting gives metric "{name}" is refused' in message, message
    assert says in message, message
    assert "fix that entry of the config file (--config)" in message, message
    # kubectl shows the same message.
    res = xm.get_raw(metric_path(name), check=False)
    assert res.returncode != 0 and says in res.stderr, res.stderr
    # xmetrics status lists it, invalid, with the same reason.
    [entry] = status_of(xm, name)
    assert says in entry["error"], entry
    assert not entry["valid"], entry
    # A neighbour is fetched meanwhile; over the refreshes that follow the refused query never is.
    assert xm.request(metric_path("good.one"))[0] == 200
    mark = len(dd.query_calls())
    wait_for(lambda: len(dd.query_calls()) >= mark + 2, what="two more refreshes")
    assert_never_sent(dd)
    assert xm.request(metric_path(name))[0] == 422


def test_an_inline_metric_datadog_cannot_name_is_refused_and_never_sent(start_xmetrics,
                                                                       fake_datadog):
    dd = fake_datadog()
    dd.values.update(NEIGHBOURS)
    xm = start_datadog(start_xmetrics, dd)
    status, _, body = xm.request(metric_path("bad-name.metric", "app=web"))
    assert status == 422, body
    message = json.loads(body)["message"]
    assert "invalid metric name 'bad-name.metric'" in message, message
    assert "ask for 'bad_name.metric'" in message, message
    assert "use the metric's Datadog name in the HPA's metric.name" in message, message
    assert xm.request(metric_path("good.two"))[0] == 200
    mark = len(dd.query_calls())
    wait_for(lambda: len(dd.query_calls()) >= mark + 2, what="two more refreshes")
    assert_never_sent(dd)


def test_neighbours_stay_fresh_and_the_endpoint_healthy_beside_malformed_queries(refusing):
    dd, xm = refusing
    for name in REFUSED:
        assert xm.request(metric_path(name))[0] == 422
    for name, value in NEIGHBOURS.items():
        status, _, body = xm.request(metric_path(name))
        assert status == 200, body
        assert json.loads(body)["items"][0]["value"] == str(value)
    # Over several refreshes every neighbour takes each new value the backend has.
    for step in range(1, 4):
        for name, value in NEIGHBOURS.items():
            dd.values[name] = value * 10 * step

        def all_fresh():
            for name, value in NEIGHBOURS.items():
                status, _, body = xm.request(metric_path(name))
                if status != 200 or json.loads(body)["items"][0]["value"] != str(value * 10 * step):
                    return False
            return True
        wait_for(all_fresh, timeout=10, interval=0.2, what=f"refresh {step} of every neighbour")
    # Every call carried every neighbour and answered 200: none was ever split or retried.
    calls = dd.query_calls()
    assert calls and all(c["status"] == 200 for c in calls), [c["status"] for c in calls]
    full = [c for c in calls if sorted(c["queries"]) == sorted(
        f"avg:{n}{{*}}.rollup(30)" for n in NEIGHBOURS)]
    assert len(full) >= 3, [c["queries"] for c in calls]
    assert_never_sent(dd)
    # The endpoint is never marked failing.
    backend = xm.status()["backend"]
    assert not backend.get("lastError"), backend
    endpoint = backend["details"][f"endpoint {dd.url}"]
    assert "fail" not in endpoint.lower() and "backoff" not in endpoint.lower(), endpoint
    for name in REFUSED:
        assert xm.request(metric_path(name))[0] == 422
