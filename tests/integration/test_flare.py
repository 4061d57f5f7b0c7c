"""`xmetrics flare` against a running server using the Datadog backend with real-looking keys: the
archive holds status, effective config, logs and metrics, and no key appears anywhere in it."""
import io
import json
import os
import subprocess
import tarfile

import pytest

from fake_datadog import FakeDatadog

API_KEY = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"            # 32 hex, like a Datadog API key
APP_KEY = "aa11bb22cc33dd44ee55ff6600778899aabbccdd"    # 40 hex, like an application key


@pytest.fixture
def datadog():
    dd = FakeDatadog(api_key=API_KEY, app_key=APP_KEY)
    dd.values["checkout.requests"] = 12
    yield dd
    dd.stop()


def members(path):
    with tarfile.open(path, "r:gz") as tar:
        return {m.name: tar.extractfile(m).read().decode() for m in tar.getmembers()}


def test_flare_collects_everything_and_no_secret(start_xmetrics, datadog, tmp_path, request):
    app_key_file = tmp_path / "app-key"
    app_key_file.write_text(APP_KEY + "\n")
    xm = start_xmetrics("--backend", "datadog", "--datadog-endpoint", datadog.url,
                        "--datadog-app-key-file", str(app_key_file),
                        env={"DD_API_KEY": API_KEY})
    status, _, body = xm.request("/apis/external.metrics.k8s.io/v1beta1/namespaces/default/"
                                 "checkout.requests")
    assert status == 200, body

    binary = os.path.abspath(request.config.getoption("--xmetrics-binary"))
    out = tmp_path / "flare.tar.gz"
    # No cluster kubeconfig as kubectl would find one: HOME without ~/.kube/config, no KUBECONFIG.
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    env["HOME"] = str(tmp_path)
    res = subprocess.run([binary, "flare", "--kubeconfig", xm.kubeconfig, "-o", str(out)],
                         capture_output=True, text=True, timeout=60, env=env)
    assert res.returncode == 0, res.stderr
    assert oct(os.stat(out).st_mode & 0o777) == "0o600"
    files = members(out)
    assert {"status.json", "config.json", "logs.txt", "metrics.txt", "README.txt"} <= set(files)
    assert "xmetrics_http_requests_total" in files["metrics.txt"]

    status_report = json.loads(files["status.json"])
    assert any(m["metricName"] == "checkout.requests" for m in status_report["metrics"])
    settings = {s["name"]: s for s in json.loads(files["config.json"])["settings"]}
    assert settings["datadog-api-key"]["value"] == "<redacted>"
    assert settings["datadog-api-key"]["source"] == "environment variable DD_API_KEY"
    assert settings["datadog-app-key-file"]["value"] == str(app_key_file)  # a path, not the key
    assert settings["backend"]["value"] == "datadog"
    assert "xmetrics serving" in files["logs.txt"]
    assert "no --cluster-kubeconfig" in files["README.txt"]

    for name, content in files.items():
        for secret in (API_KEY, APP_KEY, API_KEY.upper(), APP_KEY.upper()):
            assert secret not in content, f"{name} contains a key"
