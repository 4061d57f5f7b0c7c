"""A refresh the announced Datadog budget cannot cover is stretched (DatadogBackend::deferCalls):
the calls holding only metrics no HPA names (and that have a value) are deferred, least recently
sent first, so each metric comes round in turn; a deferred value ages and past max-age is served
as stale. Status ("refresh stretched"), /metrics and `xmetrics doctor` (WARN refresh-stretched)
say so with the numbers. Standalone: no HPA names any metric, so every metric with a value may
wait. Every wait is bounded; counts come from the fake Datadog's call log.
"""
import json
import os
import re
import subprocess
import tempfile
import threading
import time

import pytest

from conftest import Xmetrics, wait_for
from fake_datadog import FakeDatadog
from test_doctor import checks_by_name, cluster_kubeconfig  # noqa: F401 (a fixture)
from test_external_metrics import metric_path
from test_self_metrics import scrape

# The incident's budget: 1,500 calls per 1,800 s, 0.83 calls/s. At the 1 s refresh the fixture
# sets, a refresh may spend round(1499/1800 x 1 x 0.9) = 1 call, and calls are paced 1.2 s apart.
TIGHT = (1500, 1800)
ROOMY = (100000, 1800)   # 55 calls/s: a refresh may spend 50 calls
CHUNK = 20
N = 80                   # 4 calls of 20 per full refresh
CALLS = N // CHUNK
SPACING = TIGHT[1] / TIGHT[0]   # 1.2 s between calls, as the budget paces them
MAX_AGE = 3
PRIMER = "primer.refused"
NAMES = [f"stretch.m{i:02d}" for i in range(N)]
QUERY = {n: f"avg:{n}{{*}}.rollup(1)" for n in NAMES}
NAME_OF = {q: n for n, q in QUERY.items()}
STRETCHED = re.compile(r"budget ([0-9,]+)/h, want ([0-9,]+)/h: ([0-9,]+) metrics no HPA names "
                       r"refreshed (every ([0-9,]+) s|only as the budget allows) instead of 1 s")


def number(text):
    return int(text.replace(",", ""))


def start(binary, workdir, rate_limit, *extra):
    dd = FakeDatadog(rate_limit=rate_limit, replay_fixtures=False)
    # The fake's windows start at multiples of the period: start this one now, so the whole
    # period is left whatever the time of day.
    dd.window_start = int(time.time())
    # xmetrics takes the second newest non-null point; the fake answers points 30 s apart ending
    # in a null one at "now": stamped 60 s ahead, the point taken is the call's own time, so a
    # value's age is the time since it was fetched.
    dd.clock_offset_ms = 60000
    dd.bad[PRIMER] = "Error parsing query: unknown metric"
    for i, name in enumerate(NAMES):
        dd.values[name] = 100 + i
    xm = Xmetrics(binary, workdir, [
        "--backend", "datadog", "--datadog-endpoint", dd.url, "--datadog-endpoint-backoff", "1s",
        "--datadog-timeout", "1s", "--first-fetch-timeout", "30s",
        "--datadog-chunk-size", str(CHUNK),
        # max-age is at least 3 x rollup: rollup 1 s lets short_max_age ask for 3 s.
        "--rollup", "1", *extra,
    ], env={"DD_API_KEY": dd.api_key, "DD_APP_KEY": dd.app_key})
    # A refused query learns the budget in one call and is never sent again (remembered).
    status, _, body = xm.request(metric_path(PRIMER))
    assert status == 404 and "Datadog rejected the query" in body, (status, body)
    wait_for(lambda: f"of {rate_limit[0]} calls left per {rate_limit[1]}s"
             in json.dumps(xm.status()["backend"]), what="the announced budget in status")
    return dd, xm


def get_all(xm, names):
    """One GET per name, all at once: {name: (status, body)}, {name: time.time() answered}."""
    results, answered = {}, {}

    def one(name):
        results[name] = xm.request(metric_path(name))[::2]
        answered[name] = time.time()
    threads = [threading.Thread(target=one, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join(40)
    return results, answered


def value_of(body):
    items = json.loads(body)["items"]
    assert len(items) == 1, body
    return items[0]["value"]


class Setup:
    def __init__(self, dd, xm, first, answered, ready):
        self.dd, self.xm, self.first, self.answered, self.ready = dd, xm, first, answered, ready


def started(request, *extra):
    binary = os.path.abspath(request.config.getoption("--xmetrics-binary"))
    with tempfile.TemporaryDirectory(prefix="xmetrics-it-") as workdir:
        dd, xm = start(binary, workdir, TIGHT, *extra)
        try:
            first, answered = get_all(xm, NAMES)
            yield Setup(dd, xm, first, answered, time.time())
        finally:
            xm.stop()
            dd.stop()


@pytest.fixture(scope="module")
def tight(request):
    """80 metrics under the tight budget, each asked for once (their first fetches); the default
    max-age (120 s)."""
    yield from started(request)


@pytest.fixture(scope="module")
def short_max_age(request):
    """The same with a 3 s max-age and no grace past it: shorter than a metric's turn."""
    yield from started(request, "--max-age", f"{MAX_AGE}s", "--query-validity-period", "0s")


def sent_calls(dd, since=0.0):
    """The fake's answered query calls at or after `since`: [(time, [queries])]."""
    return [(c["time"], c["queries"]) for c in dd.query_calls()
            if c["time"] >= since and c["status"] == 200]


def stretch_detail(xm):
    return xm.status()["backend"]["details"].get("refresh stretched")


def test_every_metric_gets_its_first_value_though_the_budget_is_tight(tight):
    assert sorted(tight.first) == NAMES, "some first requests got no answer within 40 s"
    wrong = {n: r for n, r in tight.first.items()
             if r[0] != 200 or value_of(r[1]) != str(tight.dd.values[n])}
    assert not wrong, f"{len(wrong)} first requests did not get their value: " + \
        "; ".join(f"{n}: {s} {b[:300]}" for n, (s, b) in sorted(wrong.items())[:5])
    # Each came from a call that carried its query before the answer (not from a deferral).
    for name in NAMES:
        carried = [t for t, q in sent_calls(tight.dd) if QUERY[name] in q]
        assert any(t <= tight.answered[name] for t in carried), \
            f"{name} was answered before any call carried {QUERY[name]}"


def test_a_refresh_spends_what_the_budget_allows_and_every_metric_comes_round_in_turn(tight):
    dd, xm = tight.dd, tight.xm
    # The refresh that was under way when the first fetches ended may have planned without all
    # values: start at the first refresh call after the next one.
    wait_for(lambda: len(sent_calls(dd, tight.ready)) >= 2, timeout=6 * SPACING,
             what="two refresh calls after the first fetches")
    since = sent_calls(dd, tight.ready)[1][0] - 0.01
    cycles0 = xm.status()["poller"]["cycles"]
    observe = 2 * CALLS * SPACING + SPACING   # two full rotations and a bit: 10.8 s
    time.sleep(observe)
    cycles = xm.status()["poller"]["cycles"] - cycles0
    calls = sent_calls(dd, since)
    until = since + observe
    shown = "; ".join(f"+{t - since:.2f}s {len(q)} [{', '.join(NAME_OF.get(x, x)[9:] for x in q)}]"
                      for t, q in calls)
    assert len(calls) >= 2 * CALLS, f"{len(calls)} calls in {observe:.1f} s: {shown}"
    # Within the budget: its rate over the window (1,500 per 1,800 s) and one call a refresh.
    assert all(c["status"] != 429 for c in dd.query_calls()), "a call went over the budget"
    allowed = int(observe * TIGHT[0] / TIGHT[1]) + 1
    assert len([c for c in calls if c[0] <= until]) <= allowed, \
        f"more calls than the budget's rate ({allowed} in {observe:.1f} s): {shown}"
    assert len(calls) <= cycles + 1, \
        f"{len(calls)} calls in {cycles} refreshes: a refresh may spend one call: {shown}"
    for t, q in calls:
        assert len(q) == CHUNK and set(q) <= set(NAME_OF), shown
    # Least recently sent first: any 4 consecutive refresh calls carry every metric once.
    for k in range(len(calls) - CALLS + 1):
        window = [x for _, q in calls[k:k + CALLS] for x in q]
        assert sorted(window) == sorted(QUERY.values()), \
            f"calls {k + 1}..{k + CALLS} do not carry each of the {N} metrics once: {shown}"
    # So each query is sent again 4 calls later, 4 x 1.2 s = 4.8 s (+ one spacing of slack).
    bound = CALLS * SPACING + SPACING
    for name in NAMES:
        times = [t for t, q in calls if QUERY[name] in q]
        assert len(times) >= 2, f"{name} sent {len(times)} times in {observe:.1f} s: {shown}"
        gaps = [b - a for a, b in zip(times, times[1:])]
        assert max(gaps) <= bound, f"{name} waited {max(gaps):.2f} s > {bound:.1f} s: {shown}"


def stretched_state(tight):
    """Waits for the stretch in status (at most 5 s): the regex match of its text."""
    text = wait_for(lambda: stretch_detail(tight.xm), timeout=5,
                    what="\"refresh stretched\" in the backend's status details")
    m = STRETCHED.fullmatch(text)
    assert m, f"unexpected text: {text!r}"
    return text, m


def test_status_metrics_and_doctor_say_the_refresh_is_stretched(
        tight, cluster_kubeconfig, request):  # noqa: F811
    xm = tight.xm
    text, m = stretched_state(tight)
    # 4 calls a refresh, 3,600 refreshes an hour; 1 call sent, 3 deferred of 20 metrics each.
    assert number(m.group(2)) == CALLS * 3600, text
    assert m.group(2) == "14,400", text
    assert number(m.group(3)) == (CALLS - 1) * CHUNK, text
    assert m.group(5) is not None, f"deferred metrics are refreshed; the text says never: {text}"
    budget, interval = number(m.group(1)), number(m.group(5))
    assert budget < CALLS * 3600, text

    parsed, body = scrape(xm)
    got = {name: parsed.get(name, backend="datadog") for name in (
        "xmetrics_backend_refresh_stretched_metrics",
        "xmetrics_backend_refresh_stretched_interval_seconds",
        "xmetrics_backend_calls_budget_per_hour", "xmetrics_backend_calls_wanted_per_hour")}
    assert got["xmetrics_backend_refresh_stretched_metrics"] == (CALLS - 1) * CHUNK, got
    assert got["xmetrics_backend_calls_wanted_per_hour"] == CALLS * 3600, got
    # The same numbers as the status text (which rounds them).
    assert got["xmetrics_backend_calls_budget_per_hour"] is not None, got
    assert round(got["xmetrics_backend_calls_budget_per_hour"]) == budget, (got, text)
    assert got["xmetrics_backend_refresh_stretched_interval_seconds"] is not None, got
    assert round(got["xmetrics_backend_refresh_stretched_interval_seconds"]) == interval, \
        (got, text)

    binary = os.path.abspath(request.config.getoption("--xmetrics-binary"))
    res = subprocess.run([binary, "doctor", "-o", "json", "--kubeconfig", cluster_kubeconfig,
                          "--namespace", "xmetrics", "--xmetrics-kubeconfig", xm.kubeconfig,
                          "--server", xm.server], capture_output=True, text=True, timeout=30)
    backend = checks_by_name(json.loads(res.stdout))["backend"]
    assert [(c["subject"], c["verdict"], c["problem"]) for c in backend] == \
        [("datadog", "WARN", "refresh-stretched")], backend
    assert STRETCHED.search(backend[0]["summary"]), backend[0]
    assert "refresh stretched: budget" in backend[0]["summary"], backend[0]


def test_the_stretch_numbers_are_those_of_the_announced_budget(tight):
    """The budget shown is the calls per hour the announced budget sustains (docs/operations.md:
    `xmetrics_backend_calls_budget_per_hour`), and the interval how often a deferred metric is in
    fact refreshed."""
    dd, xm = tight.dd, tight.xm
    text, m = stretched_state(tight)
    last = dd.query_calls()[-1]
    # What the last answer announced: Remaining over Reset, per hour (~1,499/1,800 s: 3,000/h).
    with dd.lock:
        remaining = max(0, TIGHT[0] - dd.used)
        reset = max(1, int(dd.window_start + TIGHT[1] - last["time"]))
    headers_rate = remaining / reset * 3600
    budget = number(m.group(1))
    # How often a deferred metric is sent: every 4 calls at the budget's pace (4.8 s), observed.
    calls = sent_calls(dd, tight.ready + CALLS * SPACING)
    gaps = []
    for name in NAMES:
        times = [t for t, q in calls if QUERY[name] in q]
        gaps += [b - a for a, b in zip(times, times[1:])]
    assert gaps, "no metric was sent twice since the first fetches"
    observed = sorted(gaps)[len(gaps) // 2]
    interval = number(m.group(5))
    problems = []
    if abs(budget - headers_rate) > 0.05 * headers_rate:
        problems.append(
            f"status says budget {budget:,}/h; the fake announces {remaining} calls left for "
            f"{reset} s = {headers_rate:,.0f}/h ({TIGHT[0]:,} per {TIGHT[1]:,} s = "
            f"{TIGHT[0] * 3600 // TIGHT[1]:,}/h)")
    if abs(interval - observed) > 0.1 * observed:
        problems.append(f"status says every {interval} s; metrics are sent every {observed:.2f} s "
                        f"(median of {len(gaps)} gaps)")
    assert not problems, "; ".join(problems) + f": {text!r}"


def test_a_deferred_value_past_max_age_is_served_as_stale_not_as_fresh(short_max_age):
    dd, xm = short_max_age.dd, short_max_age.xm
    stretched_state(short_max_age)
    # Past the first fetches: a refresh that still held metrics without a value sent several
    # paced calls and published them all at its end.
    wait_for(lambda: len(sent_calls(dd, short_max_age.ready)) >= 2, timeout=6 * SPACING,
             what="two refresh calls after the first fetches")
    # A metric comes round every 4.8 s, past the 3 s max-age: for a while before its turn each
    # is stale. Every answer is checked against when its query last reached the fake.
    seen_stale, back = {}, {}
    deadline = time.time() + CALLS * SPACING + 2 * SPACING
    while time.time() < deadline and not (seen_stale and back):
        for name in NAMES[::3]:
            asked = time.time()
            status, _, body = xm.request(metric_path(name))
            # A call that reached the fake while the request was in flight may have been served.
            done = time.time()
            sent = [t for t, q in sent_calls(dd) if QUERY[name] in q and t <= done]
            age = asked - sent[-1]
            if status == 200:
                # Whole seconds: "older than 3 s" is 4 s and more (plus the call's own latency).
                assert age < MAX_AGE + 1 + 0.5, (
                    f"{name} served as fresh {age:.2f} s after its last fetch: {body[:300]}")
                assert value_of(body) == str(dd.values[name]), body
                if name in seen_stale:
                    back.setdefault(name, asked)
            else:
                assert status == 503, (name, status, body)
                assert "stale value for" in body and f"older than max-age {MAX_AGE}s" in body, body
                said = re.search(r"(is|was fetched) ([0-9]+)s (old|ago)", body)
                assert said and int(said.group(2)) > MAX_AGE, body
                seen_stale.setdefault(name, (asked, body))
        time.sleep(0.05)
    assert seen_stale, (
        f"no metric went stale in {CALLS * SPACING + 2 * SPACING:.1f} s though each comes round "
        f"every {CALLS * SPACING:.1f} s and max-age is {MAX_AGE} s")
    # It kept its value: once its turn comes it is served again (within a rotation).
    assert back, f"no stale metric was served again: {sorted(seen_stale)}"


def test_with_a_roomy_budget_nothing_is_deferred(request, cluster_kubeconfig):  # noqa: F811
    binary = os.path.abspath(request.config.getoption("--xmetrics-binary"))
    with tempfile.TemporaryDirectory(prefix="xmetrics-it-") as workdir:
        dd, xm = start(binary, workdir, ROOMY)
        try:
            first, _ = get_all(xm, NAMES)
            assert all(first[n][0] == 200 for n in NAMES), \
                [(n, first[n]) for n in NAMES if first[n][0] != 200][:3]
            ready = time.time()
            # Every refresh sends all 4 calls: in 3 s, each metric is sent at least twice.
            time.sleep(3)
            calls = sent_calls(dd, ready)
            for name in NAMES:
                count = sum(QUERY[name] in q for _, q in calls)
                assert count >= 2, f"{name} sent {count} times in 3 s at a 1 s refresh"
            assert stretch_detail(xm) is None, xm.status()["backend"]
            parsed, body = scrape(xm)
            assert parsed.get("xmetrics_backend_refresh_stretched_metrics",
                              backend="datadog") == 0, body
            for absent in ("xmetrics_backend_refresh_stretched_interval_seconds",
                           "xmetrics_backend_calls_budget_per_hour",
                           "xmetrics_backend_calls_wanted_per_hour"):
                assert parsed.get(absent, backend="datadog") is None, body
            res = subprocess.run([binary, "doctor", "-o", "json", "--kubeconfig",
                                  cluster_kubeconfig, "--namespace", "xmetrics",
                                  "--xmetrics-kubeconfig", xm.kubeconfig, "--server", xm.server],
                                 capture_output=True, text=True, timeout=30)
            backend = checks_by_name(json.loads(res.stdout))["backend"]
            assert [(c["subject"], c["verdict"]) for c in backend] == [("datadog", "OK")], backend
        finally:
            xm.stop()
            dd.stop()
