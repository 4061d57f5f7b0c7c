"""Starts the real xmetrics binary on loopback for the integration tests.

Every test talks to 127.0.0.1 only; every wait is a bounded loop.
"""
import base64
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.parse

import pytest
import yaml

from fake_datadog import FakeDatadog

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The machine's kubectl, else the one scripts/setup built from its Go module.
KUBECTL = (os.environ.get("KUBECTL") or shutil.which("kubectl")
           or os.path.join(REPO, "build", "bin", "kubectl"))


def pytest_addoption(parser):
    parser.addoption("--xmetrics-binary", default=os.environ.get("XMETRICS_BINARY", "build/xmetrics"))


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "measures_rss: asserts a bound on the process's resident memory; the sanitizer "
        "builds (make sanitize) leave these out, as shadow memory and the freed-memory quarantine "
        "make RSS meaningless there")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A skipped test is a failed one: the suite is one ctest entry, so a skip (a part missing on a
    machine that should have it) would otherwise read "Passed"."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped, which this suite counts as a failure: {reason}"


def wait_for(predicate, timeout=10.0, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


class Xmetrics:
    """A running `xmetrics serve` and the ways to talk to it."""

    def __init__(self, binary, workdir, extra_args=(), env=None, command=None):
        """`command` replaces `binary serve`, e.g. with a `podman run` of the image."""
        self.workdir = workdir
        self.kubeconfig = os.path.join(workdir, "kubeconfig")
        self.token_file = os.path.join(workdir, "tokens.csv")
        self.token = "s3cr3t-t0ken-for-tests"
        with open(self.token_file, "w") as f:
            f.write(f'{self.token},alice,1001,"team-a,team-b"\n')
        self.log_path = os.path.join(workdir, "xmetrics.log")
        self.log = open(self.log_path, "w")
        args = [*(command or [binary, "serve"]),
                "--secure-port", "0",
                "--dogstatsd-address", "127.0.0.1:0",
                "--cert-dir", os.path.join(workdir, "certs"),
                "--write-kubeconfig", self.kubeconfig,
                "--token-auth-file", self.token_file,
                "--refresh-period", "1s",
                "--threads", "2",
                *extra_args]
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT,
                                     env={**os.environ, **(env or {})})
        wait_for(lambda: os.path.exists(self.kubeconfig) or self.proc.poll() is not None,
                 what="the kubeconfig to be written")
        if self.proc.poll() is not None:
            raise AssertionError(f"xmetrics exited {self.proc.returncode}: {self.logs()}")
        with open(self.kubeconfig) as f:
            cfg = yaml.safe_load(f)
        self.server = cfg["clusters"][0]["cluster"]["server"]
        parsed = urllib.parse.urlparse(self.server)
        self.host, self.port = parsed.hostname, parsed.port
        self.ca_file = os.path.join(workdir, "certs", "ca.crt")
        self.client_cert = os.path.join(workdir, "certs", "client-admin.crt")
        self.client_key = os.path.join(workdir, "certs", "client-admin.key")
        status = self.status()
        host, port = status["dogstatsd"]["address"].rsplit(":", 1)
        self.dogstatsd = (host, int(port))

    def logs(self):
        self.log.flush()
        with open(self.log_path) as f:
            return f.read()

    def kubectl(self, *args, check=True):
        res = subprocess.run([KUBECTL, "--kubeconfig", self.kubeconfig, *args],
                             capture_output=True, text=True, timeout=30)
        if check and res.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {res.stderr}")
        return res

    def get_raw(self, path, check=True):
        return self.kubectl("get", "--raw", path, check=check)

    def request(self, path, headers=None, client_cert=True, decode=True):
        """Raw HTTPS GET; returns (status, headers, body), the body as bytes unless `decode`."""
        import http.client
        ctx = ssl.create_default_context(cafile=self.ca_file)
        if client_cert:
            ctx.load_cert_chain(self.client_cert, self.client_key)
        conn = http.client.HTTPSConnection(self.host, self.port, context=ctx, timeout=10)
        try:
            conn.request("GET", path, headers=headers or {})
            res = conn.getresponse()
            body = res.read()
            return res.status, dict(res.getheaders()), body.decode() if decode else body
        finally:
            conn.close()

    def status(self):
        status, _, body = self.request("/xmetrics/v1/status")
        assert status == 200, body
        return json.loads(body)

    def send(self, payload: str):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.sendto(payload.encode(), self.dogstatsd)
        finally:
            sock.close()

    def wait_ingested(self, metrics, timeout=5.0):
        wait_for(lambda: self.status()["dogstatsd"]["metrics"] >= metrics, timeout=timeout,
                 what=f"{metrics} DogStatsD metrics to be ingested")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture(scope="module")
def xmetrics(request):
    binary = os.path.abspath(request.config.getoption("--xmetrics-binary"))
    with tempfile.TemporaryDirectory(prefix="xmetrics-it-") as workdir:
        server = Xmetrics(binary, workdir)
        yield server
        server.stop()


@pytest.fixture
def start_xmetrics(request):
    """Starts a dedicated server with extra arguments; stopped after the test."""
    binary = os.path.abspath(request.config.getoption("--xmetrics-binary"))
    started = []
    dirs = []

    def start(*extra_args, env=None):
        d = tempfile.TemporaryDirectory(prefix="xmetrics-it-")
        dirs.append(d)
        server = Xmetrics(binary, d.name, extra_args, env)
        started.append(server)
        return server

    yield start
    for s in started:
        s.stop()
    for d in dirs:
        d.cleanup()


@pytest.fixture
def fake_datadog():
    """Starts fake Datadog API servers (fake_datadog.py); stopped after the test."""
    servers = []

    def start(**kwargs):
        s = FakeDatadog(**kwargs)
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.stop()
