package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestQueryCustomMetricsOfASecondAdapter: `xmetrics query --custom` is a client of any adapter's
// custom metrics API, not only of xmetrics. The second adapter is the test adapter of
// sigs.k8s.io/custom-metrics-apiserver v1.37.0 (bench/lib/peer_adapter), registered as
// v1beta2.custom.metrics.k8s.io and v1beta1.custom.metrics.k8s.io behind a real kube-apiserver
// (no xmetrics server anywhere). What query reads through the aggregator must be exactly what
// `kubectl get --raw` reads: a pods/* list by label selector (JSON and table), one named pod in
// v1beta1, deployment/NAME (deployments.apps), and the adapter's own 404 Status for a metric it
// does not have. (No namespace/NAME metric: the v1.37.0 test adapter stores a value written to
// /write-metrics/namespaces/NAME/metrics/M as namespaced and looks it up as root-scoped, so it
// answers 404 for every namespace metric, to kubectl as to query.)
func TestQueryCustomMetricsOfASecondAdapter(t *testing.T) {
	buildCtx, buildCancel := context.WithTimeout(context.Background(), 15*time.Minute)
	peerBin := buildPeerAdapter(t, buildCtx)
	buildCancel()

	started := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := StartCluster(t)
	peer := startPeerAdapter(t, ctx, c, peerBin, "custom-metrics", "peer-adapter")
	for _, version := range []string{"v1beta2", "v1beta1"} {
		reg := APIServiceRegistration{
			Group: "custom.metrics.k8s.io", Version: version,
			ServiceNamespace: peer.serviceNamespace, ServiceName: peer.serviceName,
			Port: peer.port, CABundle: peer.caPEM,
		}
		registered := time.Now()
		if err := c.RegisterAPIService(ctx, reg); err != nil {
			t.Fatal(err)
		}
		cond, err := c.WaitAPIServiceAvailable(ctx, reg.APIServiceName(), 30*time.Second)
		if err != nil {
			t.Fatalf("%v\npeer log: %s", err, logTail(peer.logPath, 3000))
		}
		t.Logf("APIService %s Available=%s (%s) %s after registration", reg.APIServiceName(), cond.Status, cond.Reason, time.Since(registered).Round(time.Millisecond))
	}

	// The test adapter lists the objects of a pods/* question through its dynamic client and
	// answers for those it has a value of: the pods must exist. db-1 has a value too, and the
	// label selector must leave it out.
	const ns = "xq"
	const metric = "requests-per-second"
	if err := c.EnsureNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	values := map[string]string{"web-1": "300m", "web-2": "1500m", "db-1": "7"}
	for _, name := range []string{"web-1", "web-2", "db-1"} {
		app := strings.SplitN(name, "-", 2)[0]
		createBarePod(t, ctx, c, ns, name, map[string]string{"app": app})
	}
	if n, err := c.MarkPodsReady(ctx, ns, "app=web"); err != nil || n != 2 {
		t.Fatalf("MarkPodsReady app=web: %d pods, %v", n, err)
	}
	for name, v := range values {
		peer.write(t, ctx, "/write-metrics/namespaces/"+ns+"/pods/"+name+"/"+metric, v)
	}

	xq := func(args ...string) (stdout, stderr string, code int) {
		qctx, qcancel := context.WithTimeout(ctx, 30*time.Second)
		defer qcancel()
		cmd := exec.CommandContext(qctx, XmetricsBinary(), append([]string{"query", "--kubeconfig", c.AdminKubeconfig, "-n", ns, "--timeout", "10"}, args...)...)
		cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "KUBECONFIG=")
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code = 0
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			code = exit.ExitCode()
		} else if err != nil {
			t.Fatalf("xmetrics query %v: %v", args, err)
		}
		t.Logf("xmetrics query %s → exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errb.String())
		return out.String(), errb.String(), code
	}

	// pods/* -l app=web in v1beta2 (query's default version for custom metrics).
	listPath := "/apis/custom.metrics.k8s.io/v1beta2/namespaces/" + ns + "/pods/*/" + metric + "?labelSelector=app%3Dweb"
	var raw customMetricList
	mustWait(t, "both web pods' values through kube-apiserver", 30*time.Second, func() (bool, error) {
		out, err := c.Kubectl(ctx, "get", "--raw", listPath)
		if err != nil {
			return false, Retry(err)
		}
		raw = customMetricList{}
		if err := json.Unmarshal([]byte(out), &raw); err != nil {
			return false, fmt.Errorf("%v: %s", err, out)
		}
		return len(raw.Items) == 2, nil
	})
	if raw.Kind != "MetricValueList" || raw.APIVersion != "custom.metrics.k8s.io/v1beta2" {
		t.Errorf("kubectl get --raw %s: kind %q apiVersion %q", listPath, raw.Kind, raw.APIVersion)
	}
	for _, it := range raw.sorted() {
		if it.DescribedObject.Kind != "Pod" || it.DescribedObject.Namespace != ns || values[it.DescribedObject.Name] != it.Value ||
			it.Metric == nil || it.Metric.Name != metric {
			t.Errorf("kubectl get --raw %s: unexpected item %+v", listPath, it)
		}
	}

	out, stderr, code := xq("--custom", "pods/*", "-l", "app=web", metric, "-o", "json")
	if code != 0 {
		t.Fatalf("xmetrics query pods/* -o json: exit %d: %s", code, stderr)
	}
	var got customMetricList
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("xmetrics query pods/* -o json is not a MetricValueList: %v\n%s", err, out)
	}
	if got.Kind != raw.Kind || got.APIVersion != raw.APIVersion {
		t.Errorf("query -o json: kind %q apiVersion %q, kubectl: %q %q", got.Kind, got.APIVersion, raw.Kind, raw.APIVersion)
	}
	if g, r := got.sorted(), raw.sorted(); !reflect.DeepEqual(g, r) {
		t.Errorf("query -o json items differ from kubectl get --raw:\nquery:   %s\nkubectl: %s", jsonText(g), jsonText(r))
	}

	out, stderr, code = xq("--custom", "pods/*", "-l", "app=web", metric)
	if code != 0 {
		t.Fatalf("xmetrics query pods/* (table): exit %d: %s", code, stderr)
	}
	checkCustomTable(t, out, map[string]string{
		"Pod/" + ns + "/web-1": "300m (0.3)",
		"Pod/" + ns + "/web-2": "1500m (1.5)",
	}, metric)
	if strings.Contains(out, "db-1") {
		t.Errorf("table for -l app=web lists db-1:\n%s", out)
	}

	// One named pod in v1beta1: the old list shape (metricName, selector at the top of the item).
	onePath := "/apis/custom.metrics.k8s.io/v1beta1/namespaces/" + ns + "/pods/web-1/" + metric
	rawOne, err := c.Kubectl(ctx, "get", "--raw", onePath)
	if err != nil {
		t.Fatalf("kubectl get --raw %s: %v", onePath, err)
	}
	var rawV1 customMetricList
	if err := json.Unmarshal([]byte(rawOne), &rawV1); err != nil {
		t.Fatalf("kubectl get --raw %s: %v\n%s", onePath, err, rawOne)
	}
	if rawV1.APIVersion != "custom.metrics.k8s.io/v1beta1" || len(rawV1.Items) != 1 ||
		rawV1.Items[0].MetricName != metric || rawV1.Items[0].Value != "300m" || rawV1.Items[0].DescribedObject.Name != "web-1" {
		t.Errorf("kubectl get --raw %s: unexpected answer\n%s", onePath, rawOne)
	}
	out, stderr, code = xq("--custom", "pod/web-1", "--api-version", "v1beta1", metric, "-o", "json")
	if code != 0 {
		t.Fatalf("xmetrics query pod/web-1 --api-version v1beta1 -o json: exit %d: %s", code, stderr)
	}
	var gotV1 customMetricList
	if err := json.Unmarshal([]byte(out), &gotV1); err != nil {
		t.Fatalf("xmetrics query pod/web-1 v1beta1 -o json: %v\n%s", err, out)
	}
	if gotV1.Kind != rawV1.Kind || gotV1.APIVersion != rawV1.APIVersion || !reflect.DeepEqual(gotV1.sorted(), rawV1.sorted()) {
		t.Errorf("query v1beta1 differs from kubectl get --raw:\nquery:   %s\nkubectl: %s", out, rawOne)
	}
	out, stderr, code = xq("--custom", "pod/web-1", "--api-version", "v1beta1", metric)
	if code != 0 {
		t.Fatalf("xmetrics query pod/web-1 --api-version v1beta1 (table): exit %d: %s", code, stderr)
	}
	checkCustomTable(t, out, map[string]string{"Pod/" + ns + "/web-1": "300m (0.3)"}, metric)

	// deployment/NAME is deployments.apps in the API's path; the adapter answers for any name it
	// has a value of (no Deployment object needed for one named object).
	peer.write(t, ctx, "/write-metrics/namespaces/"+ns+"/deployments.apps/web/"+metric, "42")
	depPath := "/apis/custom.metrics.k8s.io/v1beta2/namespaces/" + ns + "/deployments.apps/web/" + metric
	rawDep, err := c.Kubectl(ctx, "get", "--raw", depPath)
	if err != nil {
		t.Fatalf("kubectl get --raw %s: %v", depPath, err)
	}
	out, stderr, code = xq("--custom", "deployment/web", metric, "-o", "json")
	var wantDep, gotDep customMetricList
	if err := json.Unmarshal([]byte(rawDep), &wantDep); err != nil || len(wantDep.Items) != 1 || wantDep.Items[0].DescribedObject.Kind != "Deployment" || wantDep.Items[0].Value != "42" {
		t.Fatalf("kubectl get --raw %s: %v\n%s", depPath, err, rawDep)
	}
	if err := json.Unmarshal([]byte(out), &gotDep); code != 0 || err != nil || !reflect.DeepEqual(gotDep, wantDep) {
		t.Errorf("query deployment/web: exit %d (%v) %s%s\nkubectl get --raw %s: %s", code, err, out, stderr, depPath, rawDep)
	}

	// A metric the adapter has no value of: its 404 Status, as kube-apiserver relays it.
	const missing = "never-written"
	missingPath := "/apis/custom.metrics.k8s.io/v1beta2/namespaces/" + ns + "/pods/web-1/" + missing
	// (The body as served: client-go's error would be its generic text for a 404.)
	rawStatus, rawErr := c.Client.CoreV1().RESTClient().Get().AbsPath(missingPath).DoRaw(ctx)
	var status metav1.Status
	if err := json.Unmarshal(rawStatus, &status); err != nil || !apierrors.IsNotFound(rawErr) ||
		status.Kind != "Status" || status.Code != http.StatusNotFound || status.Reason != metav1.StatusReasonNotFound || status.Message == "" {
		t.Fatalf("GET %s: want a 404 NotFound Status, got %v: %s", missingPath, rawErr, rawStatus)
	}
	_, stderr, code = xq("--custom", "pod/web-1", missing)
	want := missingPath + " answered 404 NotFound: " + status.Message
	if code != 1 || !strings.Contains(stderr, "error: ") || !strings.Contains(stderr, want) {
		t.Errorf("query of a metric the adapter does not have: exit %d, stderr %q; want exit 1 and %q", code, stderr, want)
	}
	t.Logf("after the build: %s", time.Since(started).Round(time.Millisecond))
}

// customMetricList is a custom.metrics.k8s.io MetricValueList in v1beta2 (metric.name,
// metric.selector) or v1beta1 (metricName, selector).
type customMetricList struct {
	Kind       string              `json:"kind"`
	APIVersion string              `json:"apiVersion"`
	Items      []customMetricValue `json:"items"`
}

type customMetricValue struct {
	DescribedObject struct {
		Kind       string `json:"kind"`
		Namespace  string `json:"namespace"`
		Name       string `json:"name"`
		APIVersion string `json:"apiVersion"`
	} `json:"describedObject"`
	Metric *struct {
		Name     string                `json:"name"`
		Selector *metav1.LabelSelector `json:"selector"`
	} `json:"metric"`
	MetricName    string                `json:"metricName"`
	Selector      *metav1.LabelSelector `json:"selector"`
	Timestamp     string                `json:"timestamp"`
	WindowSeconds *int64                `json:"windowSeconds"`
	Value         string                `json:"value"`
}

func (l customMetricList) sorted() []customMetricValue {
	items := append([]customMetricValue(nil), l.Items...)
	sort.Slice(items, func(i, j int) bool { return items[i].DescribedObject.Name < items[j].DescribedObject.Name })
	return items
}

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// checkCustomTable: query's custom-metrics table has its header and exactly one row per object
// in want, with the metric and the value shown as want says.
func checkCustomTable(t *testing.T, out string, want map[string]string, metric string) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if hdr := strings.Fields(lines[0]); !reflect.DeepEqual(hdr, []string{"OBJECT", "METRIC", "SELECTOR", "VALUE", "TIMESTAMP", "AGE", "WINDOW"}) {
		t.Errorf("table header %q", lines[0])
	}
	if len(lines)-1 != len(want) {
		t.Errorf("table has %d rows, want %d:\n%s", len(lines)-1, len(want), out)
	}
	for object, value := range want {
		found := 0
		for _, l := range lines[1:] {
			f := strings.Fields(l)
			if len(f) > 0 && f[0] == object {
				found++
				if len(f) < 2 || f[1] != metric || !strings.Contains(l, "  "+value+"  ") {
					t.Errorf("table row of %s: %q, want metric %s and value %q", object, l, metric, value)
				}
			}
		}
		if found != 1 {
			t.Errorf("table lists %s %d times, want once:\n%s", object, found, out)
		}
	}
}

// createBarePod creates a pod no kubelet will run (the namespace's default service account may
// not exist yet: the controller manager creates it, so a refusal for that is retried).
func createBarePod(t *testing.T, ctx context.Context, c *Cluster, ns, name string, labels map[string]string) {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "app", Image: "registry.invalid/xmetrics-e2e/never-pulled:1",
		}}},
	}
	mustWait(t, "pod "+ns+"/"+name, 30*time.Second, func() (bool, error) {
		_, err := c.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
		if err == nil || apierrors.IsAlreadyExists(err) {
			return true, nil
		}
		return false, Retry(err)
	})
}

// buildPeerAdapter builds bench/lib/peer_adapter (the custom-metrics-apiserver test adapter) into
// a temporary directory; Go's build cache makes a rebuild a relink.
func buildPeerAdapter(t *testing.T, ctx context.Context) string {
	t.Helper()
	src, err := filepath.Abs(filepath.Join("..", "..", "bench", "lib", "peer_adapter"))
	if err != nil {
		t.Fatal(err)
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(t.TempDir(), "peer-adapter")
	start := time.Now()
	cmd := exec.CommandContext(ctx, goTool, "build", "-o", bin, ".")
	cmd.Dir = src
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", src, err, out)
	}
	t.Logf("built the peer adapter in %s", time.Since(start).Round(time.Millisecond))
	return bin
}

// peerAdapter is the custom-metrics-apiserver test adapter running on loopback against a cluster.
type peerAdapter struct {
	port, writePort               int
	caPEM                         []byte
	serviceNamespace, serviceName string
	logPath                       string
	proc                          *process
}

var peerWriteAddress = regexp.MustCompile(`write-metrics listening on 127\.0\.0\.1:(\d+)`)

// startPeerAdapter runs the adapter as bench/peers does (delegated authentication and
// authorization, its lister, all through the admin kubeconfig) with a serving certificate for
// <service>.<namespace>.svc from its own CA, and waits for its /readyz and its write endpoint.
func startPeerAdapter(t *testing.T, ctx context.Context, c *Cluster, bin, serviceNamespace, serviceName string) *peerAdapter {
	t.Helper()
	dir := t.TempDir()
	ca, err := NewCertAuthority("peer-adapter-ca")
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err := ca.IssueFiles(dir, "serving", CertRequest{
		CommonName: serviceName + "." + serviceNamespace + ".svc",
		DNSNames:   []string{serviceName + "." + serviceNamespace + ".svc", "localhost"},
		IPs:        []net.IP{net.IPv4(127, 0, 0, 1)},
		Server:     true,
	})
	if err != nil {
		t.Fatal(err)
	}
	port, err := FreeTCPPort()
	if err != nil {
		t.Fatal(err)
	}
	p := &peerAdapter{port: port, caPEM: ca.CertPEM, serviceNamespace: serviceNamespace, serviceName: serviceName,
		logPath: filepath.Join(dir, "peer-adapter.log")}
	p.proc = &process{
		Name: "peer-adapter", Path: bin, LogPath: p.logPath,
		Args: []string{
			"--secure-port", strconv.Itoa(port), "--bind-address", "127.0.0.1",
			"--tls-cert-file", certFile, "--tls-private-key-file", keyFile,
			"--lister-kubeconfig", c.AdminKubeconfig,
			"--authentication-kubeconfig", c.AdminKubeconfig,
			"--authorization-kubeconfig", c.AdminKubeconfig,
			"--write-address", "127.0.0.1:0", "--v", "2",
		},
	}
	if err := p.proc.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.proc.stop(5 * time.Second)
		if t.Failed() {
			t.Logf("peer adapter log (%s):\n%s", p.logPath, logTail(p.logPath, 6000))
		}
	})

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca.CertPEM)
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"}}}
	defer hc.CloseIdleConnections()
	mustWait(t, "the peer adapter's /readyz and write endpoint", 60*time.Second, func() (bool, error) {
		if done, err := p.proc.exited(); done {
			return false, fmt.Errorf("the peer adapter exited (%v): %s", err, logTail(p.logPath, 2000))
		}
		if p.writePort == 0 {
			b, _ := os.ReadFile(p.logPath)
			if m := peerWriteAddress.FindSubmatch(b); m != nil {
				p.writePort, _ = strconv.Atoi(string(m[1]))
			}
		}
		resp, err := hc.Get(fmt.Sprintf("https://127.0.0.1:%d/readyz", port))
		if err != nil {
			return false, Retry(err)
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK && p.writePort != 0, nil
	})
	return p
}

// write sets a value through the adapter's POST /write-metrics/... endpoint (a JSON string of a
// resource.Quantity, as bench/peers sends).
func (p *peerAdapter) write(t *testing.T, ctx context.Context, path, quantity string) {
	t.Helper()
	body, _ := json.Marshal(quantity)
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(wctx, http.MethodPost, fmt.Sprintf("http://127.0.0.1:%d%s", p.writePort, path), bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s %s: %d %s", path, body, resp.StatusCode, msg)
	}
}
