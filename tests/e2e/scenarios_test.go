package e2e

// The scenarios of issue 3 ("Scenarios that must pass"), one test each. Every
// test starts its own control plane, deploys xmetrics from deploy/manifests (see
// startXmetricsEnv) and runs it with its own service account's token.
//
//	tests/e2e/run.sh -run TestScenario -v
//
// Timings go to t.Logf and to the summary line TestMain prints (visible with -v).

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"context"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	apiregv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
)

const apiServiceName = ExternalMetricsVersion + "." + ExternalMetricsGroup

// Scenario 1: APIService Available=True; discovery through kube-apiserver lists
// resources; a metric read through kube-apiserver returns the DogStatsD value.
func TestScenario1APIServiceServesDogStatsD(t *testing.T) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	e := startXmetricsEnv(t, ctx) // xmetrics' defaults: refresh 30 s, rollup 30
	c := e.c

	api, err := c.Aggregator.ApiregistrationV1().APIServices().Get(ctx, apiServiceName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	available := false
	for _, cond := range api.Status.Conditions {
		if cond.Type == apiregv1.Available {
			t.Logf("APIService %s: Available=%s reason=%s message=%q", api.Name, cond.Status, cond.Reason, cond.Message)
			available = cond.Status == apiregv1.ConditionTrue
		}
	}
	if !available {
		t.Fatalf("APIService %s not Available: %+v", api.Name, api.Status.Conditions)
	}
	out, err := c.Kubectl(ctx, "api-versions")
	if err != nil || !strings.Contains(out, ExternalMetricsGroup+"/"+ExternalMetricsVersion) {
		t.Errorf("kubectl api-versions: no %s/%s (err %v):\n%s", ExternalMetricsGroup, ExternalMetricsVersion, err, out)
	}

	// Discovery through kube-apiserver (proxied to xmetrics).
	discovery := func() (apiResourceList, string) {
		t.Helper()
		out, err := c.Kubectl(ctx, "get", "--raw", "/apis/"+ExternalMetricsGroup+"/"+ExternalMetricsVersion)
		if err != nil {
			t.Fatal(err)
		}
		var l apiResourceList
		if err := json.Unmarshal([]byte(out), &l); err != nil {
			t.Fatalf("discovery: %v: %s", err, out)
		}
		return l, out
	}
	l, raw := discovery()
	if l.Kind != "APIResourceList" || l.GroupVersion != ExternalMetricsGroup+"/"+ExternalMetricsVersion || len(l.Resources) == 0 {
		t.Fatalf("discovery through kube-apiserver: want a non-empty APIResourceList for %s/%s, got %s", ExternalMetricsGroup, ExternalMetricsVersion, raw)
	}
	for _, r := range l.Resources {
		if r.Kind != "ExternalMetricValueList" || !r.Namespaced || len(r.Verbs) == 0 || r.Verbs[0] != "get" {
			t.Errorf("discovery resource %+v: want kind ExternalMetricValueList, namespaced, verbs [get]", r)
		}
	}
	t.Logf("discovery before any metric: %s", strings.TrimSpace(raw))

	// An app sends a gauge; kubectl reads it through kube-apiserver.
	const ns, metric, selector = "default", "s1_queue_depth", "queue=emails"
	sentAt := time.Now()
	startGauge(t, e.x, metric, "queue:emails", 42.5, time.Second)
	var got *externalMetricList
	var last string
	if err := WaitFor(func() (bool, error) {
		l, err := e.readMetric(ns, metric, selector)
		if err != nil {
			last = err.Error()
			return false, Retry(err)
		}
		got = l
		return len(l.Items) == 1 && l.Items[0].Value == "42500m", nil
	}, 45*time.Second); err != nil {
		t.Fatalf("metric %s{%s} through kube-apiserver: want one item of value 42500m (42.5): %v (last: %s, got %+v)", metric, selector, err, last, got)
	}
	t.Logf("DogStatsD %s:42.5 → kubectl get --raw %s: %+v after %s", metric, externalMetricPath(ns, metric, selector), got.Items[0], time.Since(sentAt).Round(time.Millisecond))
	if got.Kind != "ExternalMetricValueList" || got.APIVersion != ExternalMetricsGroup+"/"+ExternalMetricsVersion {
		t.Errorf("kind/apiVersion = %s %s", got.Kind, got.APIVersion)
	}
	item := got.Items[0]
	if item.MetricName != metric {
		t.Errorf("metricName = %q, want %q", item.MetricName, metric)
	}
	if len(item.MetricLabels) != 1 || item.MetricLabels["queue"] != "emails" {
		t.Errorf("metricLabels = %v, want {queue: emails}", item.MetricLabels)
	}
	if !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$`).MatchString(item.Timestamp) {
		t.Errorf("timestamp %q: want RFC 3339 UTC in whole seconds", item.Timestamp)
	} else if ts, _ := time.Parse(time.RFC3339, item.Timestamp); ts.After(time.Now().Add(time.Second)) || time.Since(ts) > 2*time.Minute {
		t.Errorf("timestamp %s is not the time of a fresh sample (now %s)", item.Timestamp, time.Now().UTC().Format(time.RFC3339))
	}

	// Discovery now names the metric.
	l, raw = discovery()
	found := false
	for _, r := range l.Resources {
		found = found || r.Name == metric
	}
	if !found {
		t.Errorf("discovery after reading %s does not list it: %s", metric, raw)
	}
	// And xmetrics' own status agrees.
	st, err := e.status()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range st.Metrics {
		if m.MetricName == metric {
			t.Logf("status: %s{%s} query=%q value=%s valid=%v", m.MetricName, m.Selector, m.Query, m.Value, m.Valid)
			if !m.Valid || m.Value != "42500m" {
				t.Errorf("status of %s: valid=%v value=%q error=%q", metric, m.Valid, m.Value, m.Error)
			}
		}
	}
	if st.Kubernetes == nil || !st.Kubernetes.AuthenticationLoaded || !st.Kubernetes.HPAWatch.Synced {
		t.Errorf("status.kubernetes: %+v", st.Kubernetes)
	}
	recordTiming("scenario 1 %s", time.Since(start).Round(100*time.Millisecond))
}

type apiResourceList struct {
	Kind         string `json:"kind"`
	GroupVersion string `json:"groupVersion"`
	Resources    []struct {
		Name       string   `json:"name"`
		Namespaced bool     `json:"namespaced"`
		Kind       string   `json:"kind"`
		Verbs      []string `json:"verbs"`
	} `json:"resources"`
}

// Scenario 2: a Deployment of 1 replica with an autoscaling/v2 HPA on an External
// metric scales up when DogStatsD raises the metric and back to 1 when the traffic
// stops (the app reports 0), for target types Value and AverageValue, with the
// replica counts checked against the HPA formula of the reference.
//
// xmetrics runs with --refresh-period 1s and --rollup 10 (the embedded store's
// resolution), so a change reaches the HPA within one 10 s bucket + 1 s refresh +
// 1 s HPA sync; with the defaults (30 s, 30) it would take up to ~1.5 min.
func TestScenario2HPAScalesOnDogStatsD(t *testing.T) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	e := startXmetricsEnv(t, ctx, "--refresh-period", "1s", "--rollup", "10")

	// The two target types run side by side, each with its own namespace, Deployment,
	// HPA and metric.
	t.Run("targets", func(t *testing.T) {
		t.Run("Value", func(t *testing.T) {
			t.Parallel()
			scenario2Value(e.with(t))
		})
		t.Run("AverageValue", func(t *testing.T) {
			t.Parallel()
			scenario2AverageValue(e.with(t))
		})
	})
	recordTiming("scenario 2 %s", time.Since(start).Round(100*time.Millisecond))
}

func scenario2Value(e *xmEnv) {
	t := e.t
	const ns, name, metric = "s2-value", "worker", "s2_value_queue_depth"
	const targetMilli, minR, maxR = int64(10000), int32(1), int32(6)
	e.startDeployment(ns, name, 1)
	gaugeStart := time.Now()
	g := startGauge(t, e.x, metric, "queue:value", 2, time.Second)
	e.createHPA(ns, externalHPA(name, name, metric, map[string]string{"queue": "value"}, autoscalingv2.ValueMetricType, "10", minR, maxR))
	rec := e.recordHPA(ns, name)
	e.waitReference(metric, "hpa:"+ns+"/"+name, 30*time.Second)
	e.waitHPA(ns, name, "ScalingActive=True, value 2, desired 1", 60*time.Second, func(h *autoscalingv2.HorizontalPodAutoscaler) bool {
		m, ok := currentExternal(h)
		return isTrue(h, autoscalingv2.ScalingActive) && ok && m == 2000 && h.Status.DesiredReplicas == 1
	})
	steadyState(t, gaugeStart)

	// Traffic: 2 → 35. From 1 ready pod: ceil(35/10 × 1) = 4.
	t0 := g.Set(35)
	s := e.waitDesiredChange(rec, t0, 1, 60*time.Second)
	want := expectedValueReplicas(35000, targetMilli, 1, 1, minR, maxR)
	t.Logf("value 2 → 35: HPA desiredReplicas 1 → %d after %s (formula: ceil(35/10 × 1 ready) = %d)", s.desired, s.at.Sub(t0).Round(10*time.Millisecond), want)
	recordLatency("Value up", s.at.Sub(t0))
	if s.desired != want {
		t.Errorf("first desiredReplicas after the raise = %d, want %d; history:\n  %s", s.desired, want, rec.history(t0))
	}
	// It keeps going while usage/target stays 3.5: ceil(3.5 × 4 ready) = 14 → maxReplicas 6.
	e.waitDeployment(ns, name, "≥ 3 replicas, all ready", 60*time.Second, func(spec, ready int32) bool { return spec >= 3 && ready == spec })
	wantFinal := expectedValueReplicas(35000, targetMilli, 4, 4, minR, maxR)
	e.waitDeployment(ns, name, fmt.Sprintf("%d replicas (ceil(3.5 × 4) clamped to max %d)", wantFinal, maxR), 60*time.Second, func(spec, ready int32) bool { return spec == wantFinal && ready == wantFinal })

	// Traffic stops: the queue drains to 0 → ceil(0) → minReplicas 1.
	t1 := g.Set(0)
	s = e.waitDesiredChange(rec, t1, wantFinal, 60*time.Second)
	want = expectedValueReplicas(0, targetMilli, wantFinal, wantFinal, minR, maxR)
	t.Logf("value 35 → 0: HPA desiredReplicas %d → %d after %s (formula: %d)", wantFinal, s.desired, s.at.Sub(t1).Round(10*time.Millisecond), want)
	recordLatency("Value down", s.at.Sub(t1))
	if s.desired != want {
		t.Errorf("desiredReplicas after the traffic stopped = %d, want %d; history:\n  %s", s.desired, want, rec.history(t1))
	}
	e.waitDeployment(ns, name, "back to 1 replica", 60*time.Second, func(spec, ready int32) bool { return spec == 1 && ready == 1 })
	t.Logf("HPA history:\n  %s", rec.history(t0))
}

func scenario2AverageValue(e *xmEnv) {
	t := e.t
	const ns, name, metric = "s2-average", "worker", "s2_average_queue_depth"
	const targetMilli, minR, maxR = int64(10000), int32(1), int32(8)
	e.startDeployment(ns, name, 1)
	gaugeStart := time.Now()
	g := startGauge(t, e.x, metric, "queue:average", 2, time.Second)
	e.createHPA(ns, externalHPA(name, name, metric, map[string]string{"queue": "average"}, autoscalingv2.AverageValueMetricType, "10", minR, maxR))
	rec := e.recordHPA(ns, name)
	e.waitReference(metric, "hpa:"+ns+"/"+name, 30*time.Second)
	e.waitHPA(ns, name, "ScalingActive=True, average 2, desired 1", 60*time.Second, func(h *autoscalingv2.HorizontalPodAutoscaler) bool {
		m, ok := currentExternal(h)
		return isTrue(h, autoscalingv2.ScalingActive) && ok && m == averageValueShown(2000, 1) && h.Status.DesiredReplicas == 1
	})
	steadyState(t, gaugeStart)

	current := int32(1)
	for _, step := range []struct {
		value float64
		what  string
	}{{42, "traffic up"}, {15, "traffic lower"}, {0, "traffic stopped"}} {
		usage := int64(step.value * 1000)
		want := expectedAverageValueReplicas(usage, targetMilli, current, minR, maxR)
		t0 := g.Set(step.value)
		s := e.waitDesiredChange(rec, t0, current, 60*time.Second)
		t.Logf("%s: value → %v: HPA desiredReplicas %d → %d after %s (formula: ceil(%v/10) = %d)", step.what, step.value, current, s.desired, s.at.Sub(t0).Round(10*time.Millisecond), step.value, want)
		recordLatency(fmt.Sprintf("AverageValue %d→%d", current, want), s.at.Sub(t0))
		if s.desired != want {
			t.Errorf("%s: desiredReplicas = %d, want %d; history:\n  %s", step.what, s.desired, want, rec.history(t0))
		}
		e.waitDeployment(ns, name, fmt.Sprintf("%d replicas ready", want), 60*time.Second, func(spec, ready int32) bool { return spec == want && ready == want })
		current = want
		// Settled: the status shows ceil(usage / currentReplicas) and the formula holds on every sync.
		shown := averageValueShown(usage, current)
		e.waitHPA(ns, name, fmt.Sprintf("status averageValue %dm with %d replicas", shown, current), 30*time.Second, func(h *autoscalingv2.HorizontalPodAutoscaler) bool {
			m, ok := currentExternal(h)
			return ok && m == shown && h.Status.CurrentReplicas == current
		})
		settled := time.Now()
		time.Sleep(3 * time.Second) // three HPA syncs
		h, err := e.getHPA(ns, name)
		if err != nil {
			t.Fatal(err)
		}
		if again := expectedAverageValueReplicas(usage, targetMilli, current, minR, maxR); h.Status.DesiredReplicas != again {
			t.Errorf("%s: %s after settling desiredReplicas = %d, want %d (stable); history:\n  %s", step.what, time.Since(settled).Round(time.Second), h.Status.DesiredReplicas, again, rec.history(t0))
		}
	}
	if current != 1 {
		t.Errorf("after the traffic stopped: %d replicas, want 1", current)
	}
	t.Logf("HPA history:\n  %s", rec.history(time.Time{}))
}

// steadyState waits until the baseline gauge has filled a complete 10 s rollup
// bucket, so the measured latency is that of an app that has been reporting for
// a while (the newest complete bucket answers), not of a brand-new series (whose
// open bucket answers at once).
func steadyState(t *testing.T, gaugeStart time.Time) {
	const rollup = 10 * time.Second
	firstBucketEnd := gaugeStart.Truncate(rollup).Add(2 * rollup)
	if d := time.Until(firstBucketEnd); d > 0 {
		t.Logf("waiting %s until the baseline fills a complete %s bucket", d.Round(100*time.Millisecond), rollup)
		time.Sleep(d + 200*time.Millisecond)
	}
}

// Scenario 3: security of xmetrics' own endpoint.
func TestScenario3Security(t *testing.T) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	e := startXmetricsEnv(t, ctx)
	c := e.c
	const ns, metric = "s3", "s3_secret_depth"
	startGauge(t, e.x, metric, "team:a", 7, time.Second)
	path := externalMetricPath(ns, metric, "team=a")

	forged := http.Header{"X-Remote-User": {"system:admin"}, "X-Remote-Group": {"system:masters"}}
	nobodyToken, err := c.ServiceAccountToken(ctx, ns, "nobody")
	if err != nil {
		t.Fatal(err)
	}
	hpaToken, err := c.ServiceAccountToken(ctx, "kube-system", "horizontal-pod-autoscaler")
	if err != nil {
		t.Fatal(err)
	}
	bearer := func(tok string, extra http.Header) http.Header {
		h := http.Header{"Authorization": {"Bearer " + tok}}
		for k, v := range extra {
			h[k] = v
		}
		return h
	}
	// A certificate from the front-proxy CA whose CN is not in requestheader-allowed-names.
	evilPEM, evilKey, err := c.FrontProxyCA.Issue(CertRequest{CommonName: "not-the-front-proxy", Client: true})
	if err != nil {
		t.Fatal(err)
	}
	mallory := e.clientCertClient("mallory") // cluster CA, no RBAC at all
	frontProxy := e.frontProxyClient()
	hpaUser := "system:serviceaccount:kube-system:horizontal-pod-autoscaler"

	cases := []struct {
		name   string
		client *http.Client
		header http.Header
		path   string
		code   int
		// the Status message must contain / must not contain
		want, wantNot string
	}{
		{name: "no credentials", path: path, code: 401},
		{name: "forged X-Remote-User system:admin without any certificate", header: forged, path: path, code: 401},
		{name: "forged X-Remote-User with a front-proxy-CA certificate whose CN is not allowed",
			client: e.tlsClient(evilPEM, evilKey), header: forged, path: path, code: 401},
		{name: "forged X-Remote-User with a cluster-CA certificate of a user without RBAC (is that user)",
			client: mallory, header: forged, path: path, code: 403, want: `user "mallory"`, wantNot: "system:admin"},
		{name: "forged X-Remote-User with a bearer token without RBAC (is that service account)",
			header: bearer(nobodyToken, forged), path: path, code: 403, want: "system:serviceaccount:" + ns + ":nobody", wantNot: "system:admin"},
		{name: "bearer token of a service account without RBAC", header: bearer(nobodyToken, nil), path: path, code: 403,
			want: "system:serviceaccount:" + ns + ":nobody"},
		{name: "bearer token without RBAC on the status endpoint", header: bearer(nobodyToken, nil), path: "/xmetrics/v1/status", code: 403},
		{name: "invalid bearer token", header: bearer("not-a-token", nil), path: path, code: 401},
		{name: "HPA controller's service-account token", header: bearer(hpaToken, nil), path: path, code: 200, want: `"value":"7"`},
		{name: "HPA controller through the front proxy", client: frontProxy,
			header: http.Header{"X-Remote-User": {hpaUser}, "X-Remote-Group": {"system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"}},
			path:   path, code: 200, want: `"value":"7"`},
		{name: "system:masters client certificate (cluster CA)", client: e.clientCertClient("e2e-master", "system:masters"), path: path, code: 200, want: `"value":"7"`},
		{name: "system:masters through the front proxy", client: frontProxy,
			header: http.Header{"X-Remote-User": {"someone-without-rbac"}, "X-Remote-Group": {"system:masters"}}, path: path, code: 200, want: `"value":"7"`},
		{name: "front proxy for a user without RBAC", client: frontProxy,
			header: http.Header{"X-Remote-User": {"mallory"}}, path: path, code: 403, want: `user "mallory"`},
		{name: "/healthz without credentials", path: "/healthz", code: 200},
		{name: "/livez without credentials", path: "/livez", code: 200},
		{name: "/readyz without credentials", path: "/readyz", code: 200},
		{name: "/healthz with forged headers", header: forged, path: "/healthz", code: 200},
	}
	for _, tc := range cases {
		var code int
		var body string
		// A 200 case may race the first fetch of the gauge: allow a few seconds of 5xx/404.
		err := WaitFor(func() (bool, error) {
			var err error
			code, body, err = e.get(tc.client, tc.path, tc.header)
			if err != nil {
				return false, Retry(err)
			}
			return !(tc.code == 200 && (code == 404 || code == 503)), nil
		}, 15*time.Second)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		// For errors the checks apply to the Status message, decoded.
		text := body
		ok := code == tc.code
		if code >= 400 {
			var st struct{ Kind, Reason, Message string }
			if err := json.Unmarshal([]byte(body), &st); err != nil || st.Kind != "Status" || st.Reason != http.StatusText(code) {
				ok = false
			}
			text = st.Message
		}
		ok = ok && (tc.want == "" || strings.Contains(text, tc.want)) && (tc.wantNot == "" || !strings.Contains(text, tc.wantNot))
		if !ok {
			t.Errorf("%s: GET %s → %d %s; want %d (containing %q, not %q, a Status with reason %q for errors)", tc.name, tc.path, code, strings.TrimSpace(body), tc.code, tc.want, tc.wantNot, http.StatusText(tc.code))
		} else {
			t.Logf("ok %-95s → %d %s", tc.name, code, truncate(strings.TrimSpace(body), 200))
		}
	}

	// The same through kube-apiserver: it authorizes before proxying.
	malloryKC, err := c.ClientCertKubeconfig("mallory")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := c.KubectlAs(ctx, malloryKC, "get", "--raw", path); err == nil || !strings.Contains(err.Error(), "Forbidden") {
		t.Errorf("kubectl as mallory through kube-apiserver: want Forbidden, got %v %s", err, out)
	}
	if l, err := e.readMetric(ns, metric, "team=a"); err != nil || len(l.Items) != 1 || l.Items[0].Value != "7" {
		t.Errorf("kubectl as admin through kube-apiserver: %+v %v", l, err)
	}
	recordTiming("scenario 3 %s", time.Since(start).Round(100*time.Millisecond))
}

// Scenario 4: kube-apiserver restarted while xmetrics runs (watches resume, no HPA
// metric lost); xmetrics restarted (APIService Available again, values served
// within one refresh period).
func TestScenario4Resilience(t *testing.T) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	const refresh = 10 * time.Second
	e := startXmetricsEnv(t, ctx, "--refresh-period", "10s", "--rollup", "10")
	c := e.c
	const ns = "s4"
	e.startDeployment(ns, "app-before", 1)
	e.startDeployment(ns, "app-after", 1)
	gBefore := startGauge(t, e.x, "s4_before", "k:a", 11, time.Second)
	e.createHPA(ns, externalHPA("before", "app-before", "s4_before", map[string]string{"k": "a"}, autoscalingv2.ValueMetricType, "100", 1, 3))
	e.waitReference("s4_before", "hpa:s4/before", 30*time.Second)
	e.waitHPA(ns, "before", "HPA before reads 11", 60*time.Second, func(h *autoscalingv2.HorizontalPodAutoscaler) bool {
		m, ok := currentExternal(h)
		return isTrue(h, autoscalingv2.ScalingActive) && ok && m == 11000
	})
	st0, err := e.status()
	if err != nil {
		t.Fatal(err)
	}
	if st0.Kubernetes == nil {
		t.Fatalf("xmetrics' status has no kubernetes section: %v", st0.raw)
	}
	t.Logf("before the apiserver restart: hpaWatch %s; authenticationWatch %s", st0.Kubernetes.HPAWatch, st0.Kubernetes.AuthenticationWatch)

	// --- kube-apiserver restart, while the test watches xmetrics' status every
	// 100 ms for the reference of the HPA made before it.
	lost := make(chan string, 1)
	stopWatching := make(chan struct{})
	watched := make(chan int, 1)
	go func() {
		n := 0
		defer func() { watched <- n }()
		for {
			select {
			case <-stopWatching:
				return
			case <-time.After(100 * time.Millisecond):
			}
			st, err := e.status()
			if err != nil {
				continue // xmetrics does not depend on the apiserver to answer this; logged below if it never answers
			}
			n++
			if !contains(st.references()["s4_before"], "hpa:s4/before") {
				select {
				case lost <- fmt.Sprintf("%v at %s", st.references(), time.Now().Format(time.RFC3339Nano)):
				default:
				}
			}
		}
	}()
	t0 := time.Now()
	if err := c.RestartAPIServer(); err != nil {
		t.Fatal(err)
	}
	t.Logf("kube-apiserver restarted in %s", time.Since(t0).Round(time.Millisecond))
	gAfter := startGauge(t, e.x, "s4_after", "k:b", 22, time.Second)
	e.createHPA(ns, externalHPA("after", "app-after", "s4_after", map[string]string{"k": "b"}, autoscalingv2.ValueMetricType, "100", 1, 3))
	created := time.Now()
	e.waitReference("s4_after", "hpa:s4/after", 60*time.Second)
	t.Logf("HPA created after the restart is in xmetrics' references %s after its creation (%s after the restart began)", time.Since(created).Round(time.Millisecond), time.Since(t0).Round(time.Millisecond))
	recordTiming("scenario 4: apiserver restart → new HPA in status references %s", time.Since(t0).Round(100*time.Millisecond))
	close(stopWatching)
	polls := <-watched
	select {
	case l := <-lost:
		t.Errorf("during the apiserver restart xmetrics' status lost hpa:s4/before: %s", l)
	default:
		t.Logf("hpa:s4/before stayed in xmetrics' references through the apiserver restart (%d status reads)", polls)
	}
	st1, err := e.status()
	if err != nil {
		t.Fatal(err)
	}
	if st1.Kubernetes == nil {
		t.Fatalf("xmetrics' status has no kubernetes section: %v", st1.raw)
	}
	refs := st1.references()
	if !contains(refs["s4_before"], "hpa:s4/before") {
		t.Errorf("HPA metric lost across the apiserver restart: references %v", refs)
	}
	t.Logf("after the apiserver restart: hpaWatch %s; authenticationWatch %s", st1.Kubernetes.HPAWatch, st1.Kubernetes.AuthenticationWatch)
	if !st1.Kubernetes.HPAWatch.Synced || !st1.Kubernetes.AuthenticationWatch.Synced {
		t.Errorf("watches not synced after the apiserver restart: hpa %s; authentication %s", st1.Kubernetes.HPAWatch, st1.Kubernetes.AuthenticationWatch)
	}
	if st1.Kubernetes.AuthenticationWatch.Lists+st1.Kubernetes.AuthenticationWatch.WatchRestarts <= st0.Kubernetes.AuthenticationWatch.Lists+st0.Kubernetes.AuthenticationWatch.WatchRestarts {
		t.Errorf("the authentication watch did not reconnect after the apiserver restart: before %s, after %s", st0.Kubernetes.AuthenticationWatch, st1.Kubernetes.AuthenticationWatch)
	}
	// Both HPAs get fresh values through the restarted apiserver (TokenReview / SAR
	// there, aggregation from there): the HPA made before the restart sees a new value.
	gBefore.Set(12)
	for _, h := range []struct {
		name  string
		milli int64
	}{{"before", 12000}, {"after", 22000}} {
		e.waitHPA(ns, h.name, fmt.Sprintf("HPA %s reads %dm after the apiserver restart", h.name, h.milli), 60*time.Second, func(x *autoscalingv2.HorizontalPodAutoscaler) bool {
			m, ok := currentExternal(x)
			return ok && m == h.milli && isTrue(x, autoscalingv2.ScalingActive)
		})
	}
	// A deletion after the restart reaches xmetrics too.
	if err := c.Client.AutoscalingV2().HorizontalPodAutoscalers(ns).Delete(ctx, "before", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	mustWait(t, "HPA before's reference gone from xmetrics' status", 30*time.Second, func() (bool, error) {
		st, err := e.status()
		if err != nil {
			return false, Retry(err)
		}
		return !contains(st.references()["s4_before"], "hpa:s4/before"), nil
	})

	// --- xmetrics restart. Timed from the start of the new process (the old one's
	// shutdown is reported separately).
	rec := e.recordHPA(ns, "after")
	t1 := time.Now()
	e.x.Stop()
	stopTook := time.Since(t1)
	t1 = time.Now()
	if err := e.x.Restart(); err != nil {
		t.Fatal(err)
	}
	healthy := time.Since(t1)
	e.waitReady(60 * time.Second)
	ready := time.Since(t1)
	if _, err := c.WaitAPIServiceAvailable(ctx, apiServiceName, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	availableAt := time.Since(t1)
	var servedAt time.Duration
	var last string
	if err := WaitFor(func() (bool, error) {
		l, err := e.readMetric(ns, "s4_after", "k=b")
		if err != nil {
			last = err.Error()
			return false, Retry(err)
		}
		if len(l.Items) == 1 && l.Items[0].Value == "22" {
			servedAt = time.Since(t1)
			return true, nil
		}
		last = fmt.Sprintf("%+v", l)
		return false, nil
	}, 2*refresh+30*time.Second); err != nil {
		t.Fatalf("value of s4_after through kube-apiserver after the xmetrics restart: %v (last: %s)", err, last)
	}
	t.Logf("xmetrics restart: old process stopped in %s; new process: /healthz %s, /readyz %s, APIService Available %s, value served through kube-apiserver %s after it started (refresh period %s)",
		stopTook.Round(time.Millisecond), healthy.Round(time.Millisecond), ready.Round(time.Millisecond), availableAt.Round(time.Millisecond), servedAt.Round(time.Millisecond), refresh)
	recordTiming("scenario 4: xmetrics restart → stop %s, /readyz %s, value served through kube-apiserver %s after start (refresh period %s)", stopTook.Round(100*time.Millisecond), ready.Round(100*time.Millisecond), servedAt.Round(100*time.Millisecond), refresh)
	if servedAt > refresh {
		t.Errorf("after the xmetrics restart the value was served %s after the new process started, more than one refresh period (%s); the HPA meanwhile:\n  %s",
			servedAt.Round(time.Millisecond), refresh, rec.history(t1))
	}
	// The HPA's metric is referenced again (re-listed by the new process) and the HPA
	// reads a value only the restarted xmetrics has seen.
	e.waitReference("s4_after", "hpa:s4/after", 30*time.Second)
	gAfter.Set(23)
	e.waitHPA(ns, "after", "HPA after reads 23 from the restarted xmetrics", 60*time.Second, func(h *autoscalingv2.HorizontalPodAutoscaler) bool {
		m, ok := currentExternal(h)
		return ok && m == 23000 && isTrue(h, autoscalingv2.ScalingActive)
	})
	t.Logf("HPA s4/after from the xmetrics restart on:\n  %s", rec.history(t1))
	recordTiming("scenario 4 %s", time.Since(start).Round(100*time.Millisecond))
}

// Scenario 5: an HPA whose metric has no data shows ScalingActive=False with a
// message (xmetrics' Status) that names the query and says there is no data.
func TestScenario5NoDataCondition(t *testing.T) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	e := startXmetricsEnv(t, ctx)
	const ns, name, metric = "s5", "web", "s5_missing_depth"
	e.startDeployment(ns, name, 1)
	// Another series of the same name exists, but not with the HPA's tags.
	startGauge(t, e.x, metric, "queue:real", 5, time.Second)
	e.createHPA(ns, externalHPA(name, name, metric, map[string]string{"queue": "ghost"}, autoscalingv2.ValueMetricType, "10", 1, 3))
	e.waitReference(metric, "hpa:"+ns+"/"+name, 30*time.Second)

	var query string
	mustWait(t, "xmetrics' status names the query of the HPA's metric", 30*time.Second, func() (bool, error) {
		st, err := e.status()
		if err != nil {
			return false, Retry(err)
		}
		for _, m := range st.Metrics {
			if m.MetricName == metric && contains(m.References, "hpa:"+ns+"/"+name) {
				query = m.Query
				t.Logf("status: %s{%s} query=%q valid=%v error=%q", m.MetricName, m.Selector, m.Query, m.Valid, m.Error)
				if m.Valid {
					return false, fmt.Errorf("metric %s with no data is valid in status: %+v", metric, m)
				}
				return query != "", nil
			}
		}
		return false, nil
	})
	var cond *autoscalingv2.HorizontalPodAutoscalerCondition
	e.waitHPA(ns, name, "ScalingActive=False", 60*time.Second, func(h *autoscalingv2.HorizontalPodAutoscaler) bool {
		cond = findCondition(h, autoscalingv2.ScalingActive)
		return cond != nil && cond.Status == corev1.ConditionFalse && strings.Contains(cond.Message, "external metrics API")
	})
	t.Logf("HPA %s/%s ScalingActive=%s reason=%s message=%q", ns, name, cond.Status, cond.Reason, cond.Message)
	if cond.Reason != "FailedGetExternalMetric" {
		t.Errorf("reason %q, want FailedGetExternalMetric", cond.Reason)
	}
	for _, want := range []string{query, "no series matches", metric} {
		if !strings.Contains(cond.Message, want) {
			t.Errorf("ScalingActive message does not contain %q: %s", want, cond.Message)
		}
	}

	// A name nothing was ever sent under, without a selector (the HPA then sends no labelSelector).
	const name2, metric2 = "web2", "s5_never_sent"
	e.startDeployment(ns, name2, 1)
	e.createHPA(ns, externalHPA(name2, name2, metric2, nil, autoscalingv2.AverageValueMetricType, "10", 1, 3))
	e.waitReference(metric2, "hpa:"+ns+"/"+name2, 30*time.Second)
	query2 := ""
	if st, err := e.status(); err == nil {
		for _, m := range st.Metrics {
			if m.MetricName == metric2 {
				query2 = m.Query
			}
		}
	}
	if query2 == "" {
		t.Fatalf("no query for %s in xmetrics' status", metric2)
	}
	e.waitHPA(ns, name2, "ScalingActive=False (metric never sent)", 60*time.Second, func(h *autoscalingv2.HorizontalPodAutoscaler) bool {
		cond = findCondition(h, autoscalingv2.ScalingActive)
		return cond != nil && cond.Status == corev1.ConditionFalse && strings.Contains(cond.Message, "external metrics API")
	})
	t.Logf("HPA %s/%s ScalingActive=%s reason=%s message=%q", ns, name2, cond.Status, cond.Reason, cond.Message)
	for _, want := range []string{query2, "no series matches"} {
		if !strings.Contains(cond.Message, want) {
			t.Errorf("ScalingActive message of %s does not contain %q: %s", name2, want, cond.Message)
		}
	}
	recordTiming("scenario 5 %s", time.Since(start).Round(100*time.Millisecond))
}

// ---------------------------------------------------------------------------

func isTrue(h *autoscalingv2.HorizontalPodAutoscaler, typ autoscalingv2.HorizontalPodAutoscalerConditionType) bool {
	c := findCondition(h, typ)
	return c != nil && c.Status == corev1.ConditionTrue
}

// waitHPA waits until cond holds for the HPA; on timeout it fails with its state.
func (e *xmEnv) waitHPA(ns, name, what string, timeout time.Duration, cond func(*autoscalingv2.HorizontalPodAutoscaler) bool) {
	e.t.Helper()
	start := time.Now()
	var last *autoscalingv2.HorizontalPodAutoscaler
	err := WaitFor(func() (bool, error) {
		h, err := e.getHPA(ns, name)
		if err != nil {
			return false, Retry(err)
		}
		last = h
		return cond(h), nil
	}, timeout)
	if err != nil {
		state := "<never read>"
		if last != nil {
			state = hpaText(last)
		}
		e.t.Fatalf("waiting for %s (HPA %s/%s): %v; last: %s", what, ns, name, err, state)
	}
	e.t.Logf("%s: %s", what, time.Since(start).Round(time.Millisecond))
}

func (e *xmEnv) waitDeployment(ns, name, what string, timeout time.Duration, cond func(spec, ready int32) bool) {
	e.t.Helper()
	start := time.Now()
	var last string
	err := WaitFor(func() (bool, error) {
		d, err := e.c.Client.AppsV1().Deployments(ns).Get(e.ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, Retry(err)
		}
		last = fmt.Sprintf("spec=%d replicas=%d ready=%d", *d.Spec.Replicas, d.Status.Replicas, d.Status.ReadyReplicas)
		return d.Status.Replicas == *d.Spec.Replicas && cond(*d.Spec.Replicas, d.Status.ReadyReplicas), nil
	}, timeout)
	if err != nil {
		e.t.Fatalf("waiting for deployment %s/%s %s: %v (last %s)", ns, name, what, err, last)
	}
	e.t.Logf("deployment %s/%s %s: %s", ns, name, what, time.Since(start).Round(time.Millisecond))
}

// waitReference waits until xmetrics' status lists ref among the metric's references.
func (e *xmEnv) waitReference(metric, ref string, timeout time.Duration) {
	e.t.Helper()
	start := time.Now()
	var last string
	err := WaitFor(func() (bool, error) {
		st, err := e.status()
		if err != nil {
			last = err.Error()
			return false, Retry(err)
		}
		refs := st.references()
		last = fmt.Sprintf("%v", refs)
		return contains(refs[metric], ref), nil
	}, timeout)
	if err != nil {
		e.t.Fatalf("waiting for %s in the references of %s in xmetrics' status: %v (last: %s)", ref, metric, err, last)
	}
	e.t.Logf("xmetrics status: %s references %s: %s", ref, metric, time.Since(start).Round(time.Millisecond))
}

// waitDesiredChange waits until the recorder saw desiredReplicas differ from `from` after t0.
func (e *xmEnv) waitDesiredChange(rec *hpaRecorder, t0 time.Time, from int32, timeout time.Duration) hpaSample {
	e.t.Helper()
	return e.waitSample(rec, t0, fmt.Sprintf("HPA desiredReplicas still %d %s after the DogStatsD change", from, timeout), timeout,
		func(s hpaSample) bool { return s.desired != from })
}

// waitSample waits until the recorder saw a sample after t0 for which match holds;
// on timeout it fails with `failure` and the history since t0.
func (e *xmEnv) waitSample(rec *hpaRecorder, t0 time.Time, failure string, timeout time.Duration, match func(hpaSample) bool) hpaSample {
	e.t.Helper()
	var s hpaSample
	err := WaitFor(func() (bool, error) {
		var ok bool
		s, ok = rec.firstAfter(t0, match)
		return ok, nil
	}, timeout)
	if err != nil {
		e.t.Fatalf("%s: %v; history:\n  %s", failure, err, rec.history(t0))
	}
	return s
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
