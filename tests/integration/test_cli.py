"""`xmetrics status` and configuration through flags, YAML and DD_* variables."""
import json
import os
import subprocess


def run_status(xmetrics, binary, *args):
    return subprocess.run([binary, "status", "--kubeconfig", xmetrics.kubeconfig, *args],
                          capture_output=True, text=True, timeout=30)


def test_status_table_and_json_show_value_age_and_validity(xmetrics, request):
    binary = os.path.abspath(request.config.getoption("--xmetrics-binary"))
    before = xmetrics.status()["dogstatsd"]["metrics"]
    xmetrics.send("cli.gauge:42|g|#env:cli")
    xmetrics.wait_ingested(before + 1)
    xmetrics.get_raw("/apis/external.metrics.k8s.io/v1beta1/namespaces/default/cli.gauge"
                     "?labelSelector=env%3Dcli")
    res = run_status(xmetrics, binary)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split()[:4] == ["NAMESPACE", "METRIC", "SELECTOR", "RESOLUTION"]
    line = next(l for l in res.stdout.splitlines() if l.split()[:2] == ["default", "cli.gauge"])
    assert "env=cli" in line and " inline " in line
    assert "avg:cli.gauge{env:cli}.rollup(30)" in line
    assert "42 (42)" in line and " yes " in line
    assert "backend embedded: reachable" in res.stdout
    xmetrics.send("cli.counter:20|c|#env:cli")
    xmetrics.get_raw("/apis/external.metrics.k8s.io/v1beta1/namespaces/default/cli.counter"
                     "?labelSelector=env%3Dcli")
    res = run_status(xmetrics, binary)
    line = next(l for l in res.stdout.splitlines() if l.split()[:2] == ["default", "cli.counter"])
    assert " per second)" in line  # counts are rates, and the table says so

    res = run_status(xmetrics, binary, "-o", "json")
    report = json.loads(res.stdout)
    m = next(m for m in report["metrics"] if m["metricName"] == "cli.gauge")
    assert m["value"] == "42" and m["valid"] is True and m["ageSeconds"] >= 0
    assert m["namespace"] == "default" and m["resolution"] == "inline"


def test_status_with_a_token_and_without_credentials(xmetrics, request):
    binary = os.path.abspath(request.config.getoption("--xmetrics-binary"))
    res = run_status(xmetrics, binary, "--token", xmetrics.token)
    assert res.returncode == 0, res.stderr
    res = run_status(xmetrics, binary, "--token", "nope")
    assert res.returncode == 1
    assert "401" in res.stderr and "nope" not in res.stderr


def test_invalid_settings_are_all_reported_at_once(request, tmp_path):
    binary = os.path.abspath(request.config.getoption("--xmetrics-binary"))
    cfg = tmp_path / "xmetrics.yaml"
    cfg.write_text("refresh-period: soon\nno-such-setting: 1\n")
    res = subprocess.run([binary, "serve", "--config", str(cfg), "--aggregator", "median"],
                         capture_output=True, text=True, timeout=10,
                         env={**os.environ, "DD_EXTERNAL_METRICS_PROVIDER_MAX_AGE": "-3"})
    assert res.returncode == 2
    assert "no-such-setting" in res.stderr
    assert "refresh-period" in res.stderr and "soon" in res.stderr
    assert "--aggregator" in res.stderr and "median" in res.stderr
    assert "DD_EXTERNAL_METRICS_PROVIDER_MAX_AGE" in res.stderr


def test_dd_variables_and_yaml_configure_the_query(start_xmetrics, tmp_path):
    cfg = tmp_path / "xmetrics.yaml"
    cfg.write_text("rollup: 60\naggregator: max\n")
    server = start_xmetrics("--config", str(cfg),
                            env={"DD_EXTERNAL_METRICS_AGGREGATOR": "sum"})
    server.send("cfg.gauge:3|g|#a:b")
    server.get_raw("/apis/external.metrics.k8s.io/v1beta1/namespaces/default/cfg.gauge"
                   "?labelSelector=a%3Db", check=False)
    queries = [m["query"] for m in server.status()["metrics"]]
    # DD_* beats the file; the file's rollup applies.
    assert queries == ["sum:cfg.gauge{a:b}.rollup(60)"]


def test_json_logs_are_one_object_per_line(start_xmetrics):
    server = start_xmetrics("--log-format", "json")
    lines = [l for l in server.logs().splitlines() if l.strip()]
    assert lines
    for l in lines:
        entry = json.loads(l)
        assert {"time", "level", "msg"} <= entry.keys()
    assert server.token not in server.logs()


def test_malformed_dogstatsd_lines_are_counted_not_fatal(start_xmetrics):
    server = start_xmetrics()
    server.send("garbage\nok.metric:1|g\n:::|x\n")
    from conftest import wait_for
    wait_for(lambda: server.status()["dogstatsd"]["malformed"] >= 2, what="malformed lines counted")
    # One datagram, counted at once: two bad lines and one metric, nothing else sent to this server.
    counted = server.status()["dogstatsd"]
    assert (counted["malformed"], counted["metrics"]) == (2, 1), counted
    assert server.proc.poll() is None
