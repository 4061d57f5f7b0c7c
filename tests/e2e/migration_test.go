package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/dynamic"
)

// The datadog chart's rendered Cluster Agent objects (tests/integration/fixtures/datadog-chart).
func datadogChartExtract(t *testing.T, mode string) string {
	p, err := filepath.Abs(filepath.Join("..", "integration", "fixtures", "datadog-chart", "extract-"+mode+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCutoverFromTheClusterAgent starts from what the datadog chart (CRD mode) leaves: its
// APIService (insecureSkipTLSVerify, pointing at the Cluster Agent's metrics-api Service, Helm
// labels and annotations of release datadog-agent), its RBAC, Deployment and ConfigMaps, the
// DatadogMetric CRD with the datadog-crds chart's labels, a manual DatadogMetric, and HPAs in
// inline and datadogmetric@ form — served by a provider in the Cluster Agent's place, with
// autogen objects in the Cluster Agent's namespace. (The Cluster Agent itself cannot run
// here: a second xmetrics with the Cluster Agent's namespace and Service stands in for it,
// and both read the same fake Datadog API, as both would read Datadog.)
//
// Then xmetrics starts with --take-over-apiservice: one patch points the APIService at it with
// verified TLS; the stand-in stops. No HPA's ScalingActive may be False for longer than one HPA
// sync period; the Cluster Agent's autogen object is taken over (status written by xmetrics,
// no duplicate in xmetrics' namespace); doctor's migration section names what is left.
func TestCutoverFromTheClusterAgent(t *testing.T) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	c := clusterAgentLeftovers(t, ctx, true)
	kubectl := func(args ...string) {
		t.Helper()
		if out, err := c.Kubectl(ctx, args...); err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	dd := startFakeDatadog(t, fakeDatadogConfig{Values: map[string]any{"xm.cut.requests": 60, "xm.cut.queue": 30}})
	datadogArgs := []string{"--datadog-endpoint", dd.URL, "--datadog-endpoint-backoff", "1s",
		"--datadog-timeout", "2s", "--refresh-period", "1s", "--use-datadogmetric-crd=true", "--cluster-name=prod-eu"}
	keys := []string{"DD_API_KEY=" + dd.APIKey, "DD_APP_KEY=" + dd.AppKey}

	// The provider in the Cluster Agent's place: its namespace (autogen objects go there), its
	// Service, reached by the APIService as it is (insecureSkipTLSVerify).
	const ddSvc = "datadog-agent-cluster-agent-metrics-api"
	standIn := launchXmetricsEnv(t, ctx, c, XmetricsNamespace, "xmetrics", XmetricsOptions{
		Args: append([]string{"--namespace=datadog"}, datadogArgs...), Env: keys,
		ServiceNamespace: "datadog", ServiceName: ddSvc,
	})
	loopbackService(t, ctx, c, "datadog", ddSvc, "metricsapi", standIn.x.Port)
	kubectl("patch", "apiservice/"+externalAPIService, "--type=merge",
		"-p", fmt.Sprintf(`{"spec":{"service":{"port":%d}}}`, standIn.x.Port))
	if _, err := c.WaitAPIServiceAvailable(ctx, externalAPIService, 60*time.Second); err != nil {
		t.Fatal(err)
	}

	const ns = "shop"
	standIn.startDeployment(ns, "web", 2)
	standIn.startDeployment(ns, "worker", 1)
	dyn, err := dynamic.NewForConfig(c.RESTConfig)
	if err != nil {
		t.Fatal(err)
	}
	dm := &dmEnv{xmEnv: standIn, dyn: dyn}
	dm.applyDatadogMetric(ns, "queue-depth", "avg:xm.cut.queue{queue:jobs}.rollup(30)")
	standIn.createHPA(ns, externalHPA("web", "web", "xm.cut.requests", map[string]string{"app": "web"}, autoscalingv2.AverageValueMetricType, "30", 1, 4))
	standIn.createHPA(ns, externalHPA("worker", "worker", "datadogmetric@shop:queue-depth", nil, autoscalingv2.ValueMetricType, "40", 1, 3))
	for _, name := range []string{"web", "worker"} {
		standIn.waitHPA(ns, name, "ScalingActive=True through the Cluster Agent's place", 90*time.Second, func(h *autoscalingv2.HorizontalPodAutoscaler) bool {
			_, ok := currentExternal(h)
			return isTrue(h, autoscalingv2.ScalingActive) && ok
		})
	}
	autogenQuery := "avg:xm.cut.requests{app:web}.rollup(30)"
	autogen := autogenName(autogenQuery)
	dm.waitDatadogMetric("datadog", autogen, "the Cluster Agent's autogen object, Valid", 60*time.Second, func(m *datadogMetric) bool {
		return m != nil && m.condition("Valid") == "True"
	})
	recWeb, recWorker := standIn.recordHPA(ns, "web"), standIn.recordHPA(ns, "worker")
	t.Logf("Cluster Agent state reached %s after start", time.Since(start).Round(time.Millisecond))

	// The cutover: xmetrics' own Service first, then xmetrics, which takes the APIService over.
	port, err := FreeTCPPort()
	if err != nil {
		t.Fatal(err)
	}
	loopbackService(t, ctx, c, XmetricsNamespace, XmetricsServiceName, "https", port)
	switchedAt := time.Now()
	xm := launchXmetricsEnv(t, ctx, c, XmetricsNamespace, "xmetrics", XmetricsOptions{
		// As the chart runs it (servingCert.mode generated): the serving-cert Secret, so the
		// take-over waits until the server listens, after the Secret's bootstrap.
		Args: append([]string{"--secure-port=" + itoa(port), "--namespace=" + XmetricsNamespace,
			"--serving-cert-secret=" + servingCertSecret,
			"--take-over-apiservice=" + externalAPIService, "--service-port=" + itoa(port)}, datadogArgs...),
		Env: keys,
	})
	mustWait(t, "the APIService points at xmetrics with its caBundle and no insecureSkipTLSVerify", 30*time.Second, func() (bool, error) {
		api, err := c.Aggregator.ApiregistrationV1().APIServices().Get(ctx, externalAPIService, metav1.GetOptions{})
		if err != nil {
			return false, Retry(err)
		}
		s := api.Spec.Service
		return s != nil && s.Namespace == XmetricsNamespace && s.Name == XmetricsServiceName && s.Port != nil &&
			int(*s.Port) == port && !api.Spec.InsecureSkipTLSVerify && string(api.Spec.CABundle) == string(xm.x.CABundle), nil
	})
	if _, err := c.WaitAPIServiceAvailable(ctx, externalAPIService, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("APIService taken over and Available %s after xmetrics started", time.Since(switchedAt).Round(time.Millisecond))
	// Taken over only once xmetrics was ready (first refresh done): not the moment it listened.
	logs := xm.x.Logs()
	ready, taken := strings.Index(logs, "event=take_over_ready"), strings.Index(logs, "event=apiservice_taken_over")
	if ready < 0 || taken < 0 || taken < ready {
		t.Errorf("xmetrics should log event=take_over_ready, then event=apiservice_taken_over (at %d, %d)", ready, taken)
	}
	// The Cluster Agent's provider stops.
	standIn.x.Stop()
	stoppedAt := time.Now()
	// The autogen object: the Cluster Agent's serves xmetrics' inline metric and xmetrics writes
	// its status; none is duplicated in xmetrics' namespace.
	mustWait(t, "xmetrics serves xm.cut.requests from datadog/"+autogen+" and writes DatadogMetric status", 30*time.Second, func() (bool, error) {
		code, body, err := xm.get(xm.admin, "/xmetrics/v1/status", nil)
		if err != nil || code != 200 {
			return false, nil
		}
		var st struct {
			Metrics []struct {
				MetricName    string `json:"metricName"`
				DatadogMetric string `json:"datadogMetric"`
				Valid         bool   `json:"valid"`
			} `json:"metrics"`
			Kubernetes struct {
				Controller struct {
					StatusWrites int64 `json:"statusWrites"`
				} `json:"datadogMetricController"`
			} `json:"kubernetes"`
		}
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			return false, err
		}
		for _, m := range st.Metrics {
			if m.MetricName == "xm.cut.requests" {
				return m.DatadogMetric == "datadog/"+autogen && m.Valid && st.Kubernetes.Controller.StatusWrites > 0, nil
			}
		}
		return false, nil
	})
	t.Logf("the Cluster Agent stopped %s ago", time.Since(stoppedAt).Round(time.Millisecond))
	if own, err := dm.listDatadogMetrics(XmetricsNamespace); err != nil || len(own) != 0 {
		t.Errorf("xmetrics created its own autogen objects instead of taking over the Cluster Agent's: %v %v", own, err)
	}
	time.Sleep(8 * time.Second) // several HPA syncs served by xmetrics alone
	for name, rec := range map[string]*hpaRecorder{"web": recWeb, "worker": recWorker} {
		longest := longestInactive(rec, switchedAt)
		t.Logf("HPA %s: longest ScalingActive!=True during the cutover %s; history:\n  %s", name, longest, rec.history(switchedAt.Add(-time.Second)))
		if longest > dmHPASync {
			t.Errorf("HPA %s had ScalingActive not True for %s, more than one HPA sync period (%s)", name, longest, dmHPASync)
		}
	}
	for _, name := range []string{"web", "worker"} {
		xm.waitHPA(ns, name, "ScalingActive=True through xmetrics", 30*time.Second, func(h *autoscalingv2.HorizontalPodAutoscaler) bool {
			_, ok := currentExternal(h)
			return isTrue(h, autoscalingv2.ScalingActive) && ok
		})
	}

	// What is left of the Cluster Agent's install, as doctor names it.
	r := xm.doctor()
	expectCheck(t, r, "migration-apiservice", "", "WARN", "apiservice-owned-by-cluster-agent", "helm.sh/resource-policy=keep")
	expectCheck(t, r, "migration-cluster-agent", "", "WARN", "cluster-agent-still-serving", "clusterAgent.metricsProvider.enabled=false")
	expectCheck(t, r, "migration-crd", "", "WARN", "crd-deleted-with-its-release", "helm.sh/resource-policy=keep")
	kubectl("annotate", "--overwrite", "crd/"+DatadogMetricCRD, "helm.sh/resource-policy=keep")
	kubectl("scale", "-n", "datadog", "deployment/datadog-agent-cluster-agent", "--replicas=0")
	r = xm.doctor()
	expectCheck(t, r, "migration-crd", "", "OK", "")
	expectCheck(t, r, "migration-cluster-agent", "", "OK", "")
	recordTiming("cutover from the Cluster Agent: %s", time.Since(start).Round(100*time.Millisecond))
}

// clusterAgentLeftovers starts a cluster holding what the datadog chart (CRD mode, release
// datadog-agent in namespace datadog) leaves: its APIService, RBAC, Deployment, ConfigMaps and
// Service as rendered, and the DatadogMetric CRD labelled and annotated as the datadog-crds
// subchart's (the extract keeps only its metadata: the schema is xmetrics' copy of Datadog's).
// With manifests, xmetrics' namespace and RBAC (deploy/manifests) are applied too (a Helm
// install brings its own).
func clusterAgentLeftovers(t *testing.T, ctx context.Context, manifests bool) *Cluster {
	t.Helper()
	c := StartCluster(t)
	dir := ManifestsDir()
	for _, f := range []string{"00-namespace.yaml", "10-rbac.yaml"} {
		if !manifests {
			break
		}
		if out, err := c.Kubectl(ctx, "apply", "-f", filepath.Join(dir, f)); err != nil {
			t.Fatalf("apply %s: %v\n%s", f, err, out)
		}
	}
	// The datadog chart's CRD: the extract keeps its metadata only, so the schema is xmetrics'
	// copy of Datadog's, relabelled as the datadog-crds chart labels it (no resource-policy keep).
	kubectl := func(args ...string) {
		t.Helper()
		if out, err := c.Kubectl(ctx, args...); err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	kubectl("apply", "-f", filepath.Join(dir, "05-datadogmetric-crd.yaml"))
	kubectl("label", "--overwrite", "crd/"+DatadogMetricCRD, "helm.sh/chart=datadog-crds-2.23.0",
		"app.kubernetes.io/managed-by=Helm", "app.kubernetes.io/name=datadog-crds", "app.kubernetes.io/instance=datadog-agent")
	kubectl("annotate", "--overwrite", "crd/"+DatadogMetricCRD, "meta.helm.sh/release-name=datadog-agent",
		"meta.helm.sh/release-namespace=datadog", "helm.sh/resource-policy-")
	kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/"+DatadogMetricCRD)

	// Everything else of the extract as rendered, in namespace datadog.
	if err := c.EnsureNamespace(ctx, "datadog"); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(datadogChartExtract(t, "crd"))
	if err != nil {
		t.Fatal(err)
	}
	var docs []string
	for _, d := range strings.Split(string(raw), "\n---\n") {
		if !strings.Contains(d, "kind: CustomResourceDefinition") {
			docs = append(docs, d)
		}
	}
	extract := filepath.Join(c.Dir, "datadog-extract.yaml")
	if err := os.WriteFile(extract, []byte(strings.Join(docs, "\n---\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	kubectl("apply", "-f", extract)
	kubectl("annotate", "--overwrite", "apiservice/"+externalAPIService,
		"meta.helm.sh/release-name=datadog-agent", "meta.helm.sh/release-namespace=datadog")

	return c
}

// loopbackService (re)creates ns/name as an ExternalName Service for localhost:port, its one
// port named portName: the aggregator dials localhost:port (no kubelet here).
func loopbackService(t *testing.T, ctx context.Context, c *Cluster, ns, name, portName string, port int) {
	t.Helper()
	services := c.Client.CoreV1().Services(ns)
	_ = services.Delete(ctx, name, metav1.DeleteOptions{})
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeExternalName, ExternalName: "localhost",
			Ports: []corev1.ServicePort{{Name: portName, Port: int32(port), TargetPort: intstr.FromInt32(int32(port))}},
		},
	}
	mustWait(t, "service "+ns+"/"+name+" on localhost:"+itoa(port), 30*time.Second, func() (bool, error) {
		_, err := services.Create(ctx, svc, metav1.CreateOptions{})
		return err == nil, nil
	})
}

// longestInactive is the longest stretch since `since` in which the HPA's ScalingActive was
// recorded as anything but True.
func longestInactive(r *hpaRecorder, since time.Time) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	var longest time.Duration
	var from time.Time
	for _, s := range r.samples {
		if s.at.Before(since) && s.active == "True" {
			continue
		}
		if s.active != "True" && from.IsZero() {
			from = s.at
		} else if s.active == "True" && !from.IsZero() {
			longest = max(longest, s.at.Sub(from))
			from = time.Time{}
		}
	}
	if !from.IsZero() {
		longest = max(longest, time.Since(from))
	}
	return longest
}

// TestHelmInstallBesideTheClusterAgent installs the xmetrics chart with real helm, with the
// datadog chart's own values file (values-crd.yaml) and nothing else, onto a cluster holding what
// that chart left: the chart sees (Helm lookup) the datadog-crds CRD and neither renders nor
// adopts it; an APIService of another release makes the install fail with what to do, and
// apiService.takeOver installs beside it, leaving the APIService and the CRD as they were.
func TestHelmInstallBesideTheClusterAgent(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	c := clusterAgentLeftovers(t, ctx, false)
	values, err := filepath.Abs(filepath.Join("..", "integration", "fixtures", "datadog-chart", "values-crd.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	helm := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, HelmPath(), args...)
		home := filepath.Join(c.Dir, "helm")
		cmd.Env = append(os.Environ(), "KUBECONFIG="+c.AdminKubeconfig, "HELM_CACHE_HOME="+home+"/cache",
			"HELM_CONFIG_HOME="+home+"/config", "HELM_DATA_HOME="+home+"/data")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	crdBefore, err := c.Kubectl(ctx, "get", "crd", DatadogMetricCRD, "-o", "jsonpath={.metadata.labels}{.metadata.annotations}")
	if err != nil {
		t.Fatal(err)
	}

	out, err := helm("install", "xmetrics", ChartDir(), "--namespace", "datadog", "-f", values)
	if err == nil {
		t.Fatalf("helm install succeeded although the APIService belongs to release datadog-agent:\n%s", out)
	}
	if !strings.Contains(out, "apiService.takeOver") {
		t.Errorf("helm install failed without saying what to do about the APIService:\n%s", out)
	}
	t.Logf("refused as expected: %s", strings.TrimSpace(out))

	out, err = helm("install", "xmetrics", ChartDir(), "--namespace", "datadog", "-f", values,
		"--set", "apiService.takeOver=true")
	if err != nil {
		t.Fatalf("helm install with apiService.takeOver: %v\n%s", err, out)
	}
	t.Logf("helm install:\n%s", out)
	for _, want := range []string{"ignored: agents.enabled", "datadog.site"} {
		if !strings.Contains(out, want) {
			t.Errorf("install NOTES do not mention %q", want)
		}
	}
	manifest, err := helm("get", "manifest", "xmetrics", "--namespace", "datadog")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(manifest, "kind: CustomResourceDefinition") || strings.Contains(manifest, "kind: APIService") {
		t.Errorf("the release owns the CRD or the APIService it should have left alone:\n%s", manifest)
	}
	crdAfter, err := c.Kubectl(ctx, "get", "crd", DatadogMetricCRD, "-o", "jsonpath={.metadata.labels}{.metadata.annotations}")
	if err != nil || crdAfter != crdBefore {
		t.Errorf("the datadog-crds CRD changed: before %s, after %s (%v)", crdBefore, crdAfter, err)
	}
	api, err := c.Aggregator.ApiregistrationV1().APIServices().Get(ctx, externalAPIService, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if api.Annotations["meta.helm.sh/release-name"] != "datadog-agent" {
		t.Errorf("the APIService's Helm owner changed: %v", api.Annotations)
	}
	// The Deployment xmetrics runs as: the datadog keys, the take-over of that APIService.
	dep, err := c.Client.AppsV1().Deployments("datadog").Get(ctx, "xmetrics", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	args := strings.Join(dep.Spec.Template.Spec.Containers[0].Args, " ")
	for _, want := range []string{"--backend=datadog", "--take-over-apiservice=" + externalAPIService, "--use-datadogmetric-crd=true"} {
		if !strings.Contains(args, want) {
			t.Errorf("the chart's Deployment runs xmetrics without %s: %s", want, args)
		}
	}
	if out, err := helm("uninstall", "xmetrics", "--namespace", "datadog"); err != nil {
		t.Fatalf("helm uninstall: %v\n%s", err, out)
	}
	if _, err := c.Kubectl(ctx, "get", "crd", DatadogMetricCRD); err != nil {
		t.Errorf("uninstalling xmetrics removed the datadog-crds CRD: %v", err)
	}
	if _, err := c.Aggregator.ApiregistrationV1().APIServices().Get(ctx, externalAPIService, metav1.GetOptions{}); err != nil {
		t.Errorf("uninstalling xmetrics removed the Cluster Agent's APIService: %v", err)
	}
}
