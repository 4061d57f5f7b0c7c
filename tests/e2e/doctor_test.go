package e2e

// `xmetrics doctor` on a real control plane: one test per failure mode, each breaking one
// link of the chain of a cluster deployed from deploy/manifests (startXmetricsEnv), running
// the real binary (`xmetrics doctor --kubeconfig <admin> -o json`) and checking the
// failing check's name, verdict, failure mode and fix; plus one healthy run where every
// check is OK.
//
//	tests/e2e/run.sh -run TestDoctor -v
//
// Datadog failures (invalid keys, rate limit) run xmetrics with --backend datadog against
// tests/integration/fake_datadog.py, started as a process (testdata/fake_datadog_server.py)
// with the venv's python (build/venv/bin/python, or $XMETRICS_PYTHON).

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// doctorTimeout bounds one `xmetrics doctor` run; a run takes about a second.
const doctorTimeout = 60 * time.Second

type doctorCheck struct {
	Name     string   `json:"name"`
	Subject  string   `json:"subject"`
	Verdict  string   `json:"verdict"`
	Summary  string   `json:"summary"`
	Problem  string   `json:"problem"`
	Evidence []string `json:"evidence"`
	Fix      string   `json:"fix"`
}

func (c *doctorCheck) String() string {
	s := fmt.Sprintf("%-4s %s", c.Verdict, c.Name)
	if c.Subject != "" {
		s += " " + c.Subject
	}
	s += ": " + c.Summary
	if c.Problem != "" {
		s += " [" + c.Problem + "]"
	}
	for _, e := range c.Evidence {
		s += "\n       " + e
	}
	if c.Fix != "" {
		s += "\n       fix: " + c.Fix
	}
	return s
}

type doctorReport struct {
	Checks   []doctorCheck `json:"checks"`
	ExitCode int           `json:"exitCode"`
	exit     int           // the process's exit code
	took     time.Duration
	stdout   string
}

func (r *doctorReport) String() string {
	var lines []string
	for i := range r.Checks {
		lines = append(lines, r.Checks[i].String())
	}
	return fmt.Sprintf("exit %d after %s\n%s", r.exit, r.took.Round(time.Millisecond), strings.Join(lines, "\n"))
}

// find returns the first check named name whose subject contains subject.
func (r *doctorReport) find(name, subject string) *doctorCheck {
	for i := range r.Checks {
		if r.Checks[i].Name == name && strings.Contains(r.Checks[i].Subject, subject) {
			return &r.Checks[i]
		}
	}
	return nil
}

// has: a check named name (subject containing subject) with this verdict and failure mode.
func (r *doctorReport) has(name, subject, verdict, problem string) bool {
	c := r.find(name, subject)
	return c != nil && c.Verdict == verdict && c.Problem == problem
}

// doctor runs `xmetrics doctor --kubeconfig <admin> -o json args...` and parses its report.
func (e *xmEnv) doctor(args ...string) *doctorReport {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(e.ctx, doctorTimeout)
	defer cancel()
	full := append([]string{"doctor", "--kubeconfig", e.c.AdminKubeconfig, "-o", "json"}, args...)
	cmd := exec.CommandContext(ctx, XmetricsBinary(), full...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	r := &doctorReport{took: time.Since(start), stdout: stdout.String()}
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		r.exit = exitErr.ExitCode()
	} else if err != nil {
		e.t.Fatalf("xmetrics %s: %v\n%s", strings.Join(full, " "), err, stderr.String())
	}
	if err := json.Unmarshal(stdout.Bytes(), r); err != nil {
		e.t.Fatalf("xmetrics doctor -o json printed no report (exit %d): %v\nstdout: %s\nstderr: %s", r.exit, err, stdout.String(), stderr.String())
	}
	if r.exit != r.ExitCode {
		e.t.Errorf("doctor exited %d, its report says exitCode %d", r.exit, r.ExitCode)
	}
	return r
}

// doctorUntil runs doctor until cond holds on the report (a change made through the API
// takes a moment to reach RBAC caches and the aggregator), and returns the last report.
func (e *xmEnv) doctorUntil(what string, timeout time.Duration, cond func(*doctorReport) bool, args ...string) *doctorReport {
	e.t.Helper()
	start := time.Now()
	var last *doctorReport
	runs := 0
	err := WaitFor(func() (bool, error) {
		last = e.doctor(args...)
		runs++
		return cond(last), nil
	}, timeout)
	if err != nil {
		e.t.Fatalf("doctor never showed %s (%d runs in %s); last report:\n%s", what, runs, time.Since(start).Round(time.Millisecond), last)
	}
	e.t.Logf("doctor shows %s after %s (%d runs, last took %s):\n%s", what, time.Since(start).Round(time.Millisecond), runs, last.took.Round(time.Millisecond), last)
	recordTiming("doctor: %s — %s (one run %s)", e.t.Name(), time.Since(start).Round(time.Millisecond), last.took.Round(time.Millisecond))
	return last
}

// expectCheck fails unless the report has the check with this verdict and failure mode and
// its fix mentions every one of fixHas.
func expectCheck(t *testing.T, r *doctorReport, name, subject, verdict, problem string, fixHas ...string) *doctorCheck {
	t.Helper()
	c := r.find(name, subject)
	if c == nil {
		t.Fatalf("no %q check (subject %q) in the report:\n%s", name, subject, r)
	}
	if c.Verdict != verdict || c.Problem != problem {
		t.Errorf("check %s: verdict %s problem %q, want %s %q", c.Name, c.Verdict, c.Problem, verdict, problem)
	}
	if verdict != "OK" && c.Fix == "" {
		t.Errorf("check %s is %s without a fix", c.Name, verdict)
	}
	for _, f := range fixHas {
		if !strings.Contains(c.Fix, f) {
			t.Errorf("check %s: fix %q does not mention %q", c.Name, c.Fix, f)
		}
	}
	return c
}

func evidenceHas(c *doctorCheck, text string) bool {
	for _, e := range c.Evidence {
		if strings.Contains(e, text) {
			return true
		}
	}
	return false
}

// sendAt sends a DogStatsD gauge stamped `age` ago (protocol 1.3 |T): a point xmetrics holds,
// but old.
func sendAt(t *testing.T, x *Xmetrics, name, tags string, value float64, age time.Duration) {
	t.Helper()
	line := fmt.Sprintf("%s:%s|g|#%s|T%d", name, strconv.FormatFloat(value, 'f', -1, 64), tags, time.Now().Add(-age).Unix())
	if err := x.SendDogStatsD(line); err != nil {
		t.Fatal(err)
	}
}

// ---------------------------------------------------------------------------
// The fake Datadog API as a process

type fakeDatadog struct {
	URL            string
	APIKey, AppKey string
}

type fakeDatadogConfig struct {
	Values    map[string]any `json:"values"`
	RateLimit []int          `json:"rate_limit,omitempty"` // [limit, period seconds]
	APIKey    string         `json:"api_key"`
	AppKey    string         `json:"app_key"`
}

// PythonPath is $XMETRICS_PYTHON, else the venv scripts/setup makes (build/venv), else python3.
func PythonPath() string {
	if p := os.Getenv("XMETRICS_PYTHON"); p != "" {
		return p
	}
	if p, err := filepath.Abs(filepath.Join("..", "..", "build", "venv", "bin", "python")); err == nil {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return "python3"
}

func startFakeDatadog(t *testing.T, cfg fakeDatadogConfig) *fakeDatadog {
	t.Helper()
	if cfg.APIKey == "" {
		cfg.APIKey = "doctor-e2e-api-key"
	}
	if cfg.AppKey == "" {
		cfg.AppKey = "doctor-e2e-app-key"
	}
	b, _ := json.Marshal(cfg)
	cmd := exec.Command(PythonPath(), filepath.Join("testdata", "fake_datadog_server.py"), string(b))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start the fake Datadog API with %s: %v", PythonPath(), err)
	}
	t.Cleanup(func() {
		stdin.Close() // the server stops when stdin closes
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- strings.TrimSpace(s)
		io.Copy(io.Discard, stdout)
	}()
	select {
	case url := <-line:
		if !strings.HasPrefix(url, "http://") {
			t.Fatalf("fake Datadog printed %q; stderr: %s", url, stderr.String())
		}
		return &fakeDatadog{URL: url, APIKey: cfg.APIKey, AppKey: cfg.AppKey}
	case <-time.After(15 * time.Second):
		t.Fatalf("fake Datadog did not start; stderr: %s", stderr.String())
	}
	return nil
}

// startDatadogEnv deploys xmetrics with --backend datadog against the fake, with these keys.
func startDatadogEnv(t *testing.T, ctx context.Context, dd *fakeDatadog, apiKey, appKey string) *xmEnv {
	t.Helper()
	return startXmetricsEnvWith(t, ctx, XmetricsOptions{
		Args: []string{"--backend", "datadog", "--datadog-endpoint", dd.URL, "--datadog-endpoint-backoff", "1s",
			"--datadog-timeout", "2s", "--refresh-period", "2s"},
		Env: []string{"DD_API_KEY=" + apiKey, "DD_APP_KEY=" + appKey},
	})
}

// ---------------------------------------------------------------------------
// Healthy

// TestDoctorHealthy: xmetrics as deploy/manifests describes it, two HPAs reading DogStatsD
// gauges (Datadog's walkthrough example: 2472 over 3 replicas against an AverageValue of 9,
// and a Value target) → every check OK, exit 0, and the HPA arithmetic explained as kubectl
// shows it.
func TestDoctorHealthy(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	e := startXmetricsEnv(t, ctx, "--refresh-period=1s", "--rollup=10", "--self-check-interval=5s")
	const ns = "doc"
	e.startDeployment(ns, "web", 3)
	e.startDeployment(ns, "worker", 1)
	startGauge(t, e.x, "xm.doc.requests", "app:web", 2472, time.Second)
	startGauge(t, e.x, "xm.doc.queue", "queue:emails", 42, time.Second)
	e.createHPA(ns, externalHPA("web", "web", "xm.doc.requests", map[string]string{"app": "web"}, autoscalingv2.AverageValueMetricType, "9", 1, 3))
	e.createHPA(ns, externalHPA("worker", "worker", "xm.doc.queue", map[string]string{"queue": "emails"}, autoscalingv2.ValueMetricType, "40", 1, 3))
	e.waitHPA(ns, "web", "HPA web reads 824 per pod, desired 3", 60*time.Second, func(h *autoscalingv2.HorizontalPodAutoscaler) bool {
		m, ok := currentExternal(h)
		return isTrue(h, autoscalingv2.ScalingActive) && ok && m == 824000 && h.Status.DesiredReplicas == 3
	})
	e.waitHPA(ns, "worker", "HPA worker reads 42, desired 1", 60*time.Second, func(h *autoscalingv2.HorizontalPodAutoscaler) bool {
		m, ok := currentExternal(h)
		return isTrue(h, autoscalingv2.ScalingActive) && ok && m == 42000 && h.Status.DesiredReplicas == 1
	})

	// The status page puts each HPA beside the metric it names, with the same arithmetic.
	mustWait(t, "the status page to show HPA doc/web's arithmetic", 30*time.Second, func() (bool, error) {
		code, page, err := e.get(e.admin, "/xmetrics/v1/ui?q=xm.doc.requests", nil)
		return err == nil && code == 200 && strings.Contains(page, `data-hpa="doc/web" data-desired="3"`) &&
			strings.Contains(page, "2472/3 = 824 per pod") && strings.Contains(page, `data-wants="3"`) &&
			strings.Contains(page, "Deployment/web"), nil
	})
	// xmetrics runs the same walk on itself (every 5 s here) with the RBAC of 10-rbac.yaml: no FAIL,
	// and its one blind spot (Deployments in every namespace) reported as not checked.
	var selfCheck string
	mustWait(t, "the page to show the self-check without a FAIL", 60*time.Second, func() (bool, error) {
		code, page, err := e.get(e.admin, "/xmetrics/v1/ui?q=xm.doc", nil)
		selfCheck = page
		return err == nil && code == 200 && strings.Contains(page, `class="selfcheck" data-ok=`) &&
			strings.Contains(page, `data-fail="0"`) && strings.Contains(page, `data-hpa="doc/web"`), nil
	})
	if !strings.Contains(selfCheck, "migration-not-checked") && !strings.Contains(selfCheck, "Cluster Agent Deployments not checked") {
		t.Errorf("the self-check's findings do not say the Cluster Agent check was not made:\n%.3000s", selfCheck)
	}
	if i := strings.Index(selfCheck, `<section id="findings">`); i >= 0 {
		t.Logf("self-check findings: %.2000s", selfCheck[i:])
	}
	r := e.doctorUntil("every check OK", 30*time.Second, func(r *doctorReport) bool { return r.exit == 0 })
	for _, c := range r.Checks {
		if c.Verdict != "OK" {
			t.Errorf("not OK: %s", c.String())
		}
	}
	for _, name := range []string{"apiservice", "service", "certificate", "discovery", "rbac-hpa", "rbac-xmetrics", "xmetrics", "leader", "backend"} {
		if r.find(name, "") == nil {
			t.Errorf("no %s check", name)
		}
	}
	web := expectCheck(t, r, "hpa", "doc/web", "OK", "")
	if !strings.Contains(web.Summary, "824/9 (avg)") || !strings.Contains(web.Summary, "desired 3 (HPA: 3)") {
		t.Errorf("hpa doc/web summary %q: want 824/9 (avg) and desired 3 (HPA: 3)", web.Summary)
	}
	if !evidenceHas(web, "2472/3 = 824 per pod") || !evidenceHas(web, "ceil(2472/9) = 275") || !evidenceHas(web, "capped at maxReplicas 3") {
		t.Errorf("hpa doc/web does not explain the AverageValue arithmetic:\n%s", web)
	}
	if !evidenceHas(web, "resolution: inline") || !evidenceHas(web, "avg:xm.doc.requests{app:web}.rollup(10)") || !evidenceHas(web, "→ 200") {
		t.Errorf("hpa doc/web lacks the resolution, query or the request through kube-apiserver:\n%s", web)
	}
	worker := expectCheck(t, r, "hpa", "doc/worker", "OK", "")
	if !strings.Contains(worker.Summary, "42/40") || !evidenceHas(worker, "within the tolerance") {
		t.Errorf("hpa doc/worker: want 42/40 kept within the tolerance:\n%s", worker)
	}
	// The table form of the same walk, for the log (and its exit code).
	out, err := exec.CommandContext(ctx, XmetricsBinary(), "doctor", "--kubeconfig", e.c.AdminKubeconfig).Output()
	if err != nil {
		t.Errorf("xmetrics doctor (table): %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "OK   apiservice  ") && !strings.Contains(string(out), "OK   apiservice ") {
		t.Errorf("table output does not start its apiservice line with \"OK   apiservice\":\n%s", out)
	}
	t.Logf("xmetrics doctor:\n%s", out)
}

// ---------------------------------------------------------------------------
// Link 3: RBAC

// TestDoctorWrongRBAC: the HPA controller may not read external metrics (the binding of
// 10-rbac.yaml deleted, and the rule Kubernetes' own bootstrap role
// system:controller:horizontal-pod-autoscaler carries removed, as on clusters whose policy
// predates it), and xmetrics' own HPA-reader binding is deleted → rbac-hpa and rbac-xmetrics
// FAIL wrong-rbac, naming the binding to restore.
func TestDoctorWrongRBAC(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	e := startXmetricsEnv(t, ctx)
	for _, b := range []string{"xmetrics:external-metrics-reader", "xmetrics:hpa-reader"} {
		if err := e.c.Client.RbacV1().ClusterRoleBindings().Delete(ctx, b, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	roles := e.c.Client.RbacV1().ClusterRoles()
	role, err := roles.Get(ctx, "system:controller:horizontal-pod-autoscaler", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var kept []rbacv1.PolicyRule
	for _, rule := range role.Rules {
		if !contains(rule.APIGroups, ExternalMetricsGroup) {
			kept = append(kept, rule)
		}
	}
	if len(kept) == len(role.Rules) {
		t.Logf("the bootstrap role grants no external metrics; nothing to remove")
	}
	role.Rules = kept
	if _, err := roles.Update(ctx, role, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	r := e.doctorUntil("both RBAC checks FAIL", 30*time.Second, func(r *doctorReport) bool {
		return r.has("rbac-hpa", "", "FAIL", "wrong-rbac") && r.has("rbac-xmetrics", "", "FAIL", "wrong-rbac")
	})
	if r.exit != 1 {
		t.Errorf("exit %d with a FAIL, want 1", r.exit)
	}
	expectCheck(t, r, "rbac-hpa", "", "FAIL", "wrong-rbac", "xmetrics:external-metrics-reader", "kube-system:horizontal-pod-autoscaler")
	x := expectCheck(t, r, "rbac-xmetrics", "", "FAIL", "wrong-rbac", "10-rbac.yaml")
	if !evidenceHas(x, "horizontalpodautoscalers") || !evidenceHas(x, "system:serviceaccount:xmetrics:xmetrics") {
		t.Errorf("rbac-xmetrics does not name the identity and the missing HPA permission:\n%s", x)
	}
}

// ---------------------------------------------------------------------------
// Link 1: APIService → Service

// TestDoctorAPIServiceWrongServiceOrPort: the APIService is pointed at a port where nothing
// listens, then at another Service → the service check FAILs apiservice-wrong-port, then
// apiservice-wrong-service, each with the patch that fixes it.
func TestDoctorAPIServiceWrongServiceOrPort(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	e := startXmetricsEnv(t, ctx)
	apis := e.c.Aggregator.ApiregistrationV1().APIServices()
	name := ExternalMetricsVersion + "." + ExternalMetricsGroup

	t.Run("port", func(t *testing.T) {
		e := e.with(t)
		free, err := FreeTCPPort()
		if err != nil {
			t.Fatal(err)
		}
		api, err := apis.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		port := int32(free)
		api.Spec.Service.Port = &port
		if _, err := apis.Update(ctx, api, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		r := e.doctorUntil("service FAIL apiservice-wrong-port", 30*time.Second, func(r *doctorReport) bool {
			return r.has("service", "", "FAIL", "apiservice-wrong-port")
		})
		expectCheck(t, r, "service", "", "FAIL", "apiservice-wrong-port", `"port":`+strconv.Itoa(e.x.Port))
		if r.exit != 1 {
			t.Errorf("exit %d, want 1", r.exit)
		}
		// Back to the real port.
		api, err = apis.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		real := int32(e.x.Port)
		api.Spec.Service.Port = &real
		if _, err := apis.Update(ctx, api, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := e.c.WaitAPIServiceAvailable(ctx, name, 60*time.Second); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("service", func(t *testing.T) {
		e := e.with(t)
		// Another Service that reaches the same server: only the name is wrong.
		other := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "metrics-adapter", Namespace: XmetricsNamespace},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "localhost",
				Ports: []corev1.ServicePort{{Name: "https", Port: int32(e.x.Port), TargetPort: intstr.FromInt32(int32(e.x.Port))}}},
		}
		if _, err := e.c.Client.CoreV1().Services(XmetricsNamespace).Create(ctx, other, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		api, err := apis.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		api.Spec.Service.Name = other.Name
		if _, err := apis.Update(ctx, api, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		r := e.doctorUntil("service FAIL apiservice-wrong-service", 30*time.Second, func(r *doctorReport) bool {
			return r.has("service", "", "FAIL", "apiservice-wrong-service")
		})
		svc := expectCheck(t, r, "service", "", "FAIL", "apiservice-wrong-service", `"name":"xmetrics"`)
		if !strings.Contains(svc.Summary, XmetricsNamespace+"/metrics-adapter") {
			t.Errorf("service summary %q does not name the Service the APIService points at", svc.Summary)
		}
		// The certificate is for xmetrics.xmetrics.svc, not for the other name.
		expectCheck(t, r, "certificate", "", "FAIL", "certificate-name-mismatch", "metrics-adapter.xmetrics.svc")
	})
}

// TestDoctorCABundleMismatch: the APIService's caBundle is another CA → certificate FAIL
// cabundle-mismatch (with the patch); then insecureSkipTLSVerify instead of a caBundle →
// certificate WARN and, everything else being OK, exit code 2.
func TestDoctorCABundleMismatch(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	e := startXmetricsEnv(t, ctx)
	apis := e.c.Aggregator.ApiregistrationV1().APIServices()
	name := ExternalMetricsVersion + "." + ExternalMetricsGroup
	otherCA, err := NewCertAuthority("not-the-serving-ca")
	if err != nil {
		t.Fatal(err)
	}
	api, err := apis.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	api.Spec.CABundle = otherCA.CertPEM
	if _, err := apis.Update(ctx, api, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	r := e.doctorUntil("certificate FAIL cabundle-mismatch", 30*time.Second, func(r *doctorReport) bool {
		return r.has("certificate", "", "FAIL", "cabundle-mismatch")
	})
	c := expectCheck(t, r, "certificate", "", "FAIL", "cabundle-mismatch", "caBundle")
	if !evidenceHas(c, "not-the-serving-ca") || !evidenceHas(c, "xmetrics-e2e-serving-ca") {
		t.Errorf("certificate evidence should name the caBundle's CA and the serving certificate's issuer:\n%s", c)
	}

	api, err = apis.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	api.Spec.CABundle = nil
	api.Spec.InsecureSkipTLSVerify = true
	if _, err := apis.Update(ctx, api, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.WaitAPIServiceAvailable(ctx, name, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	r = e.doctorUntil("only the insecureSkipTLSVerify WARN", 30*time.Second, func(r *doctorReport) bool {
		return r.exit == 2 && r.has("certificate", "", "WARN", "insecure-skip-tls-verify")
	})
	expectCheck(t, r, "certificate", "", "WARN", "insecure-skip-tls-verify", "caBundle")
	for _, c := range r.Checks {
		if c.Name != "certificate" && c.Verdict != "OK" {
			t.Errorf("not OK: %s", c.String())
		}
	}
}

// ---------------------------------------------------------------------------
// Link 4/5: metrics

// TestDoctorMissingMetricNoDataTagTypo: three HPAs whose metric has no value — a name nothing
// sends, series whose points are all older than the query window, and a tag that differs
// from what the app sends — each named, the typo pinned to the tag.
func TestDoctorMissingMetricNoDataTagTypo(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	e := startXmetricsEnv(t, ctx, "--refresh-period=1s", "--rollup=10")
	const ns = "doc"
	startGauge(t, e.x, "xm.doc.orders", "queue:emails,env:prod", 3, time.Second)
	sendAt(t, e.x, "xm.doc.silent", "job:batch", 5, 400*time.Second) // kept (retention 900 s), outside the 300 s window
	e.createHPA(ns, externalHPA("missing", "missing", "xm.doc.never_sent", nil, autoscalingv2.ValueMetricType, "10", 1, 3))
	e.createHPA(ns, externalHPA("silent", "silent", "xm.doc.silent", map[string]string{"job": "batch"}, autoscalingv2.ValueMetricType, "10", 1, 3))
	e.createHPA(ns, externalHPA("typo", "typo", "xm.doc.orders", map[string]string{"queue": "email", "env": "prod"}, autoscalingv2.ValueMetricType, "10", 1, 3))

	r := e.doctorUntil("the three metric failures", 45*time.Second, func(r *doctorReport) bool {
		return r.has("hpa", "doc/missing", "FAIL", "metric-missing") && r.has("hpa", "doc/silent", "FAIL", "no-data") &&
			r.has("hpa", "doc/typo", "FAIL", "tag-typo")
	})
	expectCheck(t, r, "hpa", "doc/missing", "FAIL", "metric-missing", "metric name")
	expectCheck(t, r, "hpa", "doc/silent", "FAIL", "no-data", "stopped sending")
	typo := expectCheck(t, r, "hpa", "doc/typo", "FAIL", "tag-typo", "queue=email")
	if strings.Contains(typo.Fix, "env=prod") || !strings.Contains(typo.Summary, "queue=email") {
		t.Errorf("the typo check should blame queue=email and not env=prod:\n%s", typo)
	}
	if !evidenceHas(typo, "with only env=prod: data") || !evidenceHas(typo, "avg:xm.doc.orders{env:prod,queue:email}.rollup(10)") {
		t.Errorf("the typo check should show the probes and the query:\n%s", typo)
	}
}

// TestDoctorStaleValue: the only point of a gauge is 200 s old (older than max-age 120 s,
// inside the 300 s window) → the HPA's metric FAILs stale-value naming the age.
func TestDoctorStaleValue(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	e := startXmetricsEnv(t, ctx, "--refresh-period=1s", "--rollup=10")
	sendAt(t, e.x, "xm.doc.lagging", "job:etl", 7, 200*time.Second)
	e.createHPA("doc", externalHPA("etl", "etl", "xm.doc.lagging", map[string]string{"job": "etl"}, autoscalingv2.AverageValueMetricType, "2", 1, 3))
	r := e.doctorUntil("hpa FAIL stale-value", 45*time.Second, func(r *doctorReport) bool {
		return r.has("hpa", "doc/etl", "FAIL", "stale-value")
	})
	c := expectCheck(t, r, "hpa", "doc/etl", "FAIL", "stale-value", "stopped reporting")
	if !strings.Contains(c.Summary, "s old") || !evidenceHas(c, "503") {
		t.Errorf("stale check should give the age and the 503 kube-apiserver returns:\n%s", c)
	}
}

// TestDoctorInvalidKeys: the Datadog API answers 403 to xmetrics' keys → backend FAIL
// invalid-keys and the HPA's metric FAIL invalid-keys, the fix naming the key settings.
func TestDoctorInvalidKeys(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dd := startFakeDatadog(t, fakeDatadogConfig{Values: map[string]any{"xm.doc.dd.requests": 12}})
	e := startDatadogEnv(t, ctx, dd, "revoked-api-key", dd.AppKey)
	e.createHPA("doc", externalHPA("web", "web", "xm.doc.dd.requests", map[string]string{"app": "web"}, autoscalingv2.ValueMetricType, "10", 1, 3))
	r := e.doctorUntil("backend and hpa FAIL invalid-keys", 45*time.Second, func(r *doctorReport) bool {
		return r.has("backend", "datadog", "FAIL", "invalid-keys") && r.has("hpa", "doc/web", "FAIL", "invalid-keys")
	})
	b := expectCheck(t, r, "backend", "datadog", "FAIL", "invalid-keys", "DD_API_KEY", "DD_APP_KEY")
	if !evidenceHas(b, "403 Forbidden") {
		t.Errorf("backend evidence should carry the 403:\n%s", b)
	}
	for _, text := range []string{r.stdout, e.x.Logs()} {
		if strings.Contains(text, "revoked-api-key") {
			t.Errorf("the API key leaked into doctor's report or xmetrics' log")
		}
	}
}

// TestDoctorRateLimited: another client already spent the Datadog query budget of the key
// (the fake announces 3 calls per day and has answered 3) → xmetrics' calls get 429 →
// backend and the HPA's metric FAIL rate-limited, with the budget in the evidence.
func TestDoctorRateLimited(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// A day-long period: the fake aligns windows to multiples of the period, so the reset is
	// far away (xmetrics would wait for a reset within 30 s).
	dd := startFakeDatadog(t, fakeDatadogConfig{Values: map[string]any{"xm.doc.dd.queue": 4}, RateLimit: []int{3, 86400}})
	for i := 0; i < 3; i++ {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, dd.URL+"/api/v1/query?from=0&to=1&query=avg:other.client{*}", nil)
		req.Header.Set("DD-API-KEY", dd.APIKey)
		req.Header.Set("DD-APPLICATION-KEY", dd.AppKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	e := startDatadogEnv(t, ctx, dd, dd.APIKey, dd.AppKey)
	e.createHPA("doc", externalHPA("worker", "worker", "xm.doc.dd.queue", nil, autoscalingv2.ValueMetricType, "10", 1, 3))
	r := e.doctorUntil("backend and hpa FAIL rate-limited", 45*time.Second, func(r *doctorReport) bool {
		return r.has("backend", "datadog", "FAIL", "rate-limited") && r.has("hpa", "doc/worker", "FAIL", "rate-limited")
	})
	b := expectCheck(t, r, "backend", "datadog", "FAIL", "rate-limited", "rate limit")
	if !evidenceHas(b, "0 of 3 calls left per 86400s") {
		t.Errorf("backend evidence should carry the spent budget:\n%s", b)
	}
	expectCheck(t, r, "hpa", "doc/worker", "FAIL", "rate-limited", "refresh-period")
}

// ---------------------------------------------------------------------------
// DatadogMetric (CRD mode)

// TestDoctorDatadogMetricMissingOrInvalid: one HPA names datadogmetric@doc:absent (no such
// object), another an object whose query uses an unset %%env_…%% → datadogmetric-missing and
// datadogmetric-invalid, with fixes naming the object.
func TestDoctorDatadogMetricMissingOrInvalid(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	d := startDatadogMetricEnv(t, ctx)
	d.applyDatadogMetric("doc", "broken", "avg:xm.doc.broken{env:%%env_XM_DOCTOR_UNSET%%}")
	d.createHPA("doc", externalHPA("absent", "absent", "datadogmetric@doc:absent", nil, autoscalingv2.ValueMetricType, "10", 1, 3))
	d.createHPA("doc", externalHPA("broken", "broken", "datadogmetric@doc:broken", nil, autoscalingv2.ValueMetricType, "10", 1, 3))
	r := d.doctorUntil("datadogmetric-missing and -invalid", 45*time.Second, func(r *doctorReport) bool {
		return r.has("hpa", "doc/absent", "FAIL", "datadogmetric-missing") && r.has("hpa", "doc/broken", "FAIL", "datadogmetric-invalid")
	})
	missing := expectCheck(t, r, "hpa", "doc/absent", "FAIL", "datadogmetric-missing", `named "absent" in namespace "doc"`)
	if !evidenceHas(missing, "DatadogMetric doc/absent") {
		t.Errorf("missing check should name the object in its resolution:\n%s", missing)
	}
	broken := expectCheck(t, r, "hpa", "doc/broken", "FAIL", "datadogmetric-invalid", "kubectl edit datadogmetric -n doc broken", "XM_DOCTOR_UNSET")
	if !evidenceHas(broken, "spec.query: avg:xm.doc.broken") {
		t.Errorf("invalid check should show the object's query:\n%s", broken)
	}
}

// TestDoctorAutogenShadowing: the incident's sequence — an HPA on an inline metric gets an
// autogen DatadogMetric, then a manual DatadogMetric named like the metric is applied in the
// HPA's namespace → the manual one serves at once (no restart) and doctor WARNs that both
// exist, saying which serves and why, with the cleanup; exit code 2.
func TestDoctorAutogenShadowing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	d := startDatadogMetricEnv(t, ctx)
	const ns, metric = "doc", "xm.doc.proxy"
	selector := map[string]string{"app": "proxy"}
	d.startDeployment(ns, "proxy", 1)
	startGauge(t, d.x, metric, "app:proxy", 2, time.Second)
	startGauge(t, d.x, "xm.doc.proxy_manual", "app:proxy", 3, time.Second)
	d.createHPA(ns, externalHPA("proxy", "proxy", metric, selector, autoscalingv2.AverageValueMetricType, "1", 1, 5))
	auto := d.waitAutogen(metric, inlineQuery(metric, selector), 30*time.Second)
	d.applyDatadogMetric(ns, metric, "max:xm.doc.proxy_manual{app:proxy}.rollup(10)")
	d.waitHPA(ns, "proxy", "HPA reads the manual object's 3", 60*time.Second, func(h *autoscalingv2.HorizontalPodAutoscaler) bool {
		return isTrue(h, autoscalingv2.ScalingActive) && h.Status.DesiredReplicas == 3
	})
	r := d.doctorUntil("autogen WARN autogen-shadowing", 45*time.Second, func(r *doctorReport) bool {
		return r.has("autogen", "", "WARN", "autogen-shadowing") && r.find("hpa", "doc/proxy") != nil && r.find("hpa", "doc/proxy").Verdict == "OK"
	})
	c := expectCheck(t, r, "autogen", "", "WARN", "autogen-shadowing", "kubectl delete datadogmetric -n xmetrics "+auto.Name)
	if !strings.Contains(c.Summary, "doc/"+metric+" serves") || !evidenceHas(c, "rule 2: named like the metric") {
		t.Errorf("autogen check should say the manual object serves and why:\n%s", c)
	}
	h := expectCheck(t, r, "hpa", "doc/proxy", "OK", "")
	if !evidenceHas(h, "resolution: DatadogMetric doc/"+metric) {
		t.Errorf("hpa check should show the manual object as the resolution:\n%s", h)
	}
	if r.exit != 2 {
		t.Errorf("exit %d with only WARNs, want 2:\n%s", r.exit, r)
	}
}

// ---------------------------------------------------------------------------
// Leader election

// leaderElectionFlag is the serve flag that turns leader election on. Its help line is read, not
// assumed: a binary whose help no longer shows it fails the test, which must not pass by skipping.
func leaderElectionFlag(t *testing.T) string {
	out, err := exec.Command(XmetricsBinary(), "serve", "--help").CombinedOutput()
	if strings.Contains(string(out), "--leader-election ") {
		return "--leader-election"
	}
	t.Fatalf("xmetrics serve --help (err %v) does not show --leader-election:\n%s", err, out)
	return ""
}

// TestDoctorLeaderNotElected: leader election on (short lease: 3 s, renew deadline 2 s) →
// leader OK while xmetrics holds the Lease; then its Role binding for leases is deleted, so it
// can no longer renew → the Lease expires with nobody taking over → leader FAIL
// leader-not-elected, and rbac-xmetrics FAIL wrong-rbac naming leases.
func TestDoctorLeaderNotElected(t *testing.T) {
	flag := leaderElectionFlag(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	e := startXmetricsEnv(t, ctx, flag+"=true", "--leader-lease-duration=3s", "--leader-renew-deadline=2s", "--leader-retry-period=1s")
	r := e.doctorUntil("leader OK", 30*time.Second, func(r *doctorReport) bool {
		return r.has("leader", "", "OK", "")
	})
	if c := r.find("leader", ""); !strings.Contains(c.Summary, "xmetrics-leader") {
		t.Errorf("leader check should name the Lease: %s", c)
	}
	expectCheck(t, r, "rbac-xmetrics", "", "OK", "")
	if err := e.c.Client.RbacV1().RoleBindings(XmetricsNamespace).Delete(ctx, "xmetrics:leader-election", metav1.DeleteOptions{}); err != nil {
		t.Fatalf("the leader-election RoleBinding of 10-rbac.yaml: %v", err)
	}
	r = e.doctorUntil("leader FAIL leader-not-elected", 45*time.Second, func(r *doctorReport) bool {
		return r.has("leader", "", "FAIL", "leader-not-elected")
	})
	c := expectCheck(t, r, "leader", "", "FAIL", "leader-not-elected", "leases")
	if !strings.Contains(c.Summary, "expired") {
		t.Errorf("leader summary should say the Lease expired: %s", c)
	}
	x := expectCheck(t, r, "rbac-xmetrics", "", "FAIL", "wrong-rbac")
	if !evidenceHas(x, "leases") {
		t.Errorf("rbac-xmetrics should name the lease permissions:\n%s", x)
	}
}
