package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestKubectlPlugin: the binary installed as kubectl-xmetrics is found by a real kubectl, and
// `kubectl xmetrics status|query|flare|doctor` use the current context as kubectl does
// ($KUBECONFIG, no flag naming it). query reads through kube-apiserver's aggregator exactly what
// `kubectl get --raw` reads; status and flare find xmetrics where its APIService points.
func TestKubectlPlugin(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	e := startXmetricsEnv(t, ctx, "--refresh-period=1s")
	startGauge(t, e.x, "xm.plugin.depth", "queue:emails", 1.5, time.Second)

	plugins := t.TempDir()
	if err := os.Symlink(XmetricsBinary(), filepath.Join(plugins, "kubectl-xmetrics")); err != nil {
		t.Fatal(err)
	}
	home := t.TempDir() // no ~/.kube/config: the context comes from $KUBECONFIG alone
	env := append(os.Environ(), "KUBECONFIG="+e.c.AdminKubeconfig, "HOME="+home,
		"PATH="+plugins+string(os.PathListSeparator)+filepath.Dir(KubectlPath())+string(os.PathListSeparator)+os.Getenv("PATH"))
	kubectl := func(args ...string) (string, string, error) {
		cctx, ccancel := context.WithTimeout(ctx, 60*time.Second)
		defer ccancel()
		cmd := exec.CommandContext(cctx, KubectlPath(), args...)
		cmd.Env, cmd.Dir = env, home
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		return stdout.String(), stderr.String(), err
	}

	// query through kube-apiserver: the same items as kubectl get --raw, once the value is there.
	var raw *externalMetricList
	mustWait(t, "the metric through kube-apiserver", 30*time.Second, func() (bool, error) {
		l, err := e.readMetric("default", "xm.plugin.depth", "queue=emails")
		raw = l
		return err == nil && len(l.Items) == 1, nil
	})
	out, stderr, err := kubectl("xmetrics", "query", "xm.plugin.depth", "-l", "queue=emails", "-o", "json")
	if err != nil {
		t.Fatalf("kubectl xmetrics query: %v\n%s", err, stderr)
	}
	var got externalMetricList
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("kubectl xmetrics query -o json: %v\n%s", err, out)
	}
	if len(got.Items) != 1 || got.Items[0].Value != raw.Items[0].Value || got.Items[0].MetricLabels["queue"] != "emails" {
		t.Errorf("query read %+v, kubectl get --raw %+v", got.Items, raw.Items)
	}
	table, stderr, err := kubectl("xmetrics", "query", "xm.plugin.depth", "-l", "queue=emails")
	if err != nil || !strings.Contains(table, "1500m (1.5)") || !strings.Contains(table, "queue=emails") {
		t.Errorf("kubectl xmetrics query (table): %v\n%s%s", err, table, stderr)
	}
	// The aggregator's answer for a metric nobody sends: its Status reason and message.
	_, stderr, err = kubectl("xmetrics", "query", "xm.plugin.never", "-n", "default")
	if err == nil || !strings.Contains(stderr, "404 NotFound: ") || !strings.Contains(stderr, "xm.plugin.never") {
		t.Errorf("query of a missing metric: err %v, stderr %q", err, stderr)
	}

	// status: xmetrics found through the APIService, with the context's client certificate.
	out, stderr, err = kubectl("xmetrics", "status", "-o", "json")
	if err != nil {
		t.Fatalf("kubectl xmetrics status: %v\n%s", err, stderr)
	}
	var report struct {
		Metrics []struct {
			MetricName string `json:"metricName"`
		} `json:"metrics"`
	}
	if err := json.Unmarshal([]byte(out), &report); err != nil {
		t.Fatalf("status -o json: %v\n%s", err, out)
	}
	found := false
	for _, m := range report.Metrics {
		found = found || m.MetricName == "xm.plugin.depth"
	}
	if !found {
		t.Errorf("status lists no xm.plugin.depth:\n%s", out)
	}

	// flare: the cluster's objects and xmetrics' own files, both from the current context.
	archive := filepath.Join(home, "flare.tar.gz")
	if _, stderr, err := kubectl("xmetrics", "flare", "-o", archive); err != nil {
		t.Fatalf("kubectl xmetrics flare: %v\n%s", err, stderr)
	}
	files := tarNames(t, archive)
	for _, want := range []string{"status.json", "metrics.txt", "kubernetes/apiservice.json", "doctor.txt"} {
		if !files[want] {
			t.Errorf("flare archive lacks %s (has %v)", want, files)
		}
	}

	// The status page through `kubectl proxy`, as docs/operations.md says to open it in a cluster:
	// the context's credentials presented to xmetrics, its certificate checked against the
	// APIService's caBundle for the Service's name. (kubectl port-forward needs a kubelet: the
	// test dials xmetrics' loopback port instead.)
	caBundle, _, err := kubectl("get", "apiservice", "v1beta1.external.metrics.k8s.io", "-o", "jsonpath={.spec.caBundle}")
	if err != nil {
		t.Fatalf("reading the caBundle: %v", err)
	}
	caPEM, err := base64.StdEncoding.DecodeString(caBundle)
	if err != nil {
		t.Fatalf("caBundle is not base64: %v", err)
	}
	caFile := filepath.Join(home, "xmetrics-ca.crt")
	if err := os.WriteFile(caFile, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	proxyCtx, stopProxy := context.WithCancel(ctx)
	defer stopProxy()
	proxy := exec.CommandContext(proxyCtx, KubectlPath(), "proxy", "--port", "0", "--server", e.x.URL,
		"--tls-server-name", "xmetrics."+XmetricsNamespace+".svc", "--certificate-authority", caFile)
	proxy.Env = env
	proxyOut, err := proxy.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := proxy.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stopProxy(); _ = proxy.Wait() }()
	line := make([]byte, 256)
	n, _ := proxyOut.Read(line)
	m := regexp.MustCompile(`127\.0\.0\.1:(\d+)`).FindSubmatch(line[:n])
	if m == nil {
		t.Fatalf("kubectl proxy printed %q", line[:n])
	}
	// The header shows the APIService as the aggregator judges it (Available=True here; read again
	// within 5 s while it is not, so a page loaded before registration catches up).
	var page []byte
	var code int
	WaitFor(func() (bool, error) {
		resp, err := http.Get("http://127.0.0.1:" + string(m[1]) + "/xmetrics/v1/ui?q=xm.plugin")
		if err != nil {
			return false, nil
		}
		page, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		code = resp.StatusCode
		return code == 200 && strings.Contains(string(page), `data-available="True"`), nil
	}, 20*time.Second)
	if code != 200 || !strings.Contains(string(page), `data-metric="xm.plugin.depth"`) ||
		!strings.Contains(string(page), "cluster https://") ||
		!strings.Contains(string(page), "Available=True (Passed)") {
		t.Errorf("status page through kubectl proxy: %d\n%.1500s", code, page)
	}

	// doctor: the same walk as with --kubeconfig; its report names the APIService as OK.
	out, stderr, _ = kubectl("xmetrics", "doctor", "-o", "json")
	var r doctorReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("kubectl xmetrics doctor -o json: %v\n%s%s", err, out, stderr)
	}
	if c := r.find("apiservice", ""); c == nil || c.Verdict != "OK" {
		t.Errorf("doctor through the plugin: apiservice %v", c)
	}
}

func tarNames(t *testing.T, path string) map[string]bool {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		names[h.Name] = true
	}
}
