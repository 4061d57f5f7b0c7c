"""First fetches of new Datadog metrics share calls under a tight announced budget
(DatadogBackend::fetchFirst): they join a call waiting for its pacing slot instead of each booking
one. Counts are asserted, not timings (bench/first_fetch measures those); every wait is bounded.
"""
import json
import threading
import time

from conftest import wait_for
from test_datadog_backend import start_datadog
from test_external_metrics import metric_path

# The incident's budget: 1,500 calls for 1,800 s, a call every 1.2 s once known.
TIGHT = (1500, 1800)
# A query Datadog refuses: its one call tells the budget, and it is never sent again (answered from
# memory for 10 minutes), so no refresh call waits for a slot unless a test wants one.
PRIMER = "primer.refused"


def tight_datadog(fake_datadog, rate_limit=TIGHT):
    dd = fake_datadog(rate_limit=rate_limit, replay_fixtures=False)
    # The fake's windows start at multiples of the period: start this one now, so the whole
    # 1,800 s are left and the spacing is 1.2 s whatever the time of day.
    dd.window_start = int(time.time())
    dd.bad[PRIMER] = "Error parsing query: unknown metric"
    return dd


def start(start_xmetrics, dd, *extra):
    # Longer than any slot wait here: every first request ends in its value, none in a 503.
    return start_datadog(start_xmetrics, dd, "--first-fetch-timeout", "30s", *extra)


def learn_budget(xm, dd):
    status, _, body = xm.request(metric_path(PRIMER))
    assert status == 404 and "Datadog rejected the query" in body, (status, body)
    assert len(dd.query_calls()) == 1
    limit = dd.rate_limit[0]
    wait_for(lambda: f"of {limit} calls left per 1800s" in json.dumps(xm.status()["backend"]),
             what="the announced budget in status")


def get_all(xm, names, stagger=0.0):
    """One GET per name, each on its own thread: released together, or `stagger` s apart. Returns
    {name: (status, body)} and {name: time.time() of its answer}."""
    results, answered = {}, {}
    barrier = threading.Barrier(len(names))

    def one(i, name):
        barrier.wait(timeout=10)
        time.sleep(i * stagger)
        results[name] = xm.request(metric_path(name, "app=web"))[::2]
        answered[name] = time.time()
    threads = [threading.Thread(target=one, args=(i, n)) for i, n in enumerate(names)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(40)
    return results, answered


def check_values(results, names, dd):
    assert sorted(results) == sorted(names), "some requests got no answer within 40 s"
    for name in names:
        status, body = results[name]
        assert status == 200, (name, status, body)
        items = json.loads(body)["items"]
        assert [i["value"] for i in items] == [str(dd.values[name])], (name, body)


def carrying_calls(dd, since, answered):
    """The calls from index `since` that carried a first fetch: a call counts for a metric when it
    carried its query and reached the fake before the metric's first request was answered (later
    refreshes carry it too). [(how many of `answered`'s metrics, all its queries)]."""
    out = []
    for c in dd.query_calls()[since:]:
        mine = {n for n, at in answered.items()
                if c["time"] <= at and any(q.startswith(f"avg:{n}{{") for q in c["queries"])}
        if mine:
            out.append((len(mine), c["queries"]))
    return out


def shown(calls):
    """What each call carried, for the failure message: its queries' metric names, in order."""
    return "; ".join(f"call {k + 1}: {len(q)} queries "
                     f"[{', '.join(x.split(':', 1)[1].split('{', 1)[0] for x in q)}]"
                     for k, (_, q) in enumerate(calls))


def test_twenty_new_metrics_requested_together_are_answered_by_at_most_two_calls(
        start_xmetrics, fake_datadog):
    dd = tight_datadog(fake_datadog)
    names = [f"burst.m{i}" for i in range(20)]
    for i, name in enumerate(names):
        dd.values[name] = 100 + i
    xm = start(start_xmetrics, dd)
    learn_budget(xm, dd)
    time.sleep(1.5)  # the next slot is free: the first of them may go at once, the rest share one
    assert len(dd.query_calls()) == 1, "nothing else calls: no refresh waits for a slot"
    mark = len(dd.query_calls())
    results, answered = get_all(xm, names)
    check_values(results, names, dd)
    calls = carrying_calls(dd, mark, answered)
    assert len(calls) <= 2, (
        f"{len(calls)} calls carried the 20 first fetches: {shown(calls)}")


def test_new_metrics_requested_one_after_another_share_the_call_waiting_for_its_slot(
        start_xmetrics, fake_datadog):
    dd = tight_datadog(fake_datadog)
    names = [f"staggered.m{i}" for i in range(6)]
    for i, name in enumerate(names):
        dd.values[name] = 200 + i
    xm = start(start_xmetrics, dd)
    learn_budget(xm, dd)
    # The primer's call just went: the first new metric's call waits ~1.2 s for its slot, and the
    # five asked for 10 ms apart after it come while it waits.
    mark = len(dd.query_calls())
    results, answered = get_all(xm, names, stagger=0.010)
    check_values(results, names, dd)
    calls = carrying_calls(dd, mark, answered)
    assert len(calls) == 1, (
        f"{len(calls)} calls carried the 6 first fetches: {shown(calls)}")
    assert calls[0][0] == 6


def test_new_metrics_requested_one_after_another_ride_a_refresh_waiting_for_its_slot(
        start_xmetrics, fake_datadog):
    # A call every 0.5 s: a refresh of two calls still fits the budget at a 1 s period
    # (0.9 x 2 calls/s, rounded; a tighter one would defer the second call, the budget stretching
    # the refresh), and its second call waits 0.5 s for its slot after the first: room to spare for
    # noticing the first call and sending six requests 10 ms apart on a loaded machine.
    dd = tight_datadog(fake_datadog, rate_limit=(3600, 1800))
    known = [f"known.metric.{i}" for i in range(36)]
    for i, name in enumerate(known):
        dd.values[name] = i
    names = [f"riding.m{i}" for i in range(6)]
    for i, name in enumerate(names):
        dd.values[name] = 300 + i
    # One call at a time: the refresh's 35-query call goes first, then its second books its slot.
    xm = start(start_xmetrics, dd, "--datadog-max-parallel-queries", "1")
    learn_budget(xm, dd)
    results, _ = get_all(xm, known)
    check_values(results, known, dd)
    # Refreshed every second, 36 metrics take two calls: the refresh's first call carries 35
    # queries, and its second (one query, room for 34 more) waits for its slot after it.
    mark = len(dd.query_calls())
    wait_for(lambda: any(len(c["queries"]) == 35 for c in dd.query_calls()[mark:]), timeout=15,
             what="a refresh's full call")
    mark = len(dd.query_calls())
    results, answered = get_all(xm, names, stagger=0.010)
    check_values(results, names, dd)
    calls = carrying_calls(dd, mark, answered)
    assert len(calls) == 1, (
        f"{len(calls)} calls carried the 6 first fetches: {shown(calls)}")
    assert calls[0][0] == 6
    assert any(q.startswith("avg:known.metric.") for q in calls[0][1]), "it was the refresh's"
