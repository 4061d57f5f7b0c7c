"""`xmetrics doctor` against a canned kube-apiserver (plain HTTP on loopback, answers written
here) and a real xmetrics, and `xmetrics flare`, which runs the same doctor in process: its
doctor.txt is what `xmetrics doctor -o json` prints, and its exit status."""
import http.server
import json
import os
import re
import subprocess
import tarfile
import threading
import urllib.parse

import pytest

HPAS = {"items": [{
    "metadata": {"namespace": "default", "name": "web"},
    "spec": {"minReplicas": 1, "maxReplicas": 10, "metrics": [
        {"type": "External", "external": {"metric": {"name": "queue.depth"},
                                          "target": {"type": "AverageValue", "averageValue": "9"}}},
        {"type": "External", "external": {
            "metric": {"name": "orders", "selector": {"matchLabels": {"app": "web", "env": "prod"}}},
            "target": {"type": "Value", "value": "3k"}}}]},
    "status": {"currentReplicas": 3, "desiredReplicas": 4}}]}

OBJECTS = {
    "/version": {"major": "1", "minor": "37"},
    "/apis/apiregistration.k8s.io/v1/apiservices/v1beta1.external.metrics.k8s.io": {
        "spec": {"service": {"namespace": "xmetrics", "name": "xmetrics", "port": 443}},
        "status": {"conditions": [{"type": "Available", "status": "True", "reason": "Passed"}]}},
    "/api/v1/namespaces/xmetrics/services/xmetrics": {
        "spec": {"type": "ClusterIP", "clusterIP": "None", "ports": [{"name": "https", "port": 443}],
                 "selector": {"app": "xmetrics"}}},
    "/apis/discovery.k8s.io/v1/namespaces/xmetrics/endpointslices": {
        "items": [{"endpoints": [{"conditions": {"ready": True}}]}]},
    "/apis/external.metrics.k8s.io/v1beta1": {"resources": [{"name": "queue.depth"}]},
    "/api/v1/namespaces/xmetrics/pods": {"items": [{"spec": {"serviceAccountName": "xmetrics"}}]},
    "/apis/autoscaling/v2/horizontalpodautoscalers": HPAS,
    "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/queue.depth": {
        "items": [{"value": "2472"}]},
}


class FakeKube(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        selector = urllib.parse.parse_qs(url.query).get("labelSelector", [""])[0]
        if url.path.endswith("/orders"):
            # The metric exists, but no series carries env=prod.
            if selector in ("", "app=web"):
                return self.reply(200, {"items": [{"value": "5"}]})
            return self.reply(404, {"kind": "Status", "reason": "NotFound", "code": 404,
                                    "message": "no series matches avg:orders{app:web,env:prod}"})
        if url.path in OBJECTS:
            return self.reply(200, OBJECTS[url.path])
        self.reply(404, {"kind": "Status", "reason": "NotFound", "code": 404,
                         "message": "not found " + url.path})

    def do_POST(self):
        # SubjectAccessReviews: everything allowed but listing external metrics.
        review = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        attrs = review.get("spec", {}).get("resourceAttributes", {})
        allowed = not (attrs.get("verb") == "list" and attrs.get("group") == "external.metrics.k8s.io")
        review["status"] = {"allowed": allowed}
        self.reply(201, review)


@pytest.fixture
def cluster_kubeconfig(tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeKube)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    path = tmp_path / "cluster-kubeconfig"
    path.write_text(f"""apiVersion: v1
kind: Config
clusters: [{{name: fake, cluster: {{server: "http://127.0.0.1:{server.server_port}"}}}}]
users: [{{name: u, user: {{token: t}}}}]
contexts: [{{name: fake, context: {{cluster: fake, user: u}}}}]
current-context: fake
""")
    yield str(path)
    server.shutdown()


def checks_by_name(report):
    out = {}
    for c in report["checks"]:
        out.setdefault(c["name"], []).append(c)
    return out


def test_doctor_walks_every_link_and_flare_keeps_its_report(xmetrics, cluster_kubeconfig,
                                                            tmp_path, request):
    binary = os.path.abspath(request.config.getoption("--xmetrics-binary"))
    doctor = [binary, "doctor", "-o", "json", "--kubeconfig", cluster_kubeconfig,
              "--namespace", "xmetrics", "--xmetrics-kubeconfig", xmetrics.kubeconfig]
    # Through --server (a port-forward, say): xmetrics answers, the rest is the canned cluster.
    res = subprocess.run([*doctor, "--server", xmetrics.server], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 1, res.stderr  # the RBAC failure below
    checks = checks_by_name(json.loads(res.stdout))
    assert [c["verdict"] for c in checks["apiservice"]] == ["OK"]
    assert checks["rbac-hpa"][0]["problem"] == "wrong-rbac"
    assert checks["rbac-xmetrics"][0]["verdict"] == "OK"
    assert checks["xmetrics"][0]["verdict"] == "OK", checks["xmetrics"]
    assert checks["backend"][0]["subject"] == "embedded"
    assert checks["leader"][0]["summary"] == "leader election off (single replica)"
    hpa = {c["subject"]: c for c in checks["hpa"]}
    assert hpa["default/web queue.depth"]["summary"] == "824/9 (avg) → desired 10 (HPA: 4)"
    typo = hpa["default/web orders{app=web,env=prod}"]
    assert typo["problem"] == "tag-typo" and "no series has env=prod" in typo["summary"]

    # flare runs the same walk in process (no --server: where the aggregator would dial, which
    # answers nothing here) and keeps what `doctor -o json` prints with its exit status.
    archive = tmp_path / "flare.tar.gz"
    flare = subprocess.run([binary, "flare", "--kubeconfig", xmetrics.kubeconfig,
                            "--cluster-kubeconfig", cluster_kubeconfig, "--namespace", "xmetrics",
                            "-o", str(archive)], capture_output=True, text=True, timeout=120)
    assert flare.returncode == 0, flare.stderr
    direct = subprocess.run(doctor, capture_output=True, text=True, timeout=60)
    with tarfile.open(archive, "r:gz") as tar:
        kept = tar.extractfile("doctor.txt").read().decode()
    assert kept == direct.stdout + direct.stderr + f"\n(exit status {direct.returncode})\n"
    assert checks_by_name(json.loads(direct.stdout))["xmetrics"][0]["problem"] == \
        "xmetrics-unreachable"
