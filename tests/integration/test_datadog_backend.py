"""--backend datadog against a fake Datadog query API: values read back with kubectl get --raw."""
import json
import os
import time

import pytest

from conftest import wait_for

from test_external_metrics import metric_path  # noqa: E402  (one definition of the paths)


def read_items(xmetrics, name, selector=None):
    res = xmetrics.get_raw(metric_path(name, selector))
    return json.loads(res.stdout)["items"]


def start_datadog(start_xmetrics, dd, *extra, endpoints=None):
    args = ["--backend", "datadog", "--datadog-endpoint", dd.url,
            "--datadog-endpoint-backoff", "1s", "--datadog-timeout", "1s", *extra]
    if endpoints:
        args += ["--datadog-endpoints", ",".join(endpoints)]
    return start_xmetrics(*args, env={"DD_API_KEY": dd.api_key, "DD_APP_KEY": dd.app_key})


def test_inline_metrics_are_fetched_in_one_batch_and_read_back(start_xmetrics, fake_datadog):
    dd = fake_datadog()
    dd.values.update({"nginx.net.request_per_s": 42, "queue.depth": 2.5, "jobs.pending": 1500})
    xm = start_datadog(start_xmetrics, dd)
    assert "plain http" in xm.logs()
    item = read_items(xm, "nginx.net.request_per_s", "kube_container_name=nginx")[0]
    assert item["value"] == "42"
    assert item["metricLabels"] == {"kube_container_name": "nginx"}
    assert read_items(xm, "queue.depth")[0]["value"] == "2500m"
    assert read_items(xm, "jobs.pending", "env=prod,tier notin (free)")[0]["value"] == "1500"
    # The next refresh asks for all three in one call, mapped back by query_index.
    first = len(dd.query_calls())
    wait_for(lambda: any(len(c["queries"]) == 3 for c in dd.query_calls()[first:]),
             what="a refresh batching the three queries")
    batch = [c for c in dd.query_calls()[first:] if len(c["queries"]) == 3][0]
    assert sorted(batch["queries"]) == [
        "avg:jobs.pending{env:prod AND tier NOT IN (free)}.rollup(30)",
        "avg:nginx.net.request_per_s{kube_container_name:nginx}.rollup(30)",
        "avg:queue.depth{*}.rollup(30)",
    ]
    assert batch["to"] - batch["from"] == 300  # max(max-age 120 s, bucket 300 s)
    assert batch["headers"]["DD-API-KEY"] == dd.api_key
    status = xm.status()
    assert status["backend"]["name"] == "datadog"
    assert status["backend"]["calls"] >= 1
    details = status["backend"]["details"]
    assert "calls left per 3600s" in details[f"endpoint {dd.url}"]
    # Keys never reach logs or status.
    for text in (xm.logs(), json.dumps(status)):
        assert dd.api_key not in text and dd.app_key not in text


def test_the_recorded_answer_is_read_with_the_point_rule(start_xmetrics, fake_datadog):
    dd = fake_datadog()
    # The recording has 300 s buckets, so the chosen (second newest) point is ~330 s old.
    xm = start_datadog(start_xmetrics, dd, "--max-age", "600s")
    item = read_items(xm, "system.cpu.idle")[0]
    # Second newest point of the recorded pointlist: [1641429900000, 92.05671568477855].
    assert item["value"] == "92056715685n"  # 92.056715685
    call = dd.query_calls()[0]
    assert call["to"] - call["from"] == 600  # max(max-age, bucket-size)


def test_a_rejected_query_fails_alone(start_xmetrics, fake_datadog):
    dd = fake_datadog()
    dd.values.update({"good.one": 1, "good.two": 2})
    dd.bad["broken.metric"] = "Error parsing query: unknown function broken"
    xm = start_datadog(start_xmetrics, dd)
    for name in ("good.one", "good.two"):
        read_items(xm, name)
    status, _, body = xm.request(metric_path("broken.metric"))
    assert status == 404, body
    assert "Datadog rejected the query: Error parsing query: unknown function broken" in body
    # In the refreshes that follow, the good ones stay valid and the bad one is no longer sent.
    mark = len(dd.query_calls())
    wait_for(lambda: len(dd.query_calls()) >= mark + 2, what="two more refreshes")
    assert all("broken" not in q for c in dd.query_calls()[mark:] for q in c["queries"])
    assert read_items(xm, "good.one")[0]["value"] == "1"
    assert read_items(xm, "good.two")[0]["value"] == "2"


def test_no_series_and_all_null_are_errors_that_say_so(start_xmetrics, fake_datadog):
    dd = fake_datadog()
    dd.values["all.null"] = None
    xm = start_datadog(start_xmetrics, dd)
    _, _, body = xm.request(metric_path("not.there"))
    assert "no serie was found for this query" in body
    _, _, body = xm.request(metric_path("all.null"))
    assert "only null values found" in body


def test_a_429_waits_for_the_reset_and_values_keep_coming(start_xmetrics, fake_datadog):
    dd = fake_datadog()
    dd.values["paced.metric"] = 7
    xm = start_datadog(start_xmetrics, dd)
    assert read_items(xm, "paced.metric")[0]["value"] == "7"
    dd.fail_next(("status", 429, '{"errors":["Rate limit exceeded"]}',
                  {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "2"}))
    mark = len(dd.query_calls())
    wait_for(lambda: any(c["status"] == 429 for c in dd.query_calls()[mark:]), what="the 429")
    rejected_at = [c["time"] for c in dd.query_calls()[mark:] if c["status"] == 429][0]
    wait_for(lambda: any(c["time"] > rejected_at and c["status"] == 200
                         for c in dd.query_calls()), what="a call after the reset")
    after = [c["time"] for c in dd.query_calls() if c["time"] > rejected_at][0]
    assert after - rejected_at >= 1.5  # it waited for the announced reset, not hammered
    assert read_items(xm, "paced.metric")[0]["value"] == "7"


def test_a_tight_announced_limit_is_never_exceeded(start_xmetrics, fake_datadog):
    dd = fake_datadog(rate_limit=(4, 3))  # 4 calls per 3 s
    for i in range(8):
        dd.values[f"tight.m{i}"] = i
    # One query per call (chunk size 1) so eight metrics want eight calls a second.
    xm = start_datadog(start_xmetrics, dd, "--datadog-chunk-size", "1")
    for i in range(8):
        xm.request(metric_path(f"tight.m{i}"))
    # Pacing is not stopping: every metric must go on being refreshed within the budget. At 4 calls
    # per 3 s less the 10% the budget keeps back, the eight one-query calls take 6.7 s: each new
    # value must be served within three such rotations. A pacer that stops calling never serves
    # them, and sends no 429 either.
    for i in range(8):
        dd.values[f"tight.m{i}"] = 100 + i
    changed, changed_at = time.monotonic(), time.time()
    bound = 3 * 8 / (4 / 3 * 0.9)

    def stale():
        names = []
        for i in range(8):
            status, _, body = xm.request(metric_path(f"tight.m{i}"))
            if status != 200 or json.loads(body)["items"][0]["value"] != str(100 + i):
                names.append(f"tight.m{i}")
        return names
    while (left := stale()) and time.monotonic() < changed + bound:
        time.sleep(0.5)
    assert not left, f"not refreshed within {bound:.0f} s: {left}; calls: " + \
        str([(round(c["time"] - changed_at, 2), c["status"], c["queries"])
             for c in dd.query_calls() if c["time"] >= changed_at])
    # Each was carried by a call answered since the change, not served from anything older.
    sent = [q for c in dd.query_calls() if c["time"] >= changed_at and c["status"] == 200
            for q in c["queries"]]
    assert all(f"avg:tight.m{i}{{*}}.rollup(30)" in sent for i in range(8)), sent
    time.sleep(max(0.0, changed + 7 - time.monotonic()))  # and at least 7 s of paced calls
    calls = dd.query_calls()
    assert not [c for c in calls if c["status"] == 429], "a 429 means the pacing overshot"
    windows = {}
    for c in calls:
        start = int(c["time"]) - int(c["time"]) % 3
        windows[start] = windows.get(start, 0) + 1
    assert max(windows.values()) <= 4, windows


def test_points_stamped_in_the_future_are_refused_or_go_stale_when_the_backend_fails(
        start_xmetrics, fake_datadog):
    """A backend whose clock runs an hour ahead: its points are an error naming them, never a
    value. One a little ahead (20 s, within the skew allowed) is served, and still goes stale
    max-age after the backend stops answering, not max-age after its stamp."""
    dd = fake_datadog()
    dd.values["future.metric"] = 4
    dd.clock_offset_ms = 3600 * 1000
    # max-age 12 s is 3 x rollup (no raise); no query-validity-period grace, so the error comes
    # max-age after the last good fetch. Refresh 1 s.
    xm = start_datadog(start_xmetrics, dd, "--rollup", "4", "--max-age", "12s",
                       "--query-validity-period", "0")
    res = xm.get_raw(metric_path("future.metric"), check=False)
    assert res.returncode != 0, res.stdout
    assert "in the future" in res.stderr and "future.metric" in res.stderr, res.stderr

    dd.clock_offset_ms = 80 * 1000  # the point served (the last complete one) 20 s ahead
    wait_for(lambda: xm.get_raw(metric_path("future.metric"), check=False).returncode == 0,
             timeout=10, what="the point within the skew served")
    dd.fail_next(*[("status", 500, '{"errors":["Internal Server Error"]}')] * 60)
    failing_since = time.monotonic()
    wait_for(lambda: xm.get_raw(metric_path("future.metric"), check=False).returncode != 0,
             timeout=25, what="stale after the backend stopped answering")
    # max-age (12 s) after the last good fetch, plus a refresh: not the 32 s its stamp would give.
    assert time.monotonic() - failing_since < 16
    res = xm.get_raw(metric_path("future.metric"), check=False)
    assert "was fetched" in res.stderr and "older than max-age 12s" in res.stderr, res.stderr


def test_server_errors_and_timeouts_fail_over_to_the_next_endpoint(start_xmetrics, fake_datadog):
    primary, secondary = fake_datadog(), fake_datadog()
    for dd in (primary, secondary):
        dd.values["failover.metric"] = 5
    xm = start_datadog(start_xmetrics, primary, endpoints=[secondary.url])
    assert read_items(xm, "failover.metric")[0]["value"] == "5"
    primary.fail_next(("status", 503, '{"errors":["upstream unavailable"]}'))
    wait_for(lambda: secondary.query_calls(), what="a call to the failover endpoint")
    assert read_items(xm, "failover.metric")[0]["value"] == "5"
    # After its backoff the primary is used again.
    mark = len(primary.query_calls())
    wait_for(lambda: len(primary.query_calls()) > mark, timeout=10, what="the primary back")
    primary.fail_next(("timeout", 3))
    mark = len(secondary.query_calls())
    wait_for(lambda: len(secondary.query_calls()) > mark, timeout=10,
             what="failover after a timeout")
    assert "Timeout was reached" in xm.logs()


def test_errors_are_visible_and_never_show_the_keys(start_xmetrics, fake_datadog):
    dd = fake_datadog()
    dd.values["shown.metric"] = 3
    xm = start_datadog(start_xmetrics, dd)
    assert read_items(xm, "shown.metric")[0]["value"] == "3"
    dd.fail_next(("garbage",), ("garbage",))
    wait_for(lambda: "not a query response" in xm.status()["backend"]["lastError"],
             what="the garbage error in status")
    dd.api_key = "rotated-key-the-server-now-wants"  # ours is now wrong: 403
    wait_for(lambda: "403 Forbidden" in xm.status()["backend"]["lastError"], what="the 403")
    assert "DD_API_KEY" in xm.status()["backend"]["lastError"]
    for text in (xm.logs(), json.dumps(xm.status())):
        assert "fake-api-key-0123456789" not in text and dd.app_key not in text


def test_keys_from_files_are_read_again_when_they_change(start_xmetrics, fake_datadog, tmp_path):
    dd = fake_datadog()
    dd.values["rotated.metric"] = 9
    api, app = tmp_path / "api-key", tmp_path / "app-key"
    api.write_text(dd.api_key + "\n")
    app.write_text(dd.app_key)
    xm = start_xmetrics("--backend", "datadog", "--datadog-endpoint", dd.url,
                        "--datadog-endpoint-backoff", "1s",
                        "--datadog-api-key-file", str(api), "--datadog-app-key-file", str(app))
    assert read_items(xm, "rotated.metric")[0]["value"] == "9"
    dd.api_key = "the-new-key"
    api.write_text("the-new-key\n")
    mark = len(dd.query_calls())
    wait_for(lambda: any(c["status"] == 200 and c["headers"]["DD-API-KEY"] == "the-new-key"
                         for c in dd.query_calls()[mark:]), what="a call with the new key")


def test_missing_keys_stop_the_start_with_the_fix(tmp_path, request):
    import subprocess
    binary = os.path.abspath(request.config.getoption("--xmetrics-binary"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DD_")}
    res = subprocess.run([binary, "serve", "--backend", "datadog", "--secure-port", "0",
                          "--cert-dir", str(tmp_path)], capture_output=True, text=True,
                         timeout=10, env=env)
    assert res.returncode != 0
    assert "needs an API key: set DD_API_KEY or --datadog-api-key-file" in res.stdout + res.stderr
