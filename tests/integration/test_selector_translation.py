"""Every label-selector operator, translated by the real binary and evaluated by the fake Datadog.

An HPA asks for an external metric with a label selector; xmetrics turns it into a Datadog filter
(docs/architecture.md) and the fake evaluates that filter over tagged series the way Datadog's
documentation says it selects. The series' values are powers of two and the inline aggregator is
`sum`, so each answer names exactly the series it added up: a translation that sent `k:v` for
`k!=v`, dropped a `notin` or read `!k` as `k` would serve a different number.

The fake parses every query with the grammar Datadog documents and refuses (400, Datadog's error
body) what that grammar does not produce; the second half of this file checks the fake itself.
"""
import json
import os
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
import yaml

from conftest import Xmetrics, wait_for
from fake_datadog import (FIXTURES, FakeDatadog, QueryError, parse_query, recorded_series,
                          selects)
from test_external_metrics import metric_path

METRIC = "sel.requests"
# name -> (tags, value)
SERIES = {
    "s1": (["env:prod", "region:eu"], 1),
    "s2": (["env:prod", "region:us"], 2),
    "s3": (["env:dev", "region:eu"], 4),
    "s4": (["env:staging", "region:ap", "canary:true"], 8),
    "s5": (["region:us"], 16),
    "s6": (["env:prod", "canary:true"], 32),
    "s7": (["env:dev", "region:us", "canary:false"], 64),
}
# selector -> (the query xmetrics sends, the series Kubernetes' selector semantics pick)
CASES = {
    "": ("sum:sel.requests{*}.rollup(30)", SERIES.keys()),
    "env=prod": ("sum:sel.requests{env:prod}.rollup(30)", ["s1", "s2", "s6"]),
    "env==staging": ("sum:sel.requests{env:staging}.rollup(30)", ["s4"]),
    "env!=prod": ("sum:sel.requests{NOT env:prod}.rollup(30)", ["s3", "s4", "s5", "s7"]),
    "region in (eu,us)": ("sum:sel.requests{region IN (eu,us)}.rollup(30)",
                          ["s1", "s2", "s3", "s5", "s7"]),
    "region notin (eu,us)": ("sum:sel.requests{region NOT IN (eu,us)}.rollup(30)", ["s4", "s6"]),
    "canary": ("sum:sel.requests{canary:*}.rollup(30)", ["s4", "s6", "s7"]),
    "!canary": ("sum:sel.requests{NOT canary:*}.rollup(30)", ["s1", "s2", "s3", "s5"]),
    "env=prod,region=us": ("sum:sel.requests{env:prod,region:us}.rollup(30)", ["s2"]),
    "env=prod,region=eu": ("sum:sel.requests{env:prod,region:eu}.rollup(30)", ["s1"]),
    "region=us": ("sum:sel.requests{region:us}.rollup(30)", ["s2", "s5", "s7"]),
    "region=eu": ("sum:sel.requests{region:eu}.rollup(30)", ["s1", "s3"]),
    "env=prod,region in (eu,us)": (
        "sum:sel.requests{env:prod AND region IN (eu,us)}.rollup(30)", ["s1", "s2"]),
    "env!=prod,region notin (us)": (
        "sum:sel.requests{NOT env:prod AND region NOT IN (us)}.rollup(30)", ["s3", "s4"]),
    "env in (dev,staging),!canary": (
        "sum:sel.requests{NOT canary:* AND env IN (dev,staging)}.rollup(30)", ["s3"]),
    "canary,env!=dev": ("sum:sel.requests{canary:* AND NOT env:dev}.rollup(30)", ["s4", "s6"]),
    "region,!canary,env notin (dev)": (
        "sum:sel.requests{NOT canary:* AND env NOT IN (dev) AND region:*}.rollup(30)",
        ["s1", "s2", "s5"]),
}


def expected_value(names):
    return str(sum(SERIES[n][1] for n in names))


def load(dd):
    """Each series holds its value at every 10 s from 5 minutes ago to 15 minutes ahead: the fake
    answers the points up to the call's `to`, so the newest stay fresh while the module runs."""
    now_ms = int(time.time()) // 10 * 10 * 1000
    for tags, value in SERIES.values():
        points = [[now_ms + k * 10000, value] for k in range(-30, 90)]
        dd.data.append({"metric": METRIC, "tags": tags, "points": points})


@pytest.fixture(scope="module", params=["per-query", "coalesced"])
def served(request):
    """One fake and one xmetrics (sum aggregator) per way of fetching: each query alone, or
    coalesced into `by {k}` groups where queries differ in one tag's value (the default)."""
    binary = os.path.abspath(request.config.getoption("--xmetrics-binary"))
    dd = FakeDatadog(replay_fixtures=False)
    load(dd)
    extra = ["--datadog-coalesce", "false"] if request.param == "per-query" else []
    with tempfile.TemporaryDirectory(prefix="xmetrics-it-") as workdir:
        xm = Xmetrics(binary, workdir,
                      ["--backend", "datadog", "--datadog-endpoint", dd.url, "--aggregator", "sum",
                       "--datadog-timeout", "2s", *extra],
                      env={"DD_API_KEY": dd.api_key, "DD_APP_KEY": dd.app_key})
        try:
            yield request.param, dd, xm
        finally:
            try:
                xm.stop()
            finally:
                dd.stop()


def served_value(xm, selector):
    status, _, body = xm.request(metric_path(METRIC, selector))
    assert status == 200, (selector, body)
    items = json.loads(body)["items"]
    assert len(items) == 1, (selector, items)
    return items[0]["value"]


@pytest.mark.parametrize("selector", list(CASES))
def test_each_operator_selects_the_series_kubernetes_would(served, selector):
    mode, dd, xm = served
    query, names = CASES[selector]
    assert served_value(xm, selector) == expected_value(names), (selector, query)
    assert query in [m["query"] for m in xm.status()["metrics"]]
    if mode == "per-query":  # the coalesced ones are checked below
        assert query in [q for c in dd.query_calls() for q in c["queries"]]


def test_the_values_hold_after_refreshes_fetch_them_together(served):
    """Once every selector is registered, refreshes fetch them in batches (coalesced where they
    can be); each value stays the one its selector's series add up to."""
    mode, dd, xm = served
    for selector in CASES:
        served_value(xm, selector)
    mark = len(dd.query_calls())
    wait_for(lambda: len(dd.query_calls()) >= mark + 3, timeout=20, what="three refreshes")
    calls = dd.query_calls()[mark:]
    assert all(c["status"] == 200 for c in calls), [(c["status"], c.get("error")) for c in calls]
    sent = {q for c in calls for q in c["queries"]}
    grouped = {q for q in sent if " by {" in q}
    if mode == "coalesced":
        assert "sum:sel.requests{region IN (eu,us)} by {region}.rollup(30)" in grouped, sent
        assert "sum:sel.requests{env:prod AND region IN (eu,us)} by {region}.rollup(30)" \
            in grouped, sent
    else:
        assert not grouped, grouped
        assert {q for q, _ in CASES.values()} <= sent, sent
    for selector, (_, names) in CASES.items():
        assert served_value(xm, selector) == expected_value(names), selector


# --- the fake itself: the documented grammar, Datadog's refusals, the recorded answers ---

ADVANCED_FILTERING = "https://docs.datadoghq.com/metrics/advanced-filtering/"
# Queries Datadog's documentation and recordings show, each of which the fake must take.
DOCUMENTED = [
    # fixtures/datadog/test_query_timeseries_points_returns_ok_response.yaml (no space aggregator)
    "system.cpu.idle{*}",
    # fixtures/datadog/test_scalar_cross_product_query_returns_ok_response.yaml
    "avg:system.cpu.user{*}",
    # fixtures/datadog/test_timeseries_cross_product_query_returns_ok_response.yaml
    "avg:datadog.estimated_usage.metrics.custom{*}",
    # ADVANCED_FILTERING, boolean and wildcard examples, verbatim
    "avg:system.cpu.user{env:staging AND (availability-zone:us-east-1a OR "
    "availability-zone:us-east-1c)} by {availability-zone}",
    "avg:system.cpu.user{env:shop.ist AND availability-zone IN "
    "(us-east-1a, us-east-1b, us-east4-b)} by {availability-zone}",
    "avg:system.cpu.user{env:prod AND location NOT IN (atlanta,seattle,las-vegas)}",
    "avg:system.disk.in_use{!device:/dev/loop*} by {device}",
    "sum:kubernetes.pods.running{service:*-canary} by {service}",
    "avg:system.disk.utilized{region:*east*}",
    # ADVANCED_FILTERING: the lowercase spellings
    "avg:m{env:prod and not tier:free or region in (eu,us)}",
    "avg:m{env:prod and region not in (eu,us)}",
    # https://www.datadoghq.com/blog/boolean-filtered-metric-queries/
    "avg:kubernetes.pods.running {team IN (ingestion, storage, query)} by {team}",
    # https://docs.datadoghq.com/dashboards/functions/rollup/
    "avg:m{*}.rollup(sum,120)", "avg:m{*}.rollup(avg,86400)", "avg:m{*}.rollup(20)",
    "avg:m{*}.rollup(max, 60)", "sum:m{*}.as_count()",
    # https://docs.datadoghq.com/metrics/#anatomy-of-a-metric-query: functions and arithmetic
    "avg:jvm.heap_memory{*} / avg:jvm.heap_memory_max{*}", "avg:m{*} * 2",
    "per_second(sum:m{*})",
    # https://docs.datadoghq.com/getting_started/tagging/#define-tags: `/`, `.` and `-` in tags
    "avg:m{kube_app_name:web,app.kubernetes.io/name:web-1}",
]
# Queries outside the documented grammar -> what the fake's 400 says.
UNDOCUMENTED = {
    # ADVANCED_FILTERING: "the following query is considered invalid"
    "avg:mymetric{env:prod AND !region:us-east}": "cannot be used with functional syntax",
    # the same page, in its earlier versions
    "avg:mymetric{env:prod AND resource_name NOT IN (!resource_name:A, !resource_name:B)}":
        "expected a tag value in the IN list",
    "avg:m{env:prod,region:eu AND tier:free}": "cannot be used with functional syntax",
    "avg:m{(env:prod,region:eu)}": "cannot be used with functional syntax",
    "avg:m{env:prod region:eu}": "expected ',', AND, OR or '}'",
    "avg:m{env:prod": "expected ',', AND, OR or '}'",
    "avg:m{}": "expected a tag filter or '*'",
    "avg:m{env:}": "a tag cannot end with ':'",
    "avg:m{1env:prod}": "a tag starts with a letter",
    "avg:m{env*:prod}": "wildcards go in tag values only",
    "avg:m{region IN eu}": "expected '(' after IN",
    "avg:m{region IN ()}": "expected a tag value in the IN list",
    "avg:m{region:eu IN (us)}": "expected a tag key before IN",
    "avg:m{env:prod AND}": "expected a tag",
    "median:m{*}": "unknown space aggregator 'median'",
    "avg:m{*}.rollup(median,30)": "expected a rollup method",
    "avg:m{*}.bogus()": "unknown modifier .bogus()",
    "avg:m{*} by {host": "expected ',' or '}' in the group by list",
    "avg:bad-name{*}": "expected '{' after the metric name",
}


@pytest.mark.parametrize("query", DOCUMENTED)
def test_the_fake_takes_every_query_the_documentation_shows(query):
    parse_query(query)


@pytest.mark.parametrize("query", sorted(UNDOCUMENTED))
def test_the_fake_refuses_what_the_documented_grammar_does_not_produce(query):
    with pytest.raises(QueryError) as refused:
        parse_query(query)
    assert UNDOCUMENTED[query] in str(refused.value)
    assert str(refused.value).startswith(f"Error parsing query: unable to parse {query}: ")


def filter_of(query):
    return parse_query(query).metrics[0].filter


@pytest.mark.parametrize("query, tags, selected", [
    ("avg:m{env:prod}", ["env:prod", "region:eu"], True),
    ("avg:m{env:prod}", ["env:production"], False),
    ("avg:m{NOT env:prod}", ["region:eu"], True),  # no env at all: not env:prod
    ("avg:m{!env:prod}", ["env:prod"], False),
    ("avg:m{env IN (dev,prod)}", ["env:dev"], True),
    ("avg:m{env NOT IN (dev,prod)}", ["region:eu"], True),
    ("avg:m{env NOT IN (dev,prod)}", ["env:prod"], False),
    ("avg:m{env:*}", ["env:anything"], True),
    ("avg:m{env:*}", ["region:eu"], False),
    ("avg:m{NOT env:*}", ["region:eu"], True),
    ("avg:m{pod_name:web-*}", ["pod_name:web-1"], True),
    ("avg:m{cluster:*-trace}", ["cluster:eu-trace"], True),
    ("avg:m{node:*-prod-*}", ["node:a-prod-b"], True),
    ("avg:m{node:*-prod-*}", ["node:a-dev-b"], False),
    ("avg:m{env:Prod}", ["env:prod"], True),  # tags are lowercased at intake
    ("avg:m{a:1 AND (b:2 OR c:3)}", ["a:1", "c:3"], True),
    ("avg:m{a:1 AND (b:2 OR c:3)}", ["b:2", "c:3"], False),
])
def test_the_fake_selects_as_the_filter_says(query, tags, selected):
    assert selects(filter_of(query), tags) is selected


def get(dd, queries, now=None):
    now = now or int(time.time())
    params = urllib.parse.urlencode({"from": now - 300, "to": now, "query": ",".join(queries)})
    req = urllib.request.Request(f"{dd.url}/api/v1/query?{params}",
                                 headers={"DD-API-KEY": dd.api_key,
                                          "DD-APPLICATION-KEY": dd.app_key})
    try:
        with urllib.request.urlopen(req, timeout=5) as res:
            return res.status, res.headers, json.loads(res.read())
    except urllib.error.HTTPError as error:
        return error.code, error.headers, json.loads(error.read())


def recorded_error_body():
    name = "test_scalar_cross_product_query_returns_bad_request_response.yaml"
    with open(os.path.join(FIXTURES, name)) as f:
        response = yaml.safe_load(f)["interactions"][0]["response"]
    return response["status"]["code"], json.loads(response["body"]["string"])


def test_a_call_holding_one_undocumented_query_is_refused_with_datadogs_error_body(fake_datadog):
    dd = fake_datadog()
    dd.values["good.metric"] = 1
    status, headers, body = get(dd, ["avg:good.metric{*}", "avg:m{env:prod AND !region:us}"])
    recorded_status, recorded_body = recorded_error_body()
    assert status == recorded_status == 400
    assert headers["Content-Type"] == "application/json"
    assert body.keys() == recorded_body.keys() == {"errors"}
    [message] = body["errors"]
    assert "cannot be used with functional syntax" in message, message
    assert dd.query_calls()[-1]["status"] == 400
    # Without it the same call is answered.
    status, _, body = get(dd, ["avg:good.metric{*}"])
    assert status == 200 and len(body["series"]) == 1, body


def test_a_query_datadog_would_refuse_reaches_the_hpa_as_datadogs_refusal(start_xmetrics,
                                                                        fake_datadog, tmp_path):
    """The `metrics` setting passes a query through as written: one that mixes the two filter
    forms is sent, refused by the fake as Datadog refuses it, and reported as that refusal, while
    its neighbour keeps its value."""
    dd = fake_datadog()
    dd.values["good.metric"] = 3
    config = tmp_path / "xmetrics.yaml"
    config.write_text("metrics:\n"
                      "  - name: mixed.forms\n"
                      "    query: 'avg:sel.requests{env:prod AND !region:us}'\n")
    xm = start_xmetrics("--backend", "datadog", "--datadog-endpoint", dd.url, "--config",
                        str(config), env={"DD_API_KEY": dd.api_key, "DD_APP_KEY": dd.app_key})
    status, _, body = xm.request(metric_path("mixed.forms"))
    assert status != 200, body
    assert "Datadog rejected the query: Error parsing query: " in body, body
    assert "cannot be used with functional syntax" in body, body
    status, _, body = xm.request(metric_path("good.metric"))
    assert status == 200 and json.loads(body)["items"][0]["value"] == "3", body


def test_the_recorded_v2_answer_is_replayed_through_both_apis(start_xmetrics, fake_datadog):
    """fixtures/datadog/test_timeseries_cross_product_query_returns_ok_response.yaml answers
    avg:datadog.estimated_usage.metrics.custom{*}: times 42 min and 1 min apart, values 1, 1, 87.
    Replayed with the newest point 30 s old, xmetrics takes the second newest (1) through either
    API; a filter the recording does not cover gets no series."""
    recorded = recorded_series()["datadog.estimated_usage.metrics.custom"]
    assert [v for _, v in recorded["pointlist"]] == [1, 1, 87]
    dd = fake_datadog()
    _, _, body = get(dd, ["avg:datadog.estimated_usage.metrics.custom{*}",
                          "avg:datadog.estimated_usage.metrics.custom{env:prod}"])
    [series] = body["series"]
    assert series["query_index"] == 0
    assert [v for _, v in series["pointlist"]] == [1, 1, 87]
    assert series["pointlist"][-1][0] - series["pointlist"][0][0] == 2580000
    for api in ("v1", "v2"):
        xm = start_xmetrics("--backend", "datadog", "--datadog-endpoint", dd.url,
                            "--datadog-api", api, "--max-age", "3600s",
                            env={"DD_API_KEY": dd.api_key, "DD_APP_KEY": dd.app_key})
        status, _, body = xm.request(metric_path("datadog.estimated_usage.metrics.custom"))
        assert status == 200, (api, body)
        assert json.loads(body)["items"][0]["value"] == "1", (api, body)
