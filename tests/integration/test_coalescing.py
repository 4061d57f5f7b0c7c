"""Coalescing against the fake Datadog, proven differentially: the same data, fetched by one
xmetrics that coalesces (the default) and one that does not (--datadog-coalesce false), must serve
every value, timestamp and error alike, and the coalescing one must need fewer queries and calls.

The fake evaluates each query over tagged series as Datadog does (filter, space aggregation,
`by {k}` groups, one series per group with its tag_set), so a grouped answer is computed from the
data, not looked up."""
import json
import re
import time

from conftest import wait_for

from test_datadog_backend import start_datadog
from test_external_metrics import metric_path

QUEUES = [f"q{i}" for i in range(12)]


def load(dd, base_ms):
    """Series of jobs.depth: per queue two hosts in prod and one in dev; q5 has one point only,
    q9 no series at all, q7 a series that carries a second queue value (queue:q7 and queue:q8)."""
    for qi, queue in enumerate(QUEUES):
        if queue == "q9":
            continue
        for host in ("h1", "h2"):
            points = [[base_ms + k * 30000, qi * 10 + k + (0.25 if host == "h2" else 0)]
                      for k in range(5)]
            if queue == "q5":
                points = points[:1]
            tags = [f"queue:{queue}", f"host:{host}", "env:prod"]
            if queue == "q7" and host == "h2":
                tags.append("queue:q8")
            dd.data.append({"metric": "jobs.depth", "tags": tags, "points": points})
        dd.data.append({"metric": "jobs.depth", "tags": [f"queue:{queue}", "env:dev"],
                        "points": [[base_ms + k * 30000, -qi] for k in range(5)]})


SELECTORS = ([f"env=prod,queue={q}" for q in QUEUES] + [f"env=dev,queue={q}" for q in QUEUES[:4]]
             + ["env=prod,queue=q1,host=h2", "queue=q3"])


def answer(xm, selector):
    """Status and values, or status and error text. An error's age ("168s old") is the request's
    clock, not the data's: two requests a second apart disagree on it, so it is left out; the
    point's own time stays in the text and is compared."""
    status, _, body = xm.request(metric_path("jobs.depth", selector))
    if status != 200:
        return status, re.sub(r"\b\d+s old\b", "<age> old", json.loads(body).get("message", body))
    items = json.loads(body)["items"]
    return status, [(i["value"], i["timestamp"]) for i in items]


def test_coalesced_and_per_metric_queries_serve_the_same_values(start_xmetrics, fake_datadog):
    base_ms = (int(time.time()) // 30) * 30 * 1000 - 150000
    grouped_dd, plain_dd = fake_datadog(), fake_datadog()
    load(grouped_dd, base_ms)
    load(plain_dd, base_ms)
    grouped = start_datadog(start_xmetrics, grouped_dd)
    plain = start_datadog(start_xmetrics, plain_dd,
                          "--datadog-coalesce", "false")
    for xm in (grouped, plain):
        for selector in SELECTORS:
            xm.request(metric_path("jobs.depth", selector))  # registers it
    # A whole refresh of every metric, after all were registered.
    for dd in (grouped_dd, plain_dd):
        mark = len(dd.query_calls())
        wait_for(lambda: sum(len(c["queries"]) for c in dd.query_calls()[mark:]) > 0
                 and len(dd.query_calls()) > mark + 1, timeout=15, what="a full refresh")
    wait_for(lambda: any(" by {queue}" in q for c in grouped_dd.query_calls() for q in c["queries"]),
             timeout=15, what="a grouped query")
    time.sleep(1.5)  # one more refresh of each (1 s period), so both serve from a refresh of them all

    served = 0
    for selector in SELECTORS:
        a, b = answer(grouped, selector), answer(plain, selector)
        assert a == b, f"{selector}: coalesced {a} vs per-metric {b}"
        served += a[0] == 200
    assert served >= len(SELECTORS) - 2  # q9 (no series) and q5 (its one point is past max-age)
    assert answer(grouped, "env=prod,queue=q9")[0] == 404
    assert answer(grouped, "env=prod,queue=q5")[0] == 503
    # q7's second series also carries queue:q8: Datadog puts it in both groups, and so does the
    # per-metric filter queue:q8; both xmetrics agree above, and the value shows it counted.
    assert answer(grouped, "env=prod,queue=q8")[1] != answer(grouped, "env=prod,queue=q10")[1]

    # What a refresh sends: the plain one a query per metric, the grouped one a query per group.
    def last_refresh(dd):
        calls = dd.query_calls()
        return sorted(q for c in calls[-3:] for q in c["queries"])
    sent = [q for c in grouped_dd.query_calls()[-3:] for q in c["queries"]]
    assert "avg:jobs.depth{env:prod AND queue IN (q0,q1,q10,q11,q2,q3,q4,q5,q6,q7,q8,q9)} " \
           "by {queue}.rollup(30)" in sent, sent
    assert "avg:jobs.depth{env:dev AND queue IN (q0,q1,q2,q3)} by {queue}.rollup(30)" in sent
    assert len(set(last_refresh(plain_dd))) >= len(SELECTORS)
    assert len(set(sent)) <= 4

    # The status page gives each backend's last refresh: its metrics and the distinct queries
    # asked of it, as the status report's poller counts them.
    for xm in (grouped, plain):
        status, _, page = xm.request("/xmetrics/v1/ui")
        assert status == 200
        m = re.search(r'class="refresh" data-metrics="(\d+)" data-queries="(\d+)"', page)
        assert m, page[:2000]
        assert int(m.group(1)) == len(SELECTORS)
        assert int(m.group(2)) == xm.status()["poller"]["queries"] == len(SELECTORS)
