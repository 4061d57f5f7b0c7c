"""Changes without a restart: a new serving certificate is used for new connections while open ones
keep working, and a changed --config file applies its `metrics` and `log-level` settings."""
import http.client
import json
import os
import signal
import ssl
import subprocess
import time

from conftest import wait_for

BASE = "/apis/external.metrics.k8s.io/v1beta1/namespaces/default"


def connect(xm):
    ctx = ssl.create_default_context(cafile=xm.ca_file)
    ctx.load_cert_chain(xm.client_cert, xm.client_key)
    conn = http.client.HTTPSConnection(xm.host, xm.port, context=ctx, timeout=10)
    conn.connect()
    return conn


def get(conn, path):
    conn.request("GET", path)
    res = conn.getresponse()
    return res.status, res.read().decode()


def peer_subject(conn):
    cert = conn.sock.getpeercert()
    return dict(x[0] for x in cert["subject"])["commonName"]


def test_a_rotated_serving_certificate_is_used_without_dropping_connections(start_xmetrics,
                                                                            tmp_path):
    xmetrics = start_xmetrics()  # its own cert dir: the rotation must not touch other tests
    certs = os.path.dirname(xmetrics.ca_file)
    old = connect(xmetrics)
    assert get(old, "/apis")[0] == 200
    assert peer_subject(old) == "xmetrics"

    key, csr, crt = tmp_path / "new.key", tmp_path / "new.csr", tmp_path / "new.crt"
    ext = tmp_path / "ext.cnf"
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    subprocess.run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key), "-subj",
                    "/CN=xmetrics-rotated", "-out", str(csr)], check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-req", "-in", str(csr), "-CA", xmetrics.ca_file,
                    "-CAkey", os.path.join(certs, "ca.key"), "-CAcreateserial", "-days", "90",
                    "-extfile", str(ext), "-out", str(crt)], check=True, capture_output=True)
    os.replace(key, os.path.join(certs, "tls.key"))
    os.replace(crt, os.path.join(certs, "tls.crt"))

    def rotated():
        conn = connect(xmetrics)
        try:
            return peer_subject(conn) == "xmetrics-rotated"
        finally:
            conn.close()
    wait_for(rotated, timeout=15, interval=0.3, what="new connections to get the new certificate")
    assert "event=certificate_reloaded" in xmetrics.logs()
    # The connection opened before the rotation is still served.
    assert get(old, "/apis")[0] == 200
    old.close()


def test_a_changed_config_file_applies_metrics_and_log_level(start_xmetrics, tmp_path):
    config = tmp_path / "xmetrics.yaml"

    def write(query, level):
        text = (f"log-level: {level}\nmetrics:\n"
                f"  - {{name: reload.target, backend: embedded, query: '{query}'}}\n")
        # Atomic, as a ConfigMap volume update is.
        tmp = tmp_path / "xmetrics.yaml.new"
        tmp.write_text(text)
        os.replace(tmp, config)

    write("max:reload.one{*}", "info")
    xm = start_xmetrics("--config", str(config))
    before = xm.status()["dogstatsd"]["metrics"]
    xm.send("reload.one:1|g")
    xm.send("reload.two:2|g")
    xm.wait_ingested(before + 2)
    status, _, body = xm.request(f"{BASE}/reload.target")
    assert status == 200, body
    assert json.loads(body)["items"][0]["value"] == "1"

    time.sleep(1.1)  # a different mtime even on coarse filesystems
    write("max:reload.two{*}", "debug")

    def switched():
        status, _, body = xm.request(f"{BASE}/reload.target")
        return status == 200 and json.loads(body)["items"][0]["value"] == "2"
    wait_for(switched, timeout=15, interval=0.3, what="the new query to answer")
    logs = xm.logs()
    assert "event=reloaded setting=metrics" in logs
    assert "event=reloaded setting=log-level value=debug" in logs

    # A broken file is rejected and the running settings stay.
    config.write_text("metrics: [{name: x}]\n")
    wait_for(lambda: "event=reload_rejected" in xm.logs(), timeout=15, interval=0.3,
             what="the broken config to be rejected")
    status, _, body = xm.request(f"{BASE}/reload.target")
    assert status == 200 and json.loads(body)["items"][0]["value"] == "2", body


def test_sighup_rereads_the_config_file_and_never_kills(start_xmetrics, tmp_path):
    """SIGHUP is a reload, as for other daemons; by default it would end the process."""
    config = tmp_path / "xmetrics.yaml"
    config.write_text("log-level: info\n")
    xm = start_xmetrics("--config", str(config))
    # The watcher polls (every 2 s): a change it can see is applied without a signal.
    config.write_text("log-level: debug\n")
    wait_for(lambda: "event=reloaded setting=log-level value=debug" in xm.logs(), timeout=10,
             what="the watcher to apply a change of size")
    # The same size, inode and modification time: the watcher cannot tell, only SIGHUP can. Two
    # of its polls go by first, so the SIGHUP is not merely ahead of the watcher's next look.
    stat = os.stat(config)
    config.write_text("log-level: error\n")
    os.utime(config, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    fingerprint = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
    now = os.stat(config)
    assert (now.st_ino, now.st_size, now.st_mtime_ns) == fingerprint
    time.sleep(2 * 2 + 1)
    assert "value=error" not in xm.logs(), "the watcher saw a change it cannot tell"
    xm.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "event=reloaded setting=log-level value=error" in xm.logs(), timeout=10,
             what="the reload SIGHUP asked for")
    assert "received SIGHUP" in xm.logs()
    assert xm.proc.poll() is None
    assert xm.request("/readyz")[0] == 200

    bare = start_xmetrics()  # no --config: logged, nothing to re-read, still serving
    bare.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "event=reload_skipped" in bare.logs(), timeout=10, what="the skipped reload")
    assert bare.proc.poll() is None
    assert bare.request("/readyz")[0] == 200
