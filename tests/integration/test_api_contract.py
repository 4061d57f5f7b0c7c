"""Wire-contract checks of what kube-apiserver, the HPA controller and kubectl expect."""
import json

BASE = "/apis/external.metrics.k8s.io/v1beta1"


def test_discovery_is_never_empty(xmetrics):
    body = json.loads(xmetrics.get_raw(BASE).stdout)
    assert body["kind"] == "APIResourceList"
    assert body["groupVersion"] == "external.metrics.k8s.io/v1beta1"
    assert len(body["resources"]) >= 1
    for r in body["resources"]:
        assert r["kind"] == "ExternalMetricValueList" and r["namespaced"] is True
        assert r["verbs"] == ["get"]


def test_group_and_group_list(xmetrics):
    groups = json.loads(xmetrics.get_raw("/apis").stdout)
    assert groups["kind"] == "APIGroupList"
    assert groups["groups"][0]["name"] == "external.metrics.k8s.io"
    group = json.loads(xmetrics.get_raw("/apis/external.metrics.k8s.io").stdout)
    assert group["preferredVersion"]["groupVersion"] == "external.metrics.k8s.io/v1beta1"


def test_aggregated_discovery_request_gets_a_plain_json_answer(xmetrics):
    status, headers, body = xmetrics.request(
        "/apis", {"Accept": "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"})
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body)["kind"] == "APIGroupList"


def test_protobuf_first_accept_is_answered_with_json(xmetrics):
    xmetrics.send("proto.check:1|g")
    status, headers, body = xmetrics.request(
        BASE, {"Accept": "application/vnd.kubernetes.protobuf, */*"})
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    json.loads(body)
    status, headers, body = xmetrics.request(
        BASE + "/namespaces/default/nothing.here",
        {"Accept": "application/vnd.kubernetes.protobuf, */*"})
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body)["kind"] == "Status"


def test_openapi_is_never_a_server_error(xmetrics):
    for path in ("/openapi/v2", "/openapi/v3"):
        status, headers, body = xmetrics.request(path)
        assert status < 500, (path, status, body)
        assert status == 200
        assert json.loads(body)["paths"] == {}
        assert headers["Content-Type"] == "application/json"


def test_no_credentials_is_401_status(xmetrics):
    status, headers, body = xmetrics.request(BASE, client_cert=False)
    assert status == 401
    assert headers["Content-Type"] == "application/json"
    s = json.loads(body)
    assert s["kind"] == "Status" and s["reason"] == "Unauthorized" and s["code"] == 401


def test_bearer_token_from_the_token_file_authenticates(xmetrics):
    status, _, _ = xmetrics.request(BASE, {"Authorization": f"Bearer {xmetrics.token}"},
                                    client_cert=False)
    assert status == 200
    status, _, body = xmetrics.request(BASE, {"Authorization": "Bearer wrong-token"},
                                       client_cert=False)
    assert status == 401
    assert xmetrics.token not in body and "wrong-token" not in body


def test_health_endpoints_need_no_credentials(xmetrics):
    for path in ("/healthz", "/livez", "/readyz"):
        status, headers, body = xmetrics.request(path, client_cert=False)
        assert status == 200, (path, body)
        assert headers["Content-Type"] == "application/json"


def test_malformed_selector_is_400_naming_the_position(xmetrics):
    res = xmetrics.get_raw(BASE + "/namespaces/default/some.metric?labelSelector=env%20in%20(prod",
                           check=False)
    assert res.returncode != 0
    status, _, body = xmetrics.request(
        BASE + "/namespaces/default/some.metric?labelSelector=env%20in%20(prod")
    s = json.loads(body)
    assert status == 400 and s["reason"] == "BadRequest"
    assert "position" in s["message"] and "some.metric" in s["message"]


def test_writes_are_refused_with_a_status(xmetrics):
    import http.client
    import ssl
    ctx = ssl.create_default_context(cafile=xmetrics.ca_file)
    ctx.load_cert_chain(xmetrics.client_cert, xmetrics.client_key)
    conn = http.client.HTTPSConnection(xmetrics.host, xmetrics.port, context=ctx, timeout=10)
    conn.request("POST", BASE + "/namespaces/default/x", body="{}")
    res = conn.getresponse()
    assert res.status == 405
    assert json.loads(res.read())["reason"] == "MethodNotAllowed"


def test_keep_alive_connection_serves_many_requests(xmetrics):
    import http.client
    import ssl
    ctx = ssl.create_default_context(cafile=xmetrics.ca_file)
    ctx.load_cert_chain(xmetrics.client_cert, xmetrics.client_key)
    conn = http.client.HTTPSConnection(xmetrics.host, xmetrics.port, context=ctx, timeout=10)
    for _ in range(50):
        conn.request("GET", BASE)
        res = conn.getresponse()
        assert res.status == 200
        res.read()
    conn.close()


def test_head_answers_headers_only_and_keeps_the_connection_in_step(xmetrics):
    import http.client
    import ssl
    ctx = ssl.create_default_context(cafile=xmetrics.ca_file)
    ctx.load_cert_chain(xmetrics.client_cert, xmetrics.client_key)
    conn = http.client.HTTPSConnection(xmetrics.host, xmetrics.port, context=ctx, timeout=10)
    conn.request("HEAD", "/healthz")
    head = conn.getresponse()
    assert head.status == 200
    assert int(head.getheader("Content-Length")) > 0
    assert head.read() == b""
    # A body after the HEAD answer would be read as the start of this response.
    conn.request("GET", "/livez")
    res = conn.getresponse()
    assert res.status == 200
    assert json.loads(res.read())["status"] == "Success"
    conn.close()


def test_status_gives_up_on_a_server_that_never_answers(request, tmp_path):
    import socket
    import subprocess
    import time
    binary = request.config.getoption("--xmetrics-binary")
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)
    port = silent.getsockname()[1]
    started = time.monotonic()
    res = subprocess.run([binary, "status", "--server", f"https://127.0.0.1:{port}"],
                         capture_output=True, text=True, timeout=60)
    silent.close()
    assert res.returncode == 1
    assert f"cannot reach https://127.0.0.1:{port}" in res.stderr, res.stderr
    assert time.monotonic() - started < 30
