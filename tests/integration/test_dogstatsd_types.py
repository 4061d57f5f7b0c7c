"""Every DogStatsD type, sent by the real datadog client or as raw packets, read back through the API."""
import json
import urllib.parse

from datadog.dogstatsd import DogStatsd

from test_external_metrics import read_items, wait_for_fresh_bucket


def client_for(xmetrics):
    return DogStatsd(host=xmetrics.dogstatsd[0], port=xmetrics.dogstatsd[1],
                     disable_telemetry=True, disable_buffering=True)


def test_histogram_timer_and_distribution_values(xmetrics):
    wait_for_fresh_bucket()
    client = client_for(xmetrics)
    before = xmetrics.status()["dogstatsd"]["metrics"]
    for v in (1, 2, 3, 4, 10):
        client.histogram("api.latency", v, tags=["route:checkout"])
        client.timing("db.query.time", v * 10, tags=["db:main"])
        client.distribution("payload.size", v, tags=["api:v2"])
    client.close_socket()
    xmetrics.wait_ingested(before + 15)
    assert read_items(xmetrics, "api.latency.max", "route=checkout")[0]["value"] == "10"
    assert read_items(xmetrics, "api.latency.avg", "route=checkout")[0]["value"] == "4"
    assert read_items(xmetrics, "api.latency.median", "route=checkout")[0]["value"] == "3"
    # .count of a histogram is a per-second rate like a counter: 5 samples in 10 s.
    assert read_items(xmetrics, "api.latency.count", "route=checkout")[0]["value"] == "500m"
    assert read_items(xmetrics, "db.query.time.max", "db=main")[0]["value"] == "100"
    assert read_items(xmetrics, "payload.size", "api=v2")[0]["value"] == "4"  # base name = avg


def test_sets_count_distinct_members(xmetrics):
    wait_for_fresh_bucket()
    client = client_for(xmetrics)
    before = xmetrics.status()["dogstatsd"]["metrics"]
    for user in ("alice", "bob", "alice", "carol"):
        client.set("users.active", user, tags=["app:shop"])
    client.close_socket()
    xmetrics.wait_ingested(before + 4)
    assert read_items(xmetrics, "users.active", "app=shop")[0]["value"] == "3"


def test_sample_rates_and_packed_values_in_raw_packets(xmetrics):
    wait_for_fresh_bucket()
    before = xmetrics.status()["dogstatsd"]["metrics"]
    # A count of 1 sampled at 0.5 stands for 2; 10 of them in 10 s = 2/s. Protocol 1.1 packs values.
    xmetrics.send("\n".join(["emails.sent:1|c|@0.5|#env:raw"] * 10))
    xmetrics.send("cart.items:1:2:3:4|h|#env:raw")
    xmetrics.wait_ingested(before + 11)
    assert read_items(xmetrics, "emails.sent", "env=raw")[0]["value"] == "2"
    assert read_items(xmetrics, "cart.items.max", "env=raw")[0]["value"] == "4"


def test_events_and_service_checks_share_the_socket_and_are_skipped(xmetrics):
    before = xmetrics.status()["dogstatsd"]
    client = client_for(xmetrics)
    client.event("deploy", "v2 rolled out", tags=["env:prod"])
    client.service_check("app.ok", DogStatsd.OK)
    client.gauge("after.event", 1)
    client.close_socket()
    xmetrics.wait_ingested(before["metrics"] + 1)
    after = xmetrics.status()["dogstatsd"]
    assert after["skipped"] == before["skipped"] + 2  # the event and the service check
    assert after["malformed"] == before["malformed"]
