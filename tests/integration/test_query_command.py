"""`xmetrics query` against a running xmetrics (standalone, embedded store), and the binary
answering as the kubectl plugin `kubectl-xmetrics`, found by a real kubectl on the PATH.

Every value the command prints is compared with what `kubectl get --raw` reads from the same
server, not with a number written here."""
import json
import os
import shutil
import subprocess
import time

from conftest import KUBECTL

from test_external_metrics import metric_path


def run_query(binary, *args, env=None, timeout=30):
    return subprocess.run([binary, "query", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def raw_items(xmetrics, name, selector):
    return json.loads(xmetrics.get_raw(metric_path(name, selector)).stdout)["items"]


def table_rows(out):
    lines = [line for line in out.splitlines() if line and not line.startswith("#")]
    header = lines[0].split()
    return header, [line.split() for line in lines[1:]]


def send_depth(xmetrics, value, queue):
    before = xmetrics.status()["dogstatsd"]["metrics"]
    xmetrics.send(f"orders.queue:{value}|g|#queue:{queue},env:prod")
    xmetrics.wait_ingested(before + 1)


def test_query_prints_what_the_server_serves_as_a_table_and_as_json(xmetrics, request):
    binary = os.path.abspath(request.config.getoption("--xmetrics-binary"))
    send_depth(xmetrics, 1.5, "emails")
    served = raw_items(xmetrics, "orders.queue", "queue=emails")
    assert len(served) == 1

    res = run_query(binary, "--kubeconfig", xmetrics.kubeconfig, "orders.queue", "-l",
                    "queue=emails")
    assert res.returncode == 0, res.stderr
    header, rows = table_rows(res.stdout)
    assert header == ["METRIC", "LABELS", "VALUE", "TIMESTAMP", "AGE"]
    assert len(rows) == 1
    metric, labels, quantity, number, timestamp, age = rows[0]
    assert metric == "orders.queue" and labels == "queue=emails"
    assert quantity == served[0]["value"] and number == "(1.5)"
    assert timestamp == served[0]["timestamp"]
    assert age.endswith("s") and 0 <= int(age[:-1]) <= 60, age

    # -o json is the body as served; the token path (no client certificate) reads the same.
    res = run_query(binary, "--server", xmetrics.server, "--token", xmetrics.token,
                    "--certificate-authority", xmetrics.ca_file, "-n", "default", "-o", "json",
                    "orders.queue", "-l", "queue=emails")
    assert res.returncode == 0, res.stderr
    body = json.loads(res.stdout)
    assert body["kind"] == "ExternalMetricValueList"
    assert body["items"] == served


def test_query_shows_the_servers_status_reason_and_message(xmetrics, request):
    binary = os.path.abspath(request.config.getoption("--xmetrics-binary"))
    res = run_query(binary, "--kubeconfig", xmetrics.kubeconfig, "never.sent.anywhere")
    assert res.returncode == 1
    raw = xmetrics.get_raw(metric_path("never.sent.anywhere"), check=False)
    assert raw.returncode != 0
    assert "404 NotFound: " in res.stderr, res.stderr
    assert "never.sent.anywhere" in res.stderr
    assert res.stdout == ""

    # A wrong token: the server's 401, not a crash or an empty table.
    res = run_query(binary, "--server", xmetrics.server, "--token", "not-the-token",
                    "--certificate-authority", xmetrics.ca_file, "orders.queue")
    assert res.returncode == 1
    assert "401" in res.stderr and "not-the-token" not in res.stderr, res.stderr

    # A question that cannot be asked is refused before anything is sent, with how to ask it.
    res = run_query(binary, "--kubeconfig", xmetrics.kubeconfig, "--custom", "pods", "rps")
    assert res.returncode == 2
    assert "RESOURCE/NAME" in res.stderr

    # An untrusted server: the TLS failure, and the token never sent.
    res = run_query(binary, "--server", xmetrics.server, "--token", xmetrics.token, "orders.queue",
                    env={"SSL_CERT_FILE": "/nonexistent", "SSL_CERT_DIR": "/nonexistent"})
    assert res.returncode == 1
    assert "certificate" in res.stderr, res.stderr
    assert xmetrics.token not in res.stderr


def test_watch_reads_again_and_shows_the_new_value(xmetrics, request):
    binary = os.path.abspath(request.config.getoption("--xmetrics-binary"))
    send_depth(xmetrics, 3, "sms")
    proc = subprocess.Popen([binary, "query", "--kubeconfig", xmetrics.kubeconfig, "orders.queue",
                             "-l", "queue=sms", "--watch", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        values, sent = [], False
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "7" not in values:
            line = proc.stdout.readline()
            if not line:
                break
            if line.startswith("orders.queue"):
                values.append(line.split()[2])
                if not sent:
                    send_depth(xmetrics, 7, "sms")  # the poller refreshes every second
                    sent = True
        assert values[:1] == ["3"], values
        assert "7" in values, values
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_the_binary_is_a_kubectl_plugin_using_the_current_context(xmetrics, request, tmp_path):
    binary = os.path.abspath(request.config.getoption("--xmetrics-binary"))
    send_depth(xmetrics, 12, "push")
    served = raw_items(xmetrics, "orders.queue", "queue=push")
    plugins = tmp_path / "bin"
    plugins.mkdir()
    os.symlink(binary, plugins / "kubectl-xmetrics")
    home = tmp_path / "home"
    (home / ".kube").mkdir(parents=True)
    shutil.copy(xmetrics.kubeconfig, home / ".kube" / "config")
    env = {**os.environ, "HOME": str(home),
           "PATH": f"{plugins}{os.pathsep}{os.path.dirname(KUBECTL)}{os.pathsep}{os.environ['PATH']}"}
    env.pop("KUBECONFIG", None)

    listed = subprocess.run([KUBECTL, "plugin", "list"], capture_output=True, text=True, env=env,
                            timeout=30)
    assert str(plugins / "kubectl-xmetrics") in listed.stdout, listed.stdout + listed.stderr

    # ~/.kube/config, as kubectl reads it, with no flag naming it.
    res = subprocess.run([KUBECTL, "xmetrics", "query", "orders.queue", "-l", "queue=push",
                          "-o", "json"], capture_output=True, text=True, env=env, timeout=30)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["items"] == served

    # $KUBECONFIG first, as kubectl: a list whose first file is a kubeconfig of another server.
    other = tmp_path / "other-kubeconfig"
    other.write_text(open(xmetrics.kubeconfig).read().replace(xmetrics.server,
                                                              "https://127.0.0.1:9"))
    res = subprocess.run([KUBECTL, "xmetrics", "query", "orders.queue"], capture_output=True,
                         text=True, env={**env, "KUBECONFIG": f"{other}:{home / '.kube' / 'config'}"},
                         timeout=30)
    assert res.returncode == 1 and "127.0.0.1:9" in res.stderr, res.stderr

    # The usage line names the plugin as it was called.
    res = subprocess.run([KUBECTL, "xmetrics", "--help"], capture_output=True, text=True, env=env,
                         timeout=30)
    assert res.returncode == 0
    assert "kubectl xmetrics" in res.stdout, res.stdout


def test_make_install_puts_the_plugin_beside_the_binary(request, tmp_path):
    """cmake --install (what `make install` runs) of the build the tests use."""
    binary = os.path.abspath(request.config.getoption("--xmetrics-binary"))
    build = os.path.dirname(binary)
    res = subprocess.run(["cmake", "--install", build, "--prefix", str(tmp_path / "usr")],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    installed = tmp_path / "usr" / "bin" / "xmetrics"
    plugin = tmp_path / "usr" / "bin" / "kubectl-xmetrics"
    assert installed.is_file() and os.access(installed, os.X_OK)
    assert plugin.is_symlink() and os.readlink(plugin) == "xmetrics"
    res = subprocess.run([str(plugin), "query", "--help"], capture_output=True, text=True,
                         timeout=10)
    assert res.returncode == 0 and "kubectl xmetrics query" in res.stdout, res.stdout
