"""xmetrics started with a Datadog Cluster Agent's settings, as a migrating user moves them over: the
environment of the Cluster Agent Deployment the official datadog chart renders (fixtures/datadog-chart,
inline, CRD and CRD-with-two-replicas modes), values the Cluster Agent accepts at its bounds, its
datadog-cluster.yaml, and ENC[...] secrets from a secret backend. Each must serve from the Datadog
backend without exiting, and say what it made of every setting.

The one variable added to the Deployment's environment is DD_EXTERNAL_METRICS_PROVIDER_ENDPOINT,
pointing at the fake Datadog API (the tests reach nothing but 127.0.0.1).
"""
import json
import os
import stat

import pytest
import yaml

from conftest import REPO
from test_external_metrics import metric_path

FIXTURES = os.path.join(REPO, "tests", "integration", "fixtures", "datadog-chart")
POD_NAME = "datadog-agent-cluster-agent-7d9f8c6b5-x2x4q"


def deployment_env(mode, dd):
    """The cluster-agent container's env of extract-<mode>.yaml, valueFrom resolved as the kubelet
    would: the chart's Secret keys api-key / app-key hold the fake's keys."""
    with open(os.path.join(FIXTURES, f"extract-{mode}.yaml")) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    container = next(c for c in deployment["spec"]["template"]["spec"]["containers"]
                     if c["name"] == "cluster-agent")
    env = {}
    for var in container["env"]:
        if "value" in var:
            env[var["name"]] = str(var["value"])
            continue
        source = var["valueFrom"]
        if "secretKeyRef" in source:
            key = source["secretKeyRef"]["key"]
            env[var["name"]] = {"api-key": dd.api_key, "app-key": dd.app_key}.get(key, "token-x")
        elif "fieldRef" in source:
            env[var["name"]] = {"metadata.name": POD_NAME,
                                "spec.serviceAccountName": "datadog-agent-cluster-agent"}.get(
                source["fieldRef"]["fieldPath"], "x")
        else:  # configMapKeyRef: the kpi telemetry
            env[var["name"]] = "x"
    env["DD_EXTERNAL_METRICS_PROVIDER_ENDPOINT"] = dd.url
    return env


def notes(xm):
    return {n["variable"]: n for n in xm.status()["configuration"]["environment"]}


def test_each_rendered_cluster_agent_environment_serves_from_datadog(start_xmetrics, fake_datadog):
    for mode in ("inline", "crd", "crd-ha"):
        dd = fake_datadog()
        dd.values["nginx.net.request_per_s"] = 42
        env = deployment_env(mode, dd)
        assert env["DD_API_KEY"] == dd.api_key and env["DD_SITE"] == "datadoghq.eu"
        xm = start_xmetrics(env=env)  # no --backend: the keys choose it
        logs = xm.logs()
        first = next(line for line in logs.splitlines() if "starting" in line)
        assert "backend=datadog (datadog-api-key is set (environment variable DD_API_KEY)" in first
        conf = xm.status()["configuration"]
        assert conf["backend"] == "datadog", conf

        res = xm.get_raw(metric_path("nginx.net.request_per_s", "kube_container_name=nginx"))
        assert json.loads(res.stdout)["items"][0]["value"] == "42", mode

        seen = notes(xm)
        assert seen["DD_SITE"]["text"] == "read as datadog-site"
        assert seen["DD_POD_NAME"]["text"] == "read as pod-name"
        assert seen["DD_EXTERNAL_METRICS_PROVIDER_PORT"]["text"].startswith("shadowed by flag")
        assert seen["DD_HEALTH_PORT"]["text"].startswith("accepted:")
        assert seen["DD_EXTERNAL_METRICS_PROVIDER_WPA_CONTROLLER"]["level"] == "info"
        assert "DD_ADMISSION_CONTROLLER_ENABLED" in seen[""]["text"]
        # Every DD_* variable of the Deployment has its line, in the log too.
        for name in env:
            if name.startswith("DD_"):
                assert name in seen or name in seen[""]["text"], (mode, name)
                assert name in logs, (mode, name)
        assert "DD_SITE: read as datadog-site" in logs
        if mode == "crd-ha":
            polling = seen["DD_EXTERNAL_METRICS_PROVIDER_POLLING_INTERVAL"]
            assert polling["level"] == "warn" and "REFRESH_PERIOD" in polling["text"], polling
            assert "DD_EXTERNAL_METRICS_PROVIDER_POLLING_INTERVAL: unknown" in logs
        # Secrets never travel: not in the log, not in status, not in /xmetrics/v1/config.
        _, _, config = xm.request("/xmetrics/v1/config")
        for text in (logs, json.dumps(xm.status()), config):
            assert dd.api_key not in text and dd.app_key not in text
        xm.stop()


def test_values_the_cluster_agent_accepts_start_with_its_semantics(start_xmetrics, fake_datadog):
    """Each used to exit 2 and crash-loop; each is taken the Cluster Agent's way, with a warning."""
    dd = fake_datadog()
    dd.values["queue.depth"] = 7
    xm = start_xmetrics(env={
        "DD_API_KEY": dd.api_key, "DD_APP_KEY": dd.app_key,
        "DD_EXTERNAL_METRICS_PROVIDER_ENDPOINT": dd.url,
        "DD_EXTERNAL_METRICS_PROVIDER_ENABLED": "t",
        "DD_EXTERNAL_METRICS_PROVIDER_MAX_AGE": "10",
        "DD_EXTERNAL_METRICS_PROVIDER_CHUNK_SIZE": "100",
        "DD_EXTERNAL_METRICS_PROVIDER_USE_DATADOGMETRIC_CRD": "0",
        "DD_LEADER_ELECTION": "1", "DD_LEADER_LEASE_DURATION": "3",
        "DD_LOG_LEVEL": "WARNING",
    })
    assert xm.proc.poll() is None
    conf = xm.status()["configuration"]
    warnings = "\n".join(conf["warnings"])
    assert "DD_EXTERNAL_METRICS_PROVIDER_MAX_AGE = 10s is below 3 x rollup (90s): using 90s" in warnings
    assert "DD_EXTERNAL_METRICS_PROVIDER_CHUNK_SIZE = 100 is outside 1-35" in warnings
    assert "using 35" in warnings
    assert "DD_LEADER_LEASE_DURATION = 3s is too short to renew within: using 4s" in warnings
    logs = xm.logs()
    for w in conf["warnings"]:
        assert w in logs  # warnings pass the WARNING level
    assert xm.status()["poller"]["maxAgeSeconds"] == 90
    res = xm.get_raw(metric_path("queue.depth"))
    assert json.loads(res.stdout)["items"][0]["value"] == "7"


def test_the_cluster_agents_config_file_works_unchanged(start_xmetrics, fake_datadog, tmp_path):
    dd = fake_datadog()
    dd.values["jobs.pending"] = 3
    path = tmp_path / "datadog-cluster.yaml"
    path.write_text(yaml.safe_dump({
        "api_key": dd.api_key, "app_key": dd.app_key, "cluster_name": "prod-eu",
        "external_metrics_provider": {"enabled": True, "endpoint": dd.url, "refresh_period": 15,
                                      "chunk_size": 10, "max_age": 180},
        "external_metrics": {"aggregator": "max"},
        "logs_enabled": False,
    }))
    xm = start_xmetrics("--config", str(path))
    settings = {s["name"]: s for s in json.loads(xm.request("/xmetrics/v1/config")[2])["settings"]}
    assert settings["datadog-chunk-size"]["value"] == "10"
    assert settings["datadog-chunk-size"]["source"] == \
        f'"external_metrics_provider.chunk_size" in {path}'
    assert settings["aggregator"]["value"] == "max"
    assert settings["datadog-api-key"]["value"] == "<redacted>"
    assert xm.status()["poller"]["maxAgeSeconds"] == 180
    assert notes(xm)["DD_LOGS_ENABLED"]["level"] == "warn"
    res = xm.get_raw(metric_path("jobs.pending"))
    assert json.loads(res.stdout)["items"][0]["value"] == "3"
    # The inline query the aggregator of the file built.
    queries = [q for c in dd.query_calls() for q in c["queries"]]
    assert any(q.startswith("max:jobs.pending") for q in queries), queries


def test_enc_values_are_resolved_by_the_secret_backend_command(start_xmetrics, fake_datadog,
                                                               tmp_path):
    dd = fake_datadog()
    dd.values["queue.depth"] = 5
    secrets = tmp_path / "secrets.json"
    secrets.write_text(json.dumps({"dd_api": dd.api_key, "dd_app": dd.app_key}))
    command = tmp_path / "secret-backend"
    # The Agent's protocol: handles on stdin, {handle: {value, error}} on stdout.
    command.write_text(f"""#!/usr/bin/env python3
import json, sys
request = json.load(sys.stdin)
assert request["version"] == "1.0", request
known = json.load(open({str(secrets)!r}))
json.dump({{h: {{"value": known.get(h), "error": None if h in known else "unknown"}}
           for h in request["secrets"]}}, sys.stdout)
""")
    os.chmod(command, stat.S_IRWXU)
    xm = start_xmetrics(env={"DD_API_KEY": "ENC[dd_api]", "DD_APP_KEY": "ENC[dd_app]",
                             "DD_SECRET_BACKEND_COMMAND": str(command),
                             "DD_EXTERNAL_METRICS_PROVIDER_ENDPOINT": dd.url})
    res = xm.get_raw(metric_path("queue.depth"))
    assert json.loads(res.stdout)["items"][0]["value"] == "5"
    _, _, config = xm.request("/xmetrics/v1/config")
    for text in (xm.logs(), config, json.dumps(xm.status())):
        assert dd.api_key not in text and dd.app_key not in text


def test_a_failing_secret_backend_stops_the_start_naming_it(start_xmetrics, tmp_path):
    command = tmp_path / "secret-backend"
    command.write_text("#!/bin/sh\necho 'vault is sealed' >&2\nexit 4\n")
    os.chmod(command, stat.S_IRWXU)
    with pytest.raises(AssertionError) as failed:
        start_xmetrics(env={"DD_API_KEY": "ENC[k]", "DD_APP_KEY": "plain",
                            "DD_SECRET_BACKEND_COMMAND": str(command)})
    message = str(failed.value)
    assert "exited 2" in message and f"secret-backend-command {command}: it exited with 4: " \
        "vault is sealed" in message, message
