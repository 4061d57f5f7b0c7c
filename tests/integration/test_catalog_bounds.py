"""Issue 13, item 11: the metrics polled for direct requests are bounded in bytes, not only in
entries. 10,000 metrics with 7 KB selectors used to take 2.9 GB; now what they may take is
--max-metrics-bytes, counted as malloc counts it."""
import concurrent.futures
import json

import pytest

from conftest import wait_for
from test_external_metrics import metric_path


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024


def long_selector(i, requirements=60):
    """About 4 KB: near the 4096-byte door limit, each requirement distinct per metric."""
    return ",".join(f"k{j:02d}=v{i:05d}{'y' * 52}" for j in range(requirements))


@pytest.mark.measures_rss
def test_long_selectors_fill_the_bytes_bound_not_the_memory(start_xmetrics):
    xm = start_xmetrics("--max-metrics-bytes", "2Mi", "--max-metrics", "10000")
    # Metrics that exist, each requested with a 4 KB selector: they are served, so they stay.
    tags = lambda i: ",".join(f"k{j:02d}:v{i:05d}{'y' * 52}" for j in range(60))
    before = xm.status()["dogstatsd"]["metrics"]
    for i in range(40):
        xm.send(f"wide.gauge:{i}|g|#{tags(i)}")
    xm.wait_ingested(before + 40)
    start_rss = rss_mb(xm.proc.pid)

    answers = []
    for i in range(40):
        status, _, body = xm.request(metric_path("wide.gauge", long_selector(i)))
        answers.append((status, body))
    served = [b for s, b in answers if s == 200]
    refused = [b for s, b in answers if s == 429]
    # ~80 KiB each under 2 MiB: a couple of dozen get in, the rest are refused naming the bound.
    assert 10 <= len(served) <= 30, [s for s, _ in answers]
    assert len(served) + len(refused) == 40, [s for s, _ in answers]
    assert json.loads(served[0])["items"][0]["value"] in {str(i) for i in range(40)}
    message = json.loads(refused[0])["message"]
    assert "--max-metrics-bytes 2048 KiB" in message and "KiB more" in message, message

    # An ordinary metric still fits beside them.
    xm.send("plain.gauge:5|g|#app:web")
    xm.wait_ingested(before + 41)
    status, _, body = xm.request(metric_path("plain.gauge", "app=web"))
    assert status == 200, body

    # A flood of invented names with long selectors never had a value: each makes room for the
    # next, and memory stays near the bound however many come.
    def invent(i):
        return xm.request(metric_path(f"invented.{i}", long_selector(i)))[0]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        codes = list(pool.map(invent, range(600)))
    assert set(codes) <= {404, 429}, set(codes)
    grown = rss_mb(xm.proc.pid) - start_rss
    # 600 × 80 KiB would be 47 MiB; the bound is 2 MiB (RSS also holds what malloc keeps).
    assert grown < 20, f"VmRSS grew by {grown:.0f} MB over a 2 MiB bound"
    status, _, body = xm.request(metric_path("plain.gauge", "app=web"))
    assert status == 200, body
    # And the status report stays proportionate to the bound, not to the flood.
    wait_for(lambda: len(xm.request("/xmetrics/v1/status")[2]) < 2_000_000, timeout=5,
             what="the status report to shrink back to what is polled")


def test_one_users_flood_stays_within_its_share(start_xmetrics):
    """Issue 13, item 5: per-identity quotas. Below --max-metrics one token user may fill it;
    once it is full, that user (past its share, every name served) is refused, while another
    user's new metric takes the place of one of its never-served names."""
    xm = start_xmetrics("--max-metrics", "8", "--max-metrics-per-user", "4")
    before = xm.status()["dogstatsd"]["metrics"]
    for i in range(7):
        xm.send(f"flood.{i}:{i}|g")
    xm.send("theirs.gauge:9|g")
    xm.wait_ingested(before + 8)
    as_alice = {"Authorization": f"Bearer {xm.token}"}
    codes = [xm.request(metric_path(f"flood.{i}"), headers=as_alice, client_cert=False)[0]
             for i in range(7)]
    assert codes == [200] * 7, codes  # below the bound: all of it
    status, _, body = xm.request(metric_path("never.sent"), headers=as_alice, client_cert=False)
    assert status == 404, body  # the eighth, fetched, no data: the one that can make room
    status, _, body = xm.request(metric_path("flood.extra"), headers=as_alice, client_cert=False)
    assert status in (404, 429), body  # its own never-served name made room, or it is refused
    # Another caller (the client certificate's user) is not held to alice's share.
    status, _, body = xm.request(metric_path("theirs.gauge"))
    assert status == 200, body
    status, _, body = xm.request(metric_path("flood.more"), headers=as_alice, client_cert=False)
    message = json.loads(body)["message"]
    assert status == 429, body
    assert 'user "alice" already has 7 directly requested metrics polled' in message, message
    assert "--max-metrics-per-user 4" in message, message
