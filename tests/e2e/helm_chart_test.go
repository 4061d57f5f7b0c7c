package e2e

// The Helm chart deploy/helm/xmetrics on a real control plane: `helm template` renders
// it (release "xm" in namespace "monitoring", CRD mode, 2 replicas with leader election),
// the test applies
// what it rendered as a cluster install would and runs xmetrics with the identity and
// the arguments the chart gives it:
//
//   - ServiceAccount, RBAC (ClusterRoles, bindings, the leader-election Role), the
//     DatadogMetric CRD and the PodDisruptionBudget are applied as rendered;
//   - the Deployment, Service and APIService are checked with a server-side dry run
//     (no kubelet, no image), then the Service and APIService are created patched for
//     loopback as the scenarios patch deploy/manifests (registerLoopback);
//   - xmetrics runs with a token of the chart's ServiceAccount and the Deployment's
//     args (less the four flags of the pod's network and files, which the launcher
//     sets for loopback), its serving certificate for <fullname>.<namespace>.svc.
//
// Then xmetrics must hold the leader Lease in the release namespace, an HPA reads a
// DogStatsD gauge through the chart's APIService and scales on it, and xmetrics
// creates the autogen DatadogMetric in the release namespace and writes its status:
// every permission that took comes from the chart's RBAC.
//
//	tests/e2e/run.sh -run TestHelm -v

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	apiregv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
)

// ChartDir is deploy/helm/xmetrics of the repository (from tests/e2e).
func ChartDir() string {
	p, _ := filepath.Abs(filepath.Join("..", "..", "deploy", "helm", "xmetrics"))
	return p
}

// renderedObject is one object of `helm template`'s output.
type renderedObject map[string]any

func (o renderedObject) kind() string { s, _ := o["kind"].(string); return s }

func (o renderedObject) name() string {
	md, _ := o["metadata"].(map[string]any)
	s, _ := md["name"].(string)
	return s
}

func (o renderedObject) String() string { return o.kind() + "/" + o.name() }

// into converts the object into a typed API object.
func (o renderedObject) into(t *testing.T, v any) {
	t.Helper()
	b, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", o, err)
	}
}

// helmTemplate runs `helm template <release> deploy/helm/xmetrics --namespace ns -f
// <values>` and returns the objects rendered.
func helmTemplate(t *testing.T, ctx context.Context, dir, release, ns, values string) []renderedObject {
	t.Helper()
	vf := filepath.Join(dir, "helm-values.yaml")
	if err := os.WriteFile(vf, []byte(values), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, HelmPath(), "template", release, ChartDir(), "--namespace", ns, "-f", vf)
	// Helm's cache and config stay in the cluster's dir, not the user's home.
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+filepath.Join(dir, "helm", "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(dir, "helm", "config"), "HELM_DATA_HOME="+filepath.Join(dir, "helm", "data"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("helm template (%s; run scripts/setup test or set HELM): %v\n%s", HelmPath(), err, stderr.String())
	}
	var objs []renderedObject
	dec := k8syaml.NewYAMLOrJSONDecoder(&stdout, 4096)
	for {
		var o renderedObject
		if err := dec.Decode(&o); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("helm template output: %v", err)
		}
		if len(o) > 0 {
			objs = append(objs, o)
		}
	}
	return objs
}

// kubectlObjects runs `kubectl <args> -f <file>` on the objects (a v1 List).
func kubectlObjects(t *testing.T, ctx context.Context, c *Cluster, objs []renderedObject, args ...string) string {
	t.Helper()
	b, err := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "List", "items": objs})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.CreateTemp(c.Dir, "helm-objects-*.json")
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	out, err := c.Kubectl(ctx, append(args, "-f", f.Name())...)
	if err != nil {
		t.Fatalf("kubectl %s of %v: %v\n%s", strings.Join(args, " "), objs, err, out)
	}
	return out
}

// chartServeArgs are the Deployment container's args after "serve", less the flags of
// the pod's network and files (--bind-address, --secure-port, --cert-dir,
// --dogstatsd-address), which the launcher sets for loopback.
func chartServeArgs(t *testing.T, c corev1.Container) []string {
	t.Helper()
	if len(c.Args) == 0 || c.Args[0] != "serve" {
		t.Fatalf("container %s args %q: want serve first", c.Name, c.Args)
	}
	var args []string
	for _, a := range c.Args[1:] {
		switch strings.SplitN(a, "=", 2)[0] {
		case "--bind-address", "--secure-port", "--cert-dir", "--dogstatsd-address":
			continue
		}
		args = append(args, a)
	}
	return args
}

// podEnv is the container's env as the kubelet would set it for a pod named podName on
// loopback (metadata.name and status.podIP from the downward API).
func podEnv(t *testing.T, ctr corev1.Container, podName string) []string {
	t.Helper()
	fields := map[string]string{"metadata.name": podName, "status.podIP": "127.0.0.1"}
	var env []string
	for _, e := range ctr.Env {
		switch {
		case e.ValueFrom == nil:
			env = append(env, e.Name+"="+e.Value)
		case e.ValueFrom.FieldRef != nil && fields[e.ValueFrom.FieldRef.FieldPath] != "":
			env = append(env, e.Name+"="+fields[e.ValueFrom.FieldRef.FieldPath])
		default:
			t.Fatalf("env %s from %+v: the embedded backend needs no Secret", e.Name, e.ValueFrom)
		}
	}
	return env
}

func TestHelmChartInstallServesAnHPA(t *testing.T) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c := StartCluster(t)

	const release, ns, fullname = "xm", "monitoring", "xm-xmetrics"
	objs := helmTemplate(t, ctx, c.Dir, release, ns, `
replicaCount: 2
useDatadogMetricCrd: true
refreshPeriod: 1s
rollup: 10
clusterName: xm-e2e
`)
	var applied, dryRun []renderedObject
	var dep appsv1.Deployment
	var svc corev1.Service
	var api apiregv1.APIService
	kinds := map[string]int{}
	for _, o := range objs {
		kinds[o.kind()]++
		switch o.kind() {
		case "Deployment":
			o.into(t, &dep)
			dryRun = append(dryRun, o)
		case "Service":
			o.into(t, &svc)
			dryRun = append(dryRun, o)
		case "APIService":
			o.into(t, &api)
			dryRun = append(dryRun, o)
		case "Secret":
			t.Fatalf("the chart rendered a Secret without being given keys: %s", o)
		default:
			applied = append(applied, o)
		}
	}
	for _, k := range []string{"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding",
		"CustomResourceDefinition", "PodDisruptionBudget", "Deployment", "Service", "APIService"} {
		if kinds[k] == 0 {
			t.Fatalf("helm template rendered no %s (rendered %v)", k, kinds)
		}
	}
	t.Logf("helm template %s: %d objects %v", release, len(objs), kinds)

	// Apply what a cluster install creates; the CRD first, as helm does.
	if err := c.EnsureNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	var crds, rest []renderedObject
	for _, o := range applied {
		if o.kind() == "CustomResourceDefinition" {
			crds = append(crds, o)
		} else {
			rest = append(rest, o)
		}
	}
	kubectlObjects(t, ctx, c, crds, "apply")
	if out, err := c.Kubectl(ctx, "wait", "--for=condition=Established", "--timeout=60s", "crd/"+DatadogMetricCRD); err != nil {
		t.Fatalf("CRD %s from the chart not Established: %v\n%s", DatadogMetricCRD, err, out)
	}
	t.Logf("applied:\n%s", kubectlObjects(t, ctx, c, rest, "apply"))
	kubectlObjects(t, ctx, c, dryRun, "apply", "--dry-run=server")

	// The chart's RBAC grants the service account what xmetrics will use, including the
	// leases of the coming leader election (not used by the binary yet).
	sa := "system:serviceaccount:" + ns + ":" + fullname
	for _, check := range [][]string{
		{"create", "leases.coordination.k8s.io", "-n", ns},
		{"update", "leases.coordination.k8s.io", "-n", ns},
		{"watch", "horizontalpodautoscalers.autoscaling", "--all-namespaces"},
		{"create", "datadogmetrics.datadoghq.com", "-n", ns},
		{"patch", "datadogmetrics.datadoghq.com", "--subresource=status", "-n", "default"},
		{"create", "tokenreviews.authentication.k8s.io"},
		{"get", "configmaps/extension-apiserver-authentication", "-n", "kube-system"},
		// servingCert.mode generated: its Secret, and the caBundle of its APIService.
		{"create", "secrets", "-n", ns},
		{"update", "secrets/" + fullname + "-serving-cert", "-n", ns},
		{"patch", "apiservices.apiregistration.k8s.io/v1beta1.external.metrics.k8s.io"},
	} {
		out, err := c.Kubectl(ctx, append([]string{"auth", "can-i", "--as", sa}, check...)...)
		if err != nil || strings.TrimSpace(out) != "yes" {
			t.Errorf("kubectl auth can-i --as %s %s: %q %v", sa, strings.Join(check, " "), out, err)
		}
	}
	for _, check := range [][]string{
		{"get", "secrets/other", "-n", ns},
		{"patch", "apiservices.apiregistration.k8s.io/v1beta1.custom.metrics.k8s.io"},
	} {
		if out, _ := c.Kubectl(ctx, append([]string{"auth", "can-i", "--as", sa}, check...)...); strings.TrimSpace(out) != "no" {
			t.Errorf("kubectl auth can-i --as %s %s: %q, want no (only its own Secret and APIService)", sa, strings.Join(check, " "), out)
		}
	}
	if out, _ := c.Kubectl(ctx, "auth", "can-i", "--as", sa, "create", "leases.coordination.k8s.io", "-n", "default"); strings.TrimSpace(out) != "no" {
		t.Errorf("leases: the service account may write them outside the release namespace: %q", out)
	}
	if t.Failed() {
		t.FailNow()
	}

	// xmetrics as the chart's Deployment runs it.
	if len(dep.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("Deployment %s: %d containers", dep.Name, len(dep.Spec.Template.Spec.Containers))
	}
	ctr := dep.Spec.Template.Spec.Containers[0]
	const podName = fullname + "-e2e"
	env := podEnv(t, ctr, podName)
	args := chartServeArgs(t, ctr)
	t.Logf("xmetrics serve args from the chart: %q", args)
	e := launchXmetricsEnv(t, ctx, c, ns, dep.Spec.Template.Spec.ServiceAccountName, XmetricsOptions{
		Args: args, Env: env, ServiceNamespace: svc.Namespace, ServiceName: svc.Name,
	})
	e.registerLoopback("the chart", &svc, &api)

	// Leader election (the chart's default): this replica holds the Lease in the release
	// namespace, through the chart's leases Role.
	var holder string
	if err := WaitFor(func() (bool, error) {
		l, err := c.Client.CoordinationV1().Leases(ns).Get(ctx, "xmetrics-leader", metav1.GetOptions{})
		if err != nil {
			return false, Retry(err)
		}
		if l.Spec.HolderIdentity != nil {
			holder = *l.Spec.HolderIdentity
		}
		return strings.HasPrefix(holder, podName+"_"), nil
	}, 30*time.Second); err != nil {
		t.Fatalf("Lease %s/xmetrics-leader: holder %q, want %s_…: %v", ns, holder, podName, err)
	}
	t.Logf("Lease %s/xmetrics-leader held by %s", ns, holder)

	// An HPA reads a DogStatsD gauge through the chart's APIService: 30 against a target
	// of 10 from 1 ready pod = 3 replicas.
	const appNS, app, metric = "helm-app", "worker", "helm_queue_depth"
	labels := map[string]string{"queue": "helm"}
	e.startDeployment(appNS, app, 1)
	startGauge(t, e.x, metric, "queue:helm", 30, time.Second)
	e.createHPA(appNS, externalHPA(app, app, metric, labels, autoscalingv2.ValueMetricType, "10", 1, 5))
	e.waitHPA(appNS, app, "HPA ScalingActive=True, value 30, desired 3", 90*time.Second, func(h *autoscalingv2.HorizontalPodAutoscaler) bool {
		m, ok := currentExternal(h)
		return isTrue(h, autoscalingv2.ScalingActive) && ok && m == 30000 && h.Status.DesiredReplicas == 3
	})
	e.waitDeployment(appNS, app, "scaled to 3 by the HPA", 30*time.Second, func(spec, ready int32) bool {
		return spec == 3 && ready == 3
	})

	// CRD mode from the chart: the autogen object in the release namespace (--namespace),
	// its status written (the chart's datadogmetrics and datadogmetrics/status rules).
	dyn, err := dynamic.NewForConfig(c.RESTConfig)
	if err != nil {
		t.Fatal(err)
	}
	d := &dmEnv{xmEnv: e, dyn: dyn}
	query := inlineQuery(metric, labels)
	d.waitDatadogMetric(ns, autogenName(query), fmt.Sprintf("autogen DatadogMetric for %q in %s, Valid with value 30", query, ns), 30*time.Second,
		func(m *datadogMetric) bool {
			return m != nil && m.Spec.Query == query && m.condition("Valid") == "True" && m.valueIs(30)
		})
	recordTiming("helm chart %s", time.Since(start).Round(100*time.Millisecond))
}
