"""The Helm chart deploy/helm/xmetrics: `helm lint`, and `helm template` with several value sets, each
rendering parsed and checked. deploy/manifests/ is the reference: with the defaults the chart must render
the same objects (names, RBAC rules, Deployment, Service, APIService), and in CRD mode the same CRD. The
Deployment's args and env are also given to the real binary, against the fake Datadog API, to show the
flags and DD_* variables the chart writes are the ones xmetrics reads.

helm is $HELM, else `helm` on PATH, else build/bin/helm (scripts/setup test builds it there).
"""
import base64
import glob
import json
import os
import shutil
import subprocess

import pytest
import yaml

from conftest import REPO
from test_external_metrics import metric_path  # noqa: E402  (one definition of the paths)

CHART = os.path.join(REPO, "deploy", "helm", "xmetrics")
MANIFESTS = os.path.join(REPO, "deploy", "manifests")
HELM = os.environ.get("HELM") or shutil.which("helm") or os.path.join(REPO, "build", "bin", "helm")

# The value sets linted and rendered below.
DATADOG_EXISTING_SECRET = {
    "backend": "datadog",
    "datadog": {"existingSecret": "datadog-keys", "site": "datadoghq.eu", "chunkSize": 20,
                "maxParallelQueries": 4, "timeout": "5s", "endpointBackoff": "1m"},
    "refreshPeriod": "15s", "rollup": 60, "aggregator": "max", "logLevel": "debug",
}
CRD_MODE = {"useDatadogMetricCrd": True, "clusterName": "prod-eu",
            "datadogMetric": {"autogenExpiry": "1h"}}
VALUE_SETS = {
    "defaults": {},
    "datadog-existing-secret": DATADOG_EXISTING_SECRET,
    "datadog-keys-as-files": {"backend": "datadog",
                              "datadog": {"existingSecret": "datadog-keys", "keysAsFiles": True}},
    "crd-mode": CRD_MODE,
    "replicas-3": {"replicaCount": 3},
    "config-file": {"config": {"inactive-after": "15m", "max-metrics": 20000}},
    "prometheus": {"backend": "prometheus",
                   "prometheus": {"url": "http://prometheus-server.monitoring:80",
                                  "aggregation": "avg",
                                  "bearerTokenSecret": {"name": "prom-token"},
                                  "caConfigMap": {"name": "prom-ca"}}},
}


@pytest.fixture(scope="module")
def helm_env(tmp_path_factory):
    if not os.path.exists(HELM) and not shutil.which(HELM):
        pytest.fail(f"helm not found ({HELM}): run scripts/setup test, or set HELM")
    home = tmp_path_factory.mktemp("helm-home")
    # Helm's own cache/config/data out of the user's home: the tests touch nothing there.
    return {**os.environ, "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"), "HELM_DATA_HOME": str(home / "data")}


@pytest.fixture
def helm(helm_env, tmp_path):
    """helm(*args, values=None) runs helm with the values written to a file (-f)."""
    counter = [0]

    def run(*args, values=None, check=True):
        cmd = [HELM, *args]
        if values is not None:
            counter[0] += 1
            path = tmp_path / f"values-{counter[0]}.yaml"
            path.write_text(yaml.safe_dump(values))
            cmd += ["-f", str(path)]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=helm_env)
        if check and res.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stderr}")
        return res
    return run


@pytest.fixture
def render(helm):
    """render(values, release, namespace) -> (objects, text) of `helm template`."""
    def run(values=None, release="xmetrics", namespace="xmetrics"):
        res = helm("template", release, CHART, "--namespace", namespace, values=values or {})
        objs = [d for d in yaml.safe_load_all(res.stdout) if d]
        return objs, res.stdout
    return run


def load_manifests():
    objs = []
    for path in sorted(glob.glob(os.path.join(MANIFESTS, "*.yaml"))):
        with open(path) as f:
            objs += [d for d in yaml.safe_load_all(f) if d]
    return objs


def key(obj):
    return obj["kind"], obj["metadata"]["name"], obj["metadata"].get("namespace")


def find(objs, kind, name=None):
    return [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]


def one(objs, kind, name=None):
    found = find(objs, kind, name)
    assert len(found) == 1, f"want one {kind} {name or ''}, got {[key(o) for o in found]}"
    return found[0]


def container(objs):
    dep = one(objs, "Deployment")
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    return c


def env_of(objs):
    return {e["name"]: e for e in container(objs).get("env", [])}


def rbac_of(objs):
    """(kind, name, namespace) -> rules of a role, or (roleRef, subjects) of a binding."""
    out = {}
    for o in objs:
        if o["kind"] in ("ClusterRole", "Role"):
            out[key(o)] = o["rules"]
        elif o["kind"] in ("ClusterRoleBinding", "RoleBinding"):
            out[key(o)] = (o["roleRef"], o["subjects"])
    return out


# What deploy/manifests/10-rbac.yaml grants for leader election; checked explicitly.
LEADER_ELECTION = {
    ("Role", "xmetrics:leader-election", "xmetrics"): [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
         "verbs": ["get", "create", "update"]}],
    ("RoleBinding", "xmetrics:leader-election", "xmetrics"): (
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "xmetrics:leader-election"},
        [{"kind": "ServiceAccount", "name": "xmetrics", "namespace": "xmetrics"}]),
}
DATADOGMETRICS_RBAC = {("ClusterRole", "xmetrics:datadogmetrics", None),
                       ("ClusterRoleBinding", "xmetrics:datadogmetrics", None)}


# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_helm_lint_passes(helm, name):
    res = helm("lint", "--strict", CHART, values=VALUE_SETS[name])
    assert "0 chart(s) failed" in res.stdout, res.stdout


def test_the_chart_crd_is_the_manifest_crd():
    """One source of truth: the chart's copy must be byte-identical to deploy/manifests."""
    with open(os.path.join(MANIFESTS, "05-datadogmetric-crd.yaml"), "rb") as f:
        manifest = f.read()
    with open(os.path.join(CHART, "files", "datadogmetric-crd.yaml"), "rb") as f:
        chart = f.read()
    assert chart == manifest, (
        "deploy/helm/xmetrics/files/datadogmetric-crd.yaml differs from "
        "deploy/manifests/05-datadogmetric-crd.yaml: cp deploy/manifests/05-datadogmetric-crd.yaml "
        "deploy/helm/xmetrics/files/datadogmetric-crd.yaml")


def test_defaults_render_the_plain_manifests(render):
    objs, _ = render()
    manifests = load_manifests()
    # Same objects, less the Namespace (helm's --create-namespace) and what only CRD mode installs,
    # plus a PodDisruptionBudget for the replicas.
    want = {key(o) for o in manifests
            if o["kind"] not in ("Namespace", "CustomResourceDefinition")} - DATADOGMETRICS_RBAC
    want |= {("PodDisruptionBudget", "xmetrics", "xmetrics")}
    assert {key(o) for o in objs} == want

    rbac = rbac_of(objs)
    assert rbac == {k: v for k, v in rbac_of(manifests).items() if k not in DATADOGMETRICS_RBAC}
    for k, v in LEADER_ELECTION.items():  # leases in the release namespace, for leader election
        assert rbac[k] == v, k

    dep, mdep = one(objs, "Deployment"), one(manifests, "Deployment")
    assert dep["spec"]["replicas"] == mdep["spec"]["replicas"] == 2
    pod, mpod = dep["spec"]["template"]["spec"], mdep["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == mpod["serviceAccountName"] == "xmetrics"
    assert pod["volumes"] == mpod["volumes"]
    c, (mc,) = container(objs), mpod["containers"]
    for field in ("name", "image", "env", "ports", "readinessProbe", "livenessProbe", "resources",
                  "volumeMounts"):
        assert c[field] == mc[field], field
    assert c["args"][: len(mc["args"])] == mc["args"]
    assert "--leader-election=true" in mc["args"]
    assert c["args"][len(mc["args"]):] == ["--namespace=xmetrics", "--backend=embedded"]
    # The selector picks exactly the pods of the Deployment.
    labels = dep["spec"]["template"]["metadata"]["labels"]
    assert dep["spec"]["selector"]["matchLabels"] == labels

    svc, msvc = one(objs, "Service"), one(manifests, "Service")
    assert svc["spec"]["ports"] == msvc["spec"]["ports"]
    assert svc["spec"]["selector"] == labels

    api, mapi = one(objs, "APIService"), one(manifests, "APIService")
    # Neither carries a caBundle: xmetrics injects it (--inject-ca-bundle), and an upgrade or a
    # re-apply leaves the injected one in place.
    assert "caBundle" not in mapi["spec"] and "insecureSkipTLSVerify" not in mapi["spec"]
    assert api["spec"] == mapi["spec"]

    for kind in ("Secret", "CustomResourceDefinition", "ConfigMap"):
        assert not find(objs, kind), kind


def test_everything_follows_the_release_name_and_namespace(render):
    objs, _ = render(release="adapter", namespace="monitoring")
    for o in objs:
        ns = o["metadata"].get("namespace")
        if o["kind"] == "RoleBinding" and o["metadata"]["name"].endswith(
                ":extension-apiserver-authentication-reader"):
            assert ns == "kube-system"
        elif o["kind"] in ("ClusterRole", "ClusterRoleBinding", "APIService"):
            assert ns is None, key(o)
        else:
            assert ns == "monitoring", key(o)
        if o["kind"] != "APIService":
            assert o["metadata"]["name"].startswith("adapter-xmetrics"), key(o)
        for s in o.get("subjects", []):
            if s["name"] != "horizontal-pod-autoscaler":
                assert s == {"kind": "ServiceAccount", "name": "adapter-xmetrics",
                             "namespace": "monitoring"}
    assert "--namespace=monitoring" in container(objs)["args"]
    api = one(objs, "APIService", "v1beta1.external.metrics.k8s.io")
    assert api["spec"]["service"] == {"name": "adapter-xmetrics", "namespace": "monitoring",
                                      "port": 443}
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "adapter-xmetrics"
    args = container(objs)["args"]
    assert "--serving-cert-secret=adapter-xmetrics-serving-cert" in args
    assert "--service-name=adapter-xmetrics" in args
    role = one(objs, "Role", "adapter-xmetrics:serving-cert")
    assert role["metadata"]["namespace"] == "monitoring"
    assert role["rules"][1]["resourceNames"] == ["adapter-xmetrics-serving-cert"]


def test_datadog_backend_with_an_existing_secret(render):
    objs, _ = render(DATADOG_EXISTING_SECRET)
    c = container(objs)
    args = c["args"]
    for a in ("--backend=datadog", "--refresh-period=15s", "--rollup=60", "--aggregator=max",
              "--log-level=debug", "--datadog-timeout=5s", "--datadog-endpoint-backoff=1m"):
        assert a in args, a
    assert not [a for a in args if "key" in a], args  # keys never as flags (they show in ps)
    env = env_of(objs)
    assert env["DD_API_KEY"] == {"name": "DD_API_KEY", "valueFrom": {
        "secretKeyRef": {"name": "datadog-keys", "key": "api-key"}}}
    assert env["DD_APP_KEY"] == {"name": "DD_APP_KEY", "valueFrom": {
        "secretKeyRef": {"name": "datadog-keys", "key": "app-key"}}}
    assert env["DD_SITE"]["value"] == "datadoghq.eu"
    assert env["DD_EXTERNAL_METRICS_PROVIDER_CHUNK_SIZE"]["value"] == "20"
    assert env["DD_EXTERNAL_METRICS_PROVIDER_MAX_PARALLEL_QUERIES"]["value"] == "4"
    # Only the Secret's name appears: no Secret object, no key material, no volume for keys.
    assert not find(objs, "Secret")
    assert not [key(o) for o in objs if "data" in o or "stringData" in o]
    assert "datadog-keys" not in json.dumps(one(objs, "Deployment")["spec"]["template"]["spec"]["volumes"])

    # Other key names in the existing Secret.
    objs, _ = render({**DATADOG_EXISTING_SECRET, "datadog": {
        "existingSecret": "dd", "apiKeySecretKey": "DD_API", "appKeySecretKey": "DD_APP"}})
    env = env_of(objs)
    assert env["DD_API_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "dd", "key": "DD_API"}
    assert env["DD_APP_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "dd", "key": "DD_APP"}


def test_datadog_keys_as_files_mount_the_secret(render):
    objs, _ = render(VALUE_SETS["datadog-keys-as-files"])
    c = container(objs)
    assert "--datadog-api-key-file=/var/run/xmetrics/datadog/api-key" in c["args"]
    assert "--datadog-app-key-file=/var/run/xmetrics/datadog/app-key" in c["args"]
    assert "DD_API_KEY" not in env_of(objs) and "DD_APP_KEY" not in env_of(objs)
    assert {"name": "datadog-keys", "mountPath": "/var/run/xmetrics/datadog",
            "readOnly": True} in c["volumeMounts"]
    vol = next(v for v in one(objs, "Deployment")["spec"]["template"]["spec"]["volumes"]
               if v["name"] == "datadog-keys")
    assert vol["secret"] == {"secretName": "datadog-keys", "items": [
        {"key": "api-key", "path": "api-key"}, {"key": "app-key", "path": "app-key"}]}
    assert not find(objs, "Secret")


def test_keys_given_as_values_go_only_into_the_secret_the_chart_creates(render):
    api_key, app_key = "0123456789abcdef-api-key-sentinel", "fedcba9876543210-app-key-sentinel"
    objs, _ = render({"backend": "datadog", "datadog": {"apiKey": api_key, "appKey": app_key}},
                     release="xm", namespace="monitoring")
    secret = one(objs, "Secret", "xm-xmetrics-datadog-keys")
    assert secret["metadata"]["namespace"] == "monitoring"
    assert base64.b64decode(secret["data"]["api-key"]).decode() == api_key
    assert base64.b64decode(secret["data"]["app-key"]).decode() == app_key
    for o in objs:
        if o is secret:
            continue
        text = yaml.safe_dump(o)
        for k in (api_key, app_key):
            assert k not in text and base64.b64encode(k.encode()).decode() not in text, key(o)
    env = env_of(objs)
    assert env["DD_API_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "xm-xmetrics-datadog-keys",
                                                              "key": "api-key"}
    assert env["DD_APP_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "xm-xmetrics-datadog-keys",
                                                              "key": "app-key"}


@pytest.mark.parametrize("values,message", [
    ({"backend": "datadog"}, "backend datadog needs its keys"),
    ({"backend": "datadog", "datadog": {"apiKey": "only-the-api-key-sentinel"}},
     "backend datadog needs its keys"),
    ({"backend": "datadog", "datadog": {"existingSecret": "dd", "apiKey": "both-sources-sentinel"}},
     "set either existingSecret or apiKey/appKey, not both"),
    ({"backend": "prometheus"}, "backend prometheus needs prometheus.url"),
    ({"backend": "graphite"}, "backend"),
    ({"useDatadogMetricCRD": True}, "useDatadogMetricCRD"),  # a typo is an error, not ignored
    ({"servingCert": {"mode": "secret"}, "apiService": {"caBundle": "Zm9v", "insecureSkipTLSVerify": True}},
     "caBundle and insecureSkipTLSVerify=true cannot both be set"),
    ({"apiService": {"caBundle": "Zm9v"}}, "apiService.caBundle is only for servingCert.mode secret"),
    ({"apiService": {"insecureSkipTLSVerify": True}}, "use mode secret for it"),
    ({"servingCert": {"mode": "self-signed"}}, "/servingCert/mode"),
    ({"servingCert": {"validity": "one year"}}, "/servingCert/validity"),
    ({"servingCert": {"mode": "cert-manager", "validity": "90m"}}, "whole hours"),
    ({"servingCert": {"injectCaBundle": False}}, "leaves the APIService without a caBundle"),
])
def test_invalid_values_fail_with_a_message_that_shows_no_key(helm, values, message):
    res = helm("template", "xmetrics", CHART, values=values, check=False)
    assert res.returncode != 0
    assert message in res.stderr, res.stderr
    assert "sentinel" not in res.stdout + res.stderr


def test_crd_mode_installs_the_manifest_crd_and_its_rbac(render):
    objs, _ = render(CRD_MODE)
    manifests = load_manifests()
    args = container(objs)["args"]
    assert "--use-datadogmetric-crd=true" in args
    assert "--autogen-expiry=1h" in args and "--cluster-name=prod-eu" in args
    assert not [a for a in args if a.startswith("--datadogmetric-autogen")]  # default true

    crd = one(objs, "CustomResourceDefinition", "datadogmetrics.datadoghq.com")
    mcrd = one(manifests, "CustomResourceDefinition")
    assert crd["apiVersion"] == mcrd["apiVersion"]
    assert crd["spec"] == mcrd["spec"]
    # Uninstalling the release must not delete the CRD (and with it every DatadogMetric).
    assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}

    # RBAC: exactly that of 10-rbac.yaml.
    assert rbac_of(objs) == rbac_of(manifests)

    # A cluster that has Datadog's CRD already: CRD mode without installing it.
    objs, _ = render({**CRD_MODE, "datadogMetric": {"installCRD": False, "autogen": False}})
    assert not find(objs, "CustomResourceDefinition")
    args = container(objs)["args"]
    assert "--use-datadogmetric-crd=true" in args and "--datadogmetric-autogen=false" in args
    assert find(objs, "ClusterRole", "xmetrics:datadogmetrics")


def test_replicas_3_get_a_pod_disruption_budget(render):
    objs, _ = render({"replicaCount": 3})
    dep = one(objs, "Deployment")
    assert dep["spec"]["replicas"] == 3
    pdb = one(objs, "PodDisruptionBudget", "xmetrics")
    assert pdb["apiVersion"] == "policy/v1"
    assert pdb["metadata"]["namespace"] == "xmetrics"
    assert pdb["spec"] == {"minAvailable": 1, "selector": dep["spec"]["selector"]}

    assert not find(render({"replicaCount": 3, "podDisruptionBudget": {"enabled": False}})[0],
                    "PodDisruptionBudget")
    assert not find(render({"replicaCount": 1})[0], "PodDisruptionBudget")
    assert find(render({"replicaCount": 1, "podDisruptionBudget": {"enabled": True}})[0],
                "PodDisruptionBudget")
    objs, _ = render({"replicaCount": 5, "podDisruptionBudget": {"maxUnavailable": 2}})
    assert one(objs, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 2
    assert "minAvailable" not in one(objs, "PodDisruptionBudget")["spec"]


def test_prometheus_backend(render):
    objs, _ = render(VALUE_SETS["prometheus"])
    c = container(objs)
    for a in ("--backend=prometheus", "--prometheus-url=http://prometheus-server.monitoring:80",
              "--prometheus-aggregation=avg",
              "--prometheus-bearer-token-file=/var/run/xmetrics/prometheus-token/token",
              "--prometheus-ca-file=/var/run/xmetrics/prometheus-ca/ca.crt"):
        assert a in c["args"], a
    assert not [e for e in c["env"] if e["name"].startswith("DD_")]
    vols = {v["name"]: v for v in one(objs, "Deployment")["spec"]["template"]["spec"]["volumes"]}
    assert vols["prometheus-token"]["secret"]["secretName"] == "prom-token"
    assert vols["prometheus-ca"]["configMap"]["name"] == "prom-ca"


def test_leader_election(render):
    objs, _ = render({"leaderElection": {"leaseName": "xm-lease", "leaseDuration": "20s",
                                         "renewDeadline": "12s", "retryPeriod": "3s"}})
    args = container(objs)["args"]
    for a in ("--leader-election=true", "--leader-lease-name=xm-lease", "--leader-lease-duration=20s",
              "--leader-renew-deadline=12s", "--leader-retry-period=3s"):
        assert a in args, a
    env = env_of(objs)
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["POD_IP"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}

    objs, _ = render({"replicaCount": 1, "leaderElection": {"enabled": False}})
    c = container(objs)
    assert not [a for a in c["args"] if a.startswith("--leader")]
    assert "env" not in c


def test_apiservice_options(render):
    secret = {"mode": "secret", "injectCaBundle": False}
    api = one(render({"servingCert": secret, "apiService": {"caBundle": "Q0EgUEVN"}})[0], "APIService")
    assert api["spec"]["caBundle"] == "Q0EgUEVN" and "insecureSkipTLSVerify" not in api["spec"]
    api = one(render({"servingCert": secret, "apiService": {"insecureSkipTLSVerify": True}})[0],
              "APIService")
    assert api["spec"]["insecureSkipTLSVerify"] is True and "caBundle" not in api["spec"]
    assert not find(render({"apiService": {"create": False}})[0], "APIService")


def test_generated_serving_cert_needs_no_step(render):
    """The default: xmetrics creates, shares, rotates and injects; an in-memory cert dir."""
    objs, _ = render({"servingCert": {"validity": "720h"}})
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    assert pod["volumes"][0] == {"name": "certs", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}}
    args = container(objs)["args"]
    for a in ("--serving-cert-secret=xmetrics-serving-cert", "--cert-validity=720h",
              "--inject-ca-bundle=v1beta1.external.metrics.k8s.io"):
        assert a in args, a
    injector = one(objs, "ClusterRole", "xmetrics:ca-bundle-injector")
    assert injector["rules"] == [{"apiGroups": ["apiregistration.k8s.io"], "resources": ["apiservices"],
                                  "resourceNames": ["v1beta1.external.metrics.k8s.io"],
                                  "verbs": ["get", "patch"]}]
    assert not find(objs, "Certificate")


def test_a_secret_of_yours_is_mounted_and_its_ca_injected(render):
    objs, _ = render({"servingCert": {"mode": "secret", "secretName": "mine"}})
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    assert pod["volumes"][0]["secret"] == {"secretName": "mine", "optional": False}
    args = container(objs)["args"]
    assert not [a for a in args if a.startswith(("--serving-cert-secret", "--cert-validity"))]
    assert "--inject-ca-bundle=v1beta1.external.metrics.k8s.io" in args
    assert not find(objs, "Role", "xmetrics:serving-cert")  # nothing to create or rotate
    objs, _ = render({"servingCert": {"mode": "secret", "injectCaBundle": False}})
    assert not [a for a in container(objs)["args"] if a.startswith("--inject-ca-bundle")]
    assert not find(objs, "ClusterRole", "xmetrics:ca-bundle-injector")


def test_cert_manager_issues_both_certificates_and_injects_the_ca(render):
    objs, _ = render({"servingCert": {"mode": "cert-manager", "validity": "2160h"}})
    api = one(objs, "APIService")
    assert api["metadata"]["annotations"]["cert-manager.io/inject-ca-from"] == "xmetrics/xmetrics-serving"
    assert "caBundle" not in api["spec"]
    certs = {c["metadata"]["name"]: c["spec"] for c in find(objs, "Certificate")}
    assert certs["xmetrics-ca"]["isCA"] is True and certs["xmetrics-ca"]["duration"] == "21600h"
    assert certs["xmetrics-ca"]["privateKey"]["rotationPolicy"] == "Never"
    serving = certs["xmetrics-serving"]
    assert serving["secretName"] == "xmetrics-serving-cert" and serving["duration"] == "2160h"
    assert "xmetrics.xmetrics.svc" in serving["dnsNames"]
    assert serving["issuerRef"] == {"name": "xmetrics-ca", "kind": "Issuer", "group": "cert-manager.io"}
    client = certs["xmetrics-client"]
    assert client["commonName"] == "xmetrics-admin" and client["subject"]["organizations"] == ["system:masters"]
    assert "client auth" in client["usages"]
    vol = one(objs, "Deployment")["spec"]["template"]["spec"]["volumes"][0]
    sources = {s["secret"]["name"]: s["secret"]["items"] for s in vol["projected"]["sources"]}
    assert [i["path"] for i in sources["xmetrics-serving-cert"]] == ["ca.crt", "tls.crt", "tls.key"]
    assert [i["path"] for i in sources["xmetrics-client-cert"]] == ["client-admin.crt", "client-admin.key"]
    args = container(objs)["args"]
    assert not [a for a in args if a.startswith(("--serving-cert-secret", "--inject-ca-bundle"))]
    # An issuer of yours instead of the chart's CA.
    objs, _ = render({"servingCert": {"mode": "cert-manager",
                                      "certManager": {"issuerRef": {"name": "corp", "kind": "ClusterIssuer"}}}})
    assert {c["metadata"]["name"] for c in find(objs, "Certificate")} == {"xmetrics-serving", "xmetrics-client"}
    assert not find(objs, "Issuer")


def test_config_becomes_a_config_file(render):
    objs, _ = render({"config": {"inactive-after": "15m", "max-metrics": 20000}})
    cm = one(objs, "ConfigMap", "xmetrics-config")
    assert yaml.safe_load(cm["data"]["xmetrics.yaml"]) == {"inactive-after": "15m", "max-metrics": 20000}
    c = container(objs)
    assert "--config=/etc/xmetrics/xmetrics.yaml" in c["args"]
    assert {"name": "config", "mountPath": "/etc/xmetrics", "readOnly": True} in c["volumeMounts"]
    pod = one(objs, "Deployment")["spec"]["template"]
    assert {"name": "config", "configMap": {"name": "xmetrics-config"}} in pod["spec"]["volumes"]
    # A changed config rolls the pods.
    checksum = pod["metadata"]["annotations"]["checksum/config"]
    objs, _ = render({"config": {"inactive-after": "20m", "max-metrics": 20000}})
    assert one(objs, "Deployment")["spec"]["template"]["metadata"]["annotations"]["checksum/config"] != checksum


def test_dogstatsd_off_and_extra_settings(render):
    objs, _ = render({"dogstatsd": {"enabled": False}, "extraArgs": ["--max-metrics=20000"],
                      "extraEnv": [{"name": "DD_CLUSTER_NAME", "value": "eu"}],
                      "servingCert": {"mode": "secret", "secretName": "my-cert"}})
    c = container(objs)
    assert "--dogstatsd-address=" in c["args"] and "--max-metrics=20000" in c["args"]
    assert [p["name"] for p in c["ports"]] == ["https"]
    assert [p["name"] for p in one(objs, "Service")["spec"]["ports"]] == ["https"]
    assert env_of(objs)["DD_CLUSTER_NAME"]["value"] == "eu"
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    assert pod["volumes"][0]["secret"]["secretName"] == "my-cert"


# ---------------------------------------------------------------------------------------------------
# The rendered args and env, given to the real binary


def chart_command(objs, files, keys):
    """The container's args and env as the binary would get them on loopback: the four flags of the
    pod's network and files dropped (the fixture sets its own), secretKeyRef env resolved from `keys`
    (secret key -> value) and fieldRef env from a made-up pod, as the kubelet would, the mounted key files and config file mapped into
    the directory `files` (the ConfigMap's xmetrics.yaml written there)."""
    c = container(objs)
    for cm in find(objs, "ConfigMap"):
        (files / "xmetrics.yaml").write_text(cm["data"]["xmetrics.yaml"])
    args = []
    for a in c["args"][1:]:  # "serve" is the fixture's
        if a.split("=")[0] in ("--bind-address", "--secure-port", "--cert-dir", "--dogstatsd-address"):
            continue
        a = a.replace("/var/run/xmetrics/datadog", str(files)).replace("/etc/xmetrics", str(files))
        args.append(a)
    fields = {"metadata.name": "xmetrics-helm-test-pod", "status.podIP": "127.0.0.1"}
    env = {}
    for e in c.get("env", []):
        if "secretKeyRef" in e.get("valueFrom", {}):
            env[e["name"]] = keys[e["valueFrom"]["secretKeyRef"]["key"]]
        elif "fieldRef" in e.get("valueFrom", {}):
            env[e["name"]] = fields[e["valueFrom"]["fieldRef"]["fieldPath"]]
        else:
            env[e["name"]] = e["value"]
    return args, env


@pytest.mark.parametrize("keys_as_files", [False, True])
def test_the_rendered_deployment_drives_the_binary(render, start_xmetrics, fake_datadog, tmp_path,
                                                   keys_as_files):
    dd = fake_datadog()
    dd.values["helm.chart.metric"] = 7
    objs, _ = render({"backend": "datadog", "aggregator": "max", "rollup": 60,
                      "useDatadogMetricCrd": True, "logFormat": "text",
                      "config": {"inactive-after": "15m", "max-metrics": 500},
                      "datadog": {"existingSecret": "datadog-keys", "endpoint": dd.url,
                                  "timeout": "2s", "endpointBackoff": "1s",
                                  "keysAsFiles": keys_as_files}})
    (tmp_path / "api-key").write_text(dd.api_key)
    (tmp_path / "app-key").write_text(dd.app_key)
    args, env = chart_command(objs, tmp_path, keys={"api-key": dd.api_key, "app-key": dd.app_key})
    assert f"--config={tmp_path}/xmetrics.yaml" in args
    assert ("DD_API_KEY" in env) != keys_as_files
    assert env["DD_EXTERNAL_METRICS_PROVIDER_ENDPOINT"] == dd.url
    xm = start_xmetrics(*args, env=env)
    res = xm.get_raw(metric_path("helm.chart.metric", "app=web"))
    assert json.loads(res.stdout)["items"][0]["value"] == "7"
    queries = [q for c in dd.query_calls() for q in c["queries"]]
    assert "max:helm.chart.metric{app:web}.rollup(60)" in queries, queries
    status = xm.status()
    assert status["backend"]["name"] == "datadog", status["backend"]


# ---------------------------------------------------------------------------------------------------
# Values files of the official datadog chart (tests/integration/fixtures/datadog-chart/README.md)

DATADOG_CHART = os.path.join(REPO, "tests", "integration", "fixtures", "datadog-chart")
DATADOG_CHART_VALUES = ["values-inline.yaml", "values-crd.yaml", "values-crd-ha.yaml"]


class FakeDiscovery:
    """The three discovery documents `helm install --dry-run=client` reads for its capabilities (it
    wants a reachable cluster even then), on 127.0.0.1; releases live in Helm's memory driver."""

    DOCS = {"/version": {"major": "1", "minor": "31", "gitVersion": "v1.31.0"},
            "/api": {"kind": "APIVersions", "versions": ["v1"]},
            "/api/v1": {"kind": "APIResourceList", "groupVersion": "v1", "resources": []},
            "/apis": {"kind": "APIGroupList", "apiVersion": "v1", "groups": []}}

    def __init__(self, workdir):
        import http.server
        import threading
        docs = self.DOCS

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = docs.get(self.path.split("?")[0])
                data = json.dumps(body).encode() if body is not None else b"{}"
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.kubeconfig = workdir / "kubeconfig"
        self.kubeconfig.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "fake", "users": [],
            "clusters": [{"name": "fake", "cluster": {
                "server": f"http://127.0.0.1:{self.server.server_address[1]}"}}],
            "contexts": [{"name": "fake", "context": {"cluster": "fake"}}]}))
        self.releases = workdir / "releases.yaml"
        self.releases.write_text("[]\n")

    def env(self):
        return {"KUBECONFIG": str(self.kubeconfig), "HELM_DRIVER": "memory",
                "HELM_MEMORY_DRIVER_DATA": str(self.releases)}


@pytest.fixture(scope="module")
def install_notes(helm_env, tmp_path_factory):
    """install_notes(*args) -> the NOTES `helm install --dry-run=client` prints (namespace datadog)."""
    fake = FakeDiscovery(tmp_path_factory.mktemp("fake-discovery"))

    def run(*args):
        cmd = [HELM, "install", "xmetrics", CHART, "--dry-run=client", "--namespace", "datadog", *args]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                             env={**helm_env, **fake.env()})
        assert res.returncode == 0, f"{' '.join(cmd)} failed:\n{res.stderr}"
        assert "\nNOTES:\n" in res.stdout, res.stdout
        return res.stdout.split("\nNOTES:\n", 1)[1]
    yield run
    fake.server.shutdown()


@pytest.mark.parametrize("values_file", DATADOG_CHART_VALUES)
def test_a_datadog_chart_values_file_installs_xmetrics(helm, install_notes, values_file):
    path = os.path.join(DATADOG_CHART, values_file)
    with open(path) as f:
        given = yaml.safe_load(f)
    crd_mode = given["clusterAgent"]["metricsProvider"]["useDatadogMetrics"]
    ha = values_file == "values-crd-ha.yaml"

    res = helm("lint", "--strict", CHART, "-f", path)
    assert "0 chart(s) failed" in res.stdout, res.stdout
    res = helm("template", "xmetrics", CHART, "--namespace", "datadog", "-f", path)
    objs = [d for d in yaml.safe_load_all(res.stdout) if d]

    c = container(objs)
    args = c["args"]
    assert "--backend=datadog" in args
    assert ("--use-datadogmetric-crd=true" in args) == crd_mode
    assert ("--cluster-name=prod-eu" in args) == ha
    assert not [a for a in args if a.startswith("--log-level")]  # datadog.logLevel not set
    env = env_of(objs)
    # The datadog chart's Secret and key names; the API key optional as there, the app key not.
    assert env["DD_API_KEY"]["valueFrom"] == {"secretKeyRef": {
        "name": "datadog-secret", "key": "api-key", "optional": True}}
    assert env["DD_APP_KEY"]["valueFrom"] == {"secretKeyRef": {"name": "datadog-secret", "key": "app-key"}}
    assert env["DD_SITE"] == {"name": "DD_SITE", "value": "datadoghq.eu"}
    assert not find(objs, "Secret")  # the keys stay in the datadog chart's Secret
    assert one(objs, "Deployment")["spec"]["replicas"] == 2  # crd-ha: clusterAgent.replicas; else the default
    if ha:
        # clusterAgent.env comes last, as the datadog chart puts it.
        assert c["env"][-1] == {"name": "DD_EXTERNAL_METRICS_PROVIDER_POLLING_INTERVAL", "value": "15"}
    else:
        assert "DD_EXTERNAL_METRICS_PROVIDER_POLLING_INTERVAL" not in env
    # CRD mode: the RBAC for DatadogMetric objects and (no cluster to look into) the CRD, kept.
    assert bool(find(objs, "ClusterRole", "xmetrics:datadogmetrics")) == crd_mode
    crds = find(objs, "CustomResourceDefinition", "datadogmetrics.datadoghq.com")
    assert bool(crds) == crd_mode
    for crd in crds:
        assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    api = one(objs, "APIService", "v1beta1.external.metrics.k8s.io")
    assert api["spec"]["service"] == {"name": "xmetrics", "namespace": "datadog", "port": 443}
    assert find(objs, "ClusterRoleBinding", "xmetrics:external-metrics-reader")

    notes = install_notes("-f", path)
    lines = [line.strip() for line in notes.splitlines()]
    assert "ignored: agents.enabled (the node Agent DaemonSet: xmetrics runs no node Agent)" in lines, notes
    assert "read: datadog.site → DD_SITE" in lines, notes
    for key in ("serviceAccounts.clusterAgent.create", "serviceAccounts.clusterAgent.name",
                "clusterAgent.enabled", "clusterAgent.metricsProvider.enabled=true"):
        assert [line for line in lines if line.startswith(f"ignored: {key} (")], (key, notes)
    assert [line for line in lines if line.startswith("read: datadog.apiKeyExistingSecret → ")], notes
    assert bool([line for line in lines if line.startswith("read: datadog.clusterName → ")]) == ha
    assert ("clusterAgent.env sets DD_EXTERNAL_METRICS_PROVIDER_POLLING_INTERVAL" in notes) == ha


def test_log_levels_in_any_case(render):
    objs, _ = render({"datadog": {"logLevel": "WARNING"}})
    assert "--log-level=warn" in container(objs)["args"]
    objs, _ = render({"datadog": {"logLevel": "INFO"}})
    assert "--log-level=info" in container(objs)["args"]
    # The chart's own logLevel, any case, wins over the datadog chart's.
    objs, _ = render({"logLevel": "INFO", "datadog": {"logLevel": "DEBUG"}})
    assert "--log-level=info" in container(objs)["args"]
    objs, _ = render({"logLevel": "Critical"})
    assert "--log-level=critical" in container(objs)["args"]


@pytest.mark.parametrize("values,message", [
    ({"datadog": {"logLevel": "LOUD"}}, "/datadog/logLevel"),  # the schema, before the template's check
    ({"logLevel": "LOUD"}, "/logLevel"),
    ({"datadog": {"apiKeyExistingSecret": "datadog-secret"}}, "backend datadog needs its keys"),
])
def test_invalid_datadog_chart_values_fail(helm, values, message):
    res = helm("template", "xmetrics", CHART, values=values, check=False)
    assert res.returncode != 0
    assert message in res.stderr, res.stderr


def test_datadog_chart_keys_beneath_the_chart_own(render):
    dd = {"datadog": {"apiKeyExistingSecret": "dd-api", "appKeyExistingSecret": "dd-app",
                      "secretBackend": {"command": "/readsecret.sh", "arguments": "/etc/keys"}},
          "clusterAgent": {"replicas": 3, "resources": {"requests": {"cpu": "1"}},
                           "nodeSelector": {"pool": "system"}, "podLabels": {"team": "dd"},
                           "podAnnotations": {"a": "dd"}, "priorityClassName": "critical",
                           "env": [{"name": "FOO", "value": "bar"}],
                           "metricsProvider": {"aggregator": "max", "endpoint": "https://dd.example",
                                               "service": {"port": 8443}, "registerAPIService": False,
                                               "createReaderRbac": False}}}
    objs, _ = render(dd)
    dep = one(objs, "Deployment")
    pod = dep["spec"]["template"]
    c = container(objs)
    assert dep["spec"]["replicas"] == 3
    assert c["resources"] == {"requests": {"cpu": "1"}}
    assert pod["spec"]["nodeSelector"] == {"pool": "system"}
    assert pod["spec"]["priorityClassName"] == "critical"
    assert pod["metadata"]["labels"]["team"] == "dd" and pod["metadata"]["annotations"] == {"a": "dd"}
    assert "--aggregator=max" in c["args"]
    env = env_of(objs)
    assert env["DD_API_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "dd-api", "key": "api-key",
                                                              "optional": True}
    assert env["DD_APP_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "dd-app", "key": "app-key"}
    assert env["DD_EXTERNAL_METRICS_PROVIDER_ENDPOINT"]["value"] == "https://dd.example"
    assert env["DD_SECRET_BACKEND_COMMAND"]["value"] == "/readsecret.sh"
    assert env["DD_SECRET_BACKEND_ARGUMENTS"]["value"] == "/etc/keys"
    assert c["env"][-1] == {"name": "FOO", "value": "bar"}
    assert one(objs, "Service")["spec"]["ports"][0]["port"] == 8443
    assert not find(objs, "APIService")  # registerAPIService=false
    assert not find(objs, "ClusterRoleBinding", "xmetrics:external-metrics-reader")  # createReaderRbac=false

    # The chart's own keys win where both are set.
    objs, _ = render({**dd, "replicaCount": 5, "resources": {}, "aggregator": "min",
                      "nodeSelector": {"pool": "mine"}, "podAnnotations": {"a": "mine"},
                      "service": {"port": 443}})
    dep = one(objs, "Deployment")
    c = container(objs)
    assert dep["spec"]["replicas"] == 5 and "resources" not in c
    assert "--aggregator=min" in c["args"] and "--aggregator=max" not in c["args"]
    assert dep["spec"]["template"]["spec"]["nodeSelector"] == {"pool": "mine"}
    assert dep["spec"]["template"]["metadata"]["annotations"] == {"a": "mine"}
    assert one(objs, "Service")["spec"]["ports"][0]["port"] == 443

    # Keys as files from the datadog chart's two Secrets: one projected volume.
    objs, _ = render({**dd, "datadog": {**dd["datadog"], "keysAsFiles": True}})
    vol = next(v for v in one(objs, "Deployment")["spec"]["template"]["spec"]["volumes"]
               if v["name"] == "datadog-keys")
    assert vol["projected"]["sources"] == [
        {"secret": {"name": "dd-api", "items": [{"key": "api-key", "path": "api-key"}]}},
        {"secret": {"name": "dd-app", "items": [{"key": "app-key", "path": "app-key"}]}}]


def test_backend_follows_the_configured_keys(render):
    assert "--backend=embedded" in container(render({})[0])["args"]
    objs, _ = render({"datadog": {"existingSecret": "dd"}})
    assert "--backend=datadog" in container(objs)["args"]
    # An explicit backend wins: the keys are then not used.
    objs, _ = render({"backend": "embedded", "datadog": {"apiKeyExistingSecret": "a",
                                                         "appKeyExistingSecret": "b"}})
    assert "--backend=embedded" in container(objs)["args"]
    assert "DD_API_KEY" not in env_of(objs)
    # datadog.apiKey/appKey: the keys given as values go into the chart's Secret; the datadog chart's
    # appKeyExistingSecret supplies the other one.
    objs, _ = render({"datadog": {"apiKey": "api-key-sentinel", "appKeyExistingSecret": "dd-app"}})
    secret = one(objs, "Secret", "xmetrics-datadog-keys")
    assert set(secret["data"]) == {"api-key"}
    env = env_of(objs)
    assert env["DD_API_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "xmetrics-datadog-keys", "key": "api-key"}
    assert env["DD_APP_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "dd-app", "key": "app-key"}


def test_apiservice_take_over(render):
    objs, _ = render({"apiService": {"takeOver": True}})
    assert not find(objs, "APIService")
    args = container(objs)["args"]
    assert "--take-over-apiservice=v1beta1.external.metrics.k8s.io" in args
    assert "--inject-ca-bundle=v1beta1.external.metrics.k8s.io" in args
    assert find(objs, "ClusterRole", "xmetrics:ca-bundle-injector")
    assert not [a for a in container(render({})[0])["args"] if a.startswith("--take-over")]


def test_metrics_provider_off_is_a_note_not_an_error(render, install_notes, tmp_path):
    values = {"datadog": {"apiKeyExistingSecret": "s", "appKeyExistingSecret": "s"},
              "clusterAgent": {"metricsProvider": {"enabled": False}}}
    objs, _ = render(values)
    assert "--backend=datadog" in container(objs)["args"]
    path = tmp_path / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    notes = install_notes("-f", str(path))
    assert "ignored: clusterAgent.metricsProvider.enabled=false (" in notes, notes
    # Without any datadog-chart key, NOTES has no such section.
    assert "Keys of the datadog chart" not in install_notes()
