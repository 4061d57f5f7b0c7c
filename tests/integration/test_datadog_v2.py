"""--datadog-api v2 against the fake Datadog, proven differentially: the same data, fetched by one
xmetrics through GET /api/v1/query (the default) and one through POST /api/v2/query/timeseries,
must serve every value, timestamp and error alike — coalesced groups, a query that stands alone, a
metric with no series, one with a single point, one Datadog rejects — and v2 must carry in one call
what v1 splits at its 7000-character URL limit.

The fake answers both APIs from one evaluation of the query (filter, space aggregation, `by {k}`
groups); v2 lays each series' points on the answer's shared `times`, with nulls where it has none."""
import json
import time
import urllib.parse

from conftest import wait_for

from test_coalescing import SELECTORS, answer, load
from test_datadog_backend import start_datadog
from test_external_metrics import metric_path

V2_PATH = "/api/v2/query/timeseries"
# Thirty unrelated metrics (nothing to coalesce) whose queries are long: ~350 URL-escaped
# characters each, 10,000 for a refresh, so v1 needs two calls where v2 needs one.
LONG_LABELS = {f"k{j}": f"{j}" * 60 for j in range(5)}
LONG = [f"long.metric.n{i}" for i in range(30)]


def load_long(dd, base_ms):
    tags = [f"{k}:{v}" for k, v in LONG_LABELS.items()]
    for i, name in enumerate(LONG):
        dd.data.append({"metric": name, "tags": tags,
                        "points": [[base_ms + k * 30000, i + k] for k in range(5)]})


def long_selector():
    return ",".join(f"{k}={v}" for k, v in LONG_LABELS.items())


def settle(dd, wanted_queries):
    """Waits until the fake has seen a refresh asking for at least `wanted_queries` queries after
    every metric was registered, then one more refresh (1 s period)."""
    mark = len(dd.query_calls())
    wait_for(lambda: sum(len(c["queries"]) for c in dd.query_calls()[mark:]) >= wanted_queries,
             timeout=20, what="a full refresh")
    time.sleep(1.5)


def test_v1_and_v2_serve_the_same_values_and_errors(start_xmetrics, fake_datadog):
    base_ms = (int(time.time()) // 30) * 30 * 1000 - 150000
    v1_dd, v2_dd = fake_datadog(), fake_datadog()
    for dd in (v1_dd, v2_dd):
        load(dd, base_ms)
        load_long(dd, base_ms)
        # q11 is refused: the group holding it is refused whole, then its members are asked one
        # by one and only q11's own query fails.
        dd.bad["q11"] = "Error parsing query: no such queue q11"
    v1 = start_datadog(start_xmetrics, v1_dd)
    v2 = start_datadog(start_xmetrics, v2_dd, "--datadog-api", "v2")
    for xm in (v1, v2):
        for s in SELECTORS:
            xm.request(metric_path("jobs.depth", s))  # registers it
        for name in LONG:
            xm.request(metric_path(name, long_selector()))
    for dd in (v1_dd, v2_dd):
        settle(dd, len(LONG))

    unserved = set()
    for s in SELECTORS:
        a, b = answer(v1, s), answer(v2, s)
        assert a == b, f"{s}: v1 {a} vs v2 {b}"
        if a[0] != 200:
            unserved.add(s)
    # q9 has no series, q11 is rejected; q5's one point may have gone stale (alike in both).
    assert {"env=prod,queue=q9", "env=prod,queue=q11"} <= unserved, unserved
    assert unserved <= {"env=prod,queue=q9", "env=prod,queue=q11", "env=prod,queue=q5"}, unserved
    assert answer(v2, "env=prod,queue=q9")[0] == 404
    assert answer(v2, "env=prod,queue=q0")[0] == 200
    for name in LONG:
        path = metric_path(name, long_selector())
        a, b = v1.request(path), v2.request(path)
        assert a[0] == b[0] == 200, (a, b)
        items = [(i["value"], i["timestamp"]) for i in json.loads(a[2])["items"]]
        assert items == [(i["value"], i["timestamp"]) for i in json.loads(b[2])["items"]]
    rejected = json.loads(v2.request(metric_path("jobs.depth", "env=prod,queue=q11"))[2])
    assert "no such queue q11" in json.dumps(rejected), rejected

    # What each sent: v1 GETs, never past 7000 escaped characters; v2 POSTs a JSON body.
    v1_calls, v2_calls = v1_dd.query_calls(), v2_dd.query_calls()
    assert all(c["path"] == "/api/v1/query" for c in v1_calls)
    assert all(sum(len(urllib.parse.quote(q, safe="-._~")) + 3 for q in c["queries"]) - 3 <= 7000
               for c in v1_calls)
    assert all(c["path"] == V2_PATH for c in v2_calls)
    assert all(c["headers"].get("Content-Type") == "application/json" for c in v2_calls)
    body = json.loads(v2_calls[-1]["body"])
    assert body["data"]["type"] == "timeseries_request"
    assert [f["formula"] for f in body["data"]["attributes"]["formulas"]] == \
        [q["name"] for q in body["data"]["attributes"]["queries"]]

    def most_long(calls):
        return max(sum(q.startswith("avg:long.metric.") for q in c["queries"]) for c in calls)
    most_v1, most_v2 = most_long(v1_calls), most_long(v2_calls)
    assert most_v1 < len(LONG), most_v1  # split at the URL limit
    assert most_v2 == len(LONG), most_v2  # one call: 30 is under the chunk size of 35
    per_refresh_v1 = -(-len(LONG) // most_v1)
    print(f"long queries: v1 {per_refresh_v1} calls per refresh (at most {most_v1} queries a call), "
          f"v2 1 call of {most_v2}; calls in all: v1 {len(v1_calls)}, v2 {len(v2_calls)}")
