package e2e

// Scenarios of the DatadogMetric CRD mode (xmetrics serve --use-datadogmetric-crd=true),
// one test each. Like the issue-3 scenarios every test starts its own control plane and
// deploys xmetrics from deploy/manifests (startXmetricsEnv: the CRD of
// 05-datadogmetric-crd.yaml is Established before xmetrics starts, and xmetrics runs with
// its service account's token, so its DatadogMetric permissions are those of 10-rbac.yaml).
//
//	tests/e2e/run.sh -run TestDatadogMetric -v
//
// DatadogMetric objects are applied with kubectl from the YAML Datadog's documentation
// shows (apiVersion datadoghq.com/v1alpha1, metadata, spec.query), as a user would; the
// tests read them back with a dynamic client. Their queries read DogStatsD data of the
// embedded backend.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
)

var datadogMetricGVR = schema.GroupVersionResource{Group: "datadoghq.com", Version: "v1alpha1", Resource: "datadogmetrics"}

const (
	dmRefresh = time.Second // --refresh-period of these scenarios
	dmHPASync = time.Second // kube-controller-manager --horizontal-pod-autoscaler-sync-period
	// dmTakeOver bounds "DatadogMetric object changed → the HPA's status shows it": one
	// refresh period and one HPA sync, plus a margin for the watch event, the HPA's status
	// write and this 2-core machine being busy.
	dmTakeOver = dmRefresh + dmHPASync + 3*time.Second
	// dmRollup is --rollup: inline queries end in .rollup(10), the embedded store's resolution.
	dmRollup = 10
	// dmClusterName is --cluster-name, what %%tag_kube_cluster_name%% stands for in a query.
	dmClusterName = "xm-e2e"
)

// dmEnv is an xmEnv whose xmetrics runs in DatadogMetric CRD mode, plus a dynamic client
// for DatadogMetric objects (the CRD has no typed client).
type dmEnv struct {
	*xmEnv
	dyn dynamic.Interface
}

// startDatadogMetricEnv is startXmetricsEnv with CRD mode on: short refresh and rollup
// (as scenario 2), autogen objects in xmetrics' own namespace, a cluster name for the
// template variable; args add to (or replace) these.
func startDatadogMetricEnv(t *testing.T, ctx context.Context, args ...string) *dmEnv {
	t.Helper()
	base := []string{
		"--refresh-period=" + dmRefresh.String(),
		"--rollup=" + strconv.Itoa(dmRollup),
		"--use-datadogmetric-crd=true",
		"--namespace=" + XmetricsNamespace,
		"--cluster-name=" + dmClusterName,
	}
	e := startXmetricsEnv(t, ctx, append(base, args...)...)
	dyn, err := dynamic.NewForConfig(e.c.RESTConfig)
	if err != nil {
		t.Fatal(err)
	}
	d := &dmEnv{xmEnv: e, dyn: dyn}
	t.Cleanup(func() {
		if t.Failed() {
			d.dumpDatadogMetrics()
		}
	})
	return d
}

// ---------------------------------------------------------------------------
// DatadogMetric objects

// datadogMetric is a DatadogMetric as the CRD defines it.
type datadogMetric struct {
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Query              string `json:"query"`
		ExternalMetricName string `json:"externalMetricName"`
		MaxAge             string `json:"maxAge"`
		TimeWindow         string `json:"timeWindow"`
	} `json:"spec"`
	Status struct {
		CurrentValue         string `json:"currentValue"`
		AutoscalerReferences string `json:"autoscalerReferences"`
		Conditions           []struct {
			Type               string `json:"type"`
			Status             string `json:"status"`
			Reason             string `json:"reason"`
			Message            string `json:"message"`
			LastTransitionTime string `json:"lastTransitionTime"`
			LastUpdateTime     string `json:"lastUpdateTime"`
		} `json:"conditions"`
	} `json:"status"`
}

// condition is the status ("True", "False", …) of the condition typ, "" when absent.
func (m *datadogMetric) condition(typ string) string {
	for _, c := range m.Status.Conditions {
		if c.Type == typ {
			return c.Status
		}
	}
	return ""
}

// references is status.autoscalerReferences split ("hpa:a/x, hpa:b/y").
func (m *datadogMetric) references() []string {
	var out []string
	for _, r := range strings.Split(m.Status.AutoscalerReferences, ",") {
		if r = strings.TrimSpace(r); r != "" {
			out = append(out, r)
		}
	}
	return out
}

// valueIs: status.currentValue is a plain decimal equal to want.
func (m *datadogMetric) valueIs(want float64) bool {
	v, err := strconv.ParseFloat(m.Status.CurrentValue, 64)
	return err == nil && v == want
}

func (m *datadogMetric) String() string {
	if m == nil {
		return "<absent>"
	}
	var conds []string
	for _, c := range m.Status.Conditions {
		s := c.Type + "=" + c.Status
		if c.Reason != "" || c.Message != "" {
			s += "(" + c.Reason + ": " + truncate(c.Message, 300) + ")"
		}
		conds = append(conds, s)
	}
	ext := ""
	if m.Spec.ExternalMetricName != "" {
		ext = " externalMetricName=" + m.Spec.ExternalMetricName
	}
	return fmt.Sprintf("%s/%s query=%q%s value=%q references=%q conditions=[%s]", m.Namespace, m.Name, m.Spec.Query, ext,
		m.Status.CurrentValue, m.Status.AutoscalerReferences, strings.Join(conds, "; "))
}

// applyDatadogMetric writes the object as Datadog's documentation shows it and applies it
// with kubectl, as a user would; returns when kubectl has (the object exists).
func (d *dmEnv) applyDatadogMetric(ns, name, query string) time.Time {
	d.t.Helper()
	if err := d.c.EnsureNamespace(d.ctx, ns); err != nil {
		d.t.Fatal(err)
	}
	f, err := os.CreateTemp(d.c.Dir, "datadogmetric-"+ns+"-"+name+"-*.yaml")
	if err != nil {
		d.t.Fatal(err)
	}
	fmt.Fprintf(f, "apiVersion: datadoghq.com/v1alpha1\nkind: DatadogMetric\nmetadata:\n  name: %s\n  namespace: %s\nspec:\n  query: %s\n",
		name, ns, strconv.Quote(query))
	f.Close()
	if out, err := d.c.Kubectl(d.ctx, "apply", "-f", f.Name()); err != nil {
		d.t.Fatalf("kubectl apply DatadogMetric %s/%s: %v\n%s", ns, name, err, out)
	}
	return time.Now()
}

func (d *dmEnv) getDatadogMetric(ns, name string) (*datadogMetric, error) {
	u, err := d.dyn.Resource(datadogMetricGVR).Namespace(ns).Get(d.ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(u.Object)
	if err != nil {
		return nil, err
	}
	var m datadogMetric
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("DatadogMetric %s/%s: %v: %s", ns, name, err, b)
	}
	return &m, nil
}

// listDatadogMetrics lists the objects of ns ("" = every namespace), sorted by namespace/name.
func (d *dmEnv) listDatadogMetrics(ns string) ([]*datadogMetric, error) {
	l, err := d.dyn.Resource(datadogMetricGVR).Namespace(ns).List(d.ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	var out []*datadogMetric
	for _, u := range l.Items {
		b, err := json.Marshal(u.Object)
		if err != nil {
			return nil, err
		}
		var m datadogMetric
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("DatadogMetric: %v: %s", err, b)
		}
		out = append(out, &m)
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Namespace+"/"+out[i].Name < out[j].Namespace+"/"+out[j].Name
	})
	return out, nil
}

// deleteDatadogMetric deletes the object with kubectl (waiting for it to be gone).
func (d *dmEnv) deleteDatadogMetric(ns, name string) time.Time {
	d.t.Helper()
	if out, err := d.c.Kubectl(d.ctx, "delete", "datadogmetric", "-n", ns, name, "--wait=true"); err != nil {
		d.t.Fatalf("kubectl delete DatadogMetric %s/%s: %v\n%s", ns, name, err, out)
	}
	return time.Now()
}

// waitDatadogMetric waits until cond holds for the object (nil = it does not exist); on
// timeout it fails with the object's last state and the other objects of its namespace.
func (d *dmEnv) waitDatadogMetric(ns, name, what string, timeout time.Duration, cond func(*datadogMetric) bool) *datadogMetric {
	d.t.Helper()
	start := time.Now()
	var last *datadogMetric
	err := WaitFor(func() (bool, error) {
		m, err := d.getDatadogMetric(ns, name)
		if apierrors.IsNotFound(err) {
			last = nil
			return cond(nil), nil
		}
		if err != nil {
			return false, Retry(err)
		}
		last = m
		return cond(m), nil
	}, timeout)
	if err != nil {
		var others []string
		if l, lerr := d.listDatadogMetrics(ns); lerr == nil {
			for _, m := range l {
				others = append(others, m.String())
			}
		}
		d.t.Fatalf("waiting for %s (DatadogMetric %s/%s): %v; last: %s; objects in %s:\n  %s", what, ns, name, err, last, ns, strings.Join(others, "\n  "))
	}
	d.t.Logf("%s: %s", what, time.Since(start).Round(time.Millisecond))
	return last
}

// waitAutogen waits for the object xmetrics generates for an inline metric: in its own
// namespace, named after the query as the Cluster Agent names it, with the query and the
// metric name in its spec.
func (d *dmEnv) waitAutogen(metric, query string, timeout time.Duration) *datadogMetric {
	d.t.Helper()
	name := autogenName(query)
	m := d.waitDatadogMetric(XmetricsNamespace, name, fmt.Sprintf("autogen DatadogMetric for %q", query), timeout,
		func(m *datadogMetric) bool { return m != nil })
	if m.Spec.Query != query || m.Spec.ExternalMetricName != metric {
		d.t.Errorf("autogen object %s: spec.query %q, spec.externalMetricName %q; want %q, %q", name, m.Spec.Query, m.Spec.ExternalMetricName, query, metric)
	}
	return m
}

// autogenName is the Cluster Agent's name for the object generated for an inline query:
// "dcaautogen-" + hex of the first 19 bytes of SHA-256 of the query.
func autogenName(query string) string {
	sum := sha256.Sum256([]byte(query))
	return "dcaautogen-" + hex.EncodeToString(sum[:19])
}

// inlineQuery is the query xmetrics builds for an inline HPA metric (the Cluster Agent's
// form, aggregator avg, --rollup dmRollup): tags key:value sorted, {*} without labels.
func inlineQuery(metric string, labels map[string]string) string {
	filter := "*"
	if len(labels) > 0 {
		var tags []string
		for _, k := range sortedKeys(labels) {
			tags = append(tags, k+":"+labels[k])
		}
		filter = strings.Join(tags, ",")
	}
	return fmt.Sprintf("avg:%s{%s}.rollup(%d)", metric, filter, dmRollup)
}

func (d *dmEnv) dumpDatadogMetrics() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cp := *d
	cp.xmEnv = d.with(d.t)
	cp.ctx = ctx
	l, err := cp.listDatadogMetrics("")
	if err != nil {
		d.t.Logf("DatadogMetrics: %v", err)
		return
	}
	for _, m := range l {
		d.t.Logf("---- DatadogMetric %s", m)
	}
}

// rawGet GETs path from kube-apiserver as admin and returns the HTTP status and the body
// (for an error, the Status xmetrics answered: what the HPA controller reports). The body
// is decoded here rather than by client-go, whose discovery client turns a Status it does
// not decode into a generic "could not find the requested resource".
func (d *dmEnv) rawGet(path string) (int, string) {
	var code int
	body, _ := d.c.Client.Discovery().RESTClient().Get().AbsPath(path).Do(d.ctx).StatusCode(&code).Raw()
	return code, string(body)
}

// activeTrueWith: a recorder sample where ScalingActive is True and the metric is milli.
func activeTrueWith(milli int64) func(hpaSample) bool {
	return func(s hpaSample) bool { return s.active == "True" && s.hasMet && s.metric == milli }
}

// ---------------------------------------------------------------------------
// Scenarios

// Scenario 1a, the incident behind this project: an HPA names proxy-dynamic-min-replicas
// before the DatadogMetric of that name exists in its namespace. The Cluster Agent mapped
// the metric to an autogen object and kept that mapping after the manual object arrived
// ("DatadogMetric not found", while kubectl showed the manual object Active) until its pod
// was restarted. xmetrics: the HPA first fails with a message naming the inline query,
// then reads the manual object's value within one refresh period of its creation, with the
// same xmetrics process.
func TestDatadogMetricScenario1aIncidentManualObjectAfterHPA(t *testing.T) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	d := startDatadogMetricEnv(t, ctx)
	const ns, name, metric = "dm1a", "proxy", "proxy-dynamic-min-replicas"
	const source = "xm.e2e.dm.proxy_min_replicas" // what the manual object will read
	d.startDeployment(ns, name, 1)
	startGauge(t, d.x, source, "app:proxy", 3, time.Second)
	// Value 3 against a target of 1 from 1 ready pod: ceil(3 × 1) = 3 = maxReplicas, where it stays.
	const minR, maxR = int32(1), int32(3)
	d.createHPA(ns, externalHPA(name, name, metric, nil, autoscalingv2.ValueMetricType, "1", minR, maxR))
	rec := d.recordHPA(ns, name)
	pid := d.x.Pid()

	// Before the object: the inline query (served through its autogen object) cannot be
	// answered: with '-' the name is not even a valid Datadog metric name. The HPA's
	// message names the query, so the user sees what was asked instead of their object.
	query := inlineQuery(metric, nil)
	var cond *autoscalingv2.HorizontalPodAutoscalerCondition
	d.waitHPA(ns, name, "ScalingActive=False before the DatadogMetric exists", 60*time.Second, func(h *autoscalingv2.HorizontalPodAutoscaler) bool {
		cond = findCondition(h, autoscalingv2.ScalingActive)
		return cond != nil && cond.Status == corev1.ConditionFalse && strings.Contains(cond.Message, "external metrics API")
	})
	// The first failure may come before xmetrics has an answer of its own; give it a few syncs.
	clearMessage := func(c *autoscalingv2.HorizontalPodAutoscalerCondition) bool {
		return c != nil && c.Status == corev1.ConditionFalse && c.Reason == "FailedGetExternalMetric" && strings.Contains(c.Message, query)
	}
	if err := WaitFor(func() (bool, error) {
		h, err := d.getHPA(ns, name)
		if err != nil {
			return false, Retry(err)
		}
		cond = findCondition(h, autoscalingv2.ScalingActive)
		return clearMessage(cond), nil
	}, 15*time.Second); err != nil {
		t.Errorf("before the DatadogMetric exists: want ScalingActive=False, reason FailedGetExternalMetric, a message with the query %q; got %+v", query, cond)
	}
	t.Logf("before the DatadogMetric: HPA %s/%s ScalingActive=%s reason=%s message=%q", ns, name, cond.Status, cond.Reason, cond.Message)
	auto := d.waitAutogen(metric, query, 30*time.Second)
	t.Logf("autogen object: %s", auto)

	// The user creates the DatadogMetric the HPA meant: same name, the HPA's namespace.
	t0 := d.applyDatadogMetric(ns, metric, "max:"+source+"{app:proxy}.rollup(10)")
	s := d.waitSample(rec, t0, "the HPA never read the manual DatadogMetric's value 3", 60*time.Second, activeTrueWith(3000))
	took := s.at.Sub(t0)
	t.Logf("DatadogMetric %s/%s applied → HPA ScalingActive=True with value 3 after %s (bound %s)", ns, metric, took.Round(10*time.Millisecond), dmTakeOver)
	recordTiming("DatadogMetric scenario 1a: manual object applied after the HPA → HPA reads it %s", took.Round(10*time.Millisecond))
	if took > dmTakeOver {
		t.Errorf("the HPA read the manual DatadogMetric %s after it was applied, more than one refresh period + HPA sync + margin (%s); history:\n  %s",
			took.Round(10*time.Millisecond), dmTakeOver, rec.history(t0))
	}
	want := expectedValueReplicas(3000, 1000, 1, 1, minR, maxR)
	d.waitDeployment(ns, name, fmt.Sprintf("%d replicas on the manual object's value (ceil(3/1 × 1))", want), 60*time.Second,
		func(spec, ready int32) bool { return spec == want && ready == want })

	// What `kubectl get datadogmetrics` shows agrees: the manual object is the one in use.
	m := d.waitDatadogMetric(ns, metric, "manual object Active, Valid, value 3, referenced by the HPA", 30*time.Second, func(m *datadogMetric) bool {
		return m != nil && m.condition("Active") == "True" && m.condition("Valid") == "True" && m.valueIs(3) &&
			contains(m.references(), "hpa:"+ns+"/"+name)
	})
	t.Logf("manual object: %s", m)
	if d.x.Pid() != pid {
		t.Errorf("xmetrics' pid changed from %d to %d: the switch must not need a restart", pid, d.x.Pid())
	}
	t.Logf("HPA history:\n  %s", rec.history(time.Time{}))
	recordTiming("DatadogMetric scenario 1a %s", time.Since(start).Round(100*time.Millisecond))
}

// Scenario 1b: an HPA on an inline metric that has data is served through its autogen
// object; then the user applies a DatadogMetric named like the metric in the HPA's
// namespace, reading another series with another value, and the HPA follows it within one
// refresh period.
func TestDatadogMetricScenario1bManualObjectReplacesAutogen(t *testing.T) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	d := startDatadogMetricEnv(t, ctx)
	// A metric name that is also a valid object name (lowercase, digits, '-', '.'), so a
	// DatadogMetric can be named exactly like it.
	const ns, name, metric = "dm1b", "web", "xm.e2e.dm.requests"
	const manualSource = "xm.e2e.dm.requests_manual"
	selector := map[string]string{"app": "web"}
	const minR, maxR = int32(1), int32(8)
	d.startDeployment(ns, name, 1)
	startGauge(t, d.x, metric, "app:web", 2, time.Second)
	startGauge(t, d.x, manualSource, "app:web", 5, time.Second)
	// AverageValue 1: desired = ceil(value / 1), 2 on the inline value, 5 on the manual one.
	d.createHPA(ns, externalHPA(name, name, metric, selector, autoscalingv2.AverageValueMetricType, "1", minR, maxR))
	rec := d.recordHPA(ns, name)

	query := inlineQuery(metric, selector)
	auto := d.waitAutogen(metric, query, 30*time.Second)
	wantInline := expectedAverageValueReplicas(2000, 1000, 1, minR, maxR)
	d.waitDeployment(ns, name, fmt.Sprintf("%d replicas on the inline value 2", wantInline), 60*time.Second,
		func(spec, ready int32) bool { return spec == wantInline && ready == wantInline })
	d.waitHPA(ns, name, fmt.Sprintf("HPA reads the inline value 2 over %d replicas", wantInline), 30*time.Second, func(h *autoscalingv2.HorizontalPodAutoscaler) bool {
		m, ok := currentExternal(h)
		return isTrue(h, autoscalingv2.ScalingActive) && ok && m == averageValueShown(2000, wantInline) && h.Status.DesiredReplicas == wantInline
	})
	a := d.waitDatadogMetric(XmetricsNamespace, auto.Name, "autogen object holds the inline value 2 and names the HPA", 30*time.Second, func(m *datadogMetric) bool {
		return m != nil && m.valueIs(2) && contains(m.references(), "hpa:"+ns+"/"+name)
	})
	t.Logf("autogen object: %s", a)

	// The manual object: named like the metric, in the HPA's namespace, another query.
	manualQuery := "max:" + manualSource + "{app:web}.rollup(10)"
	t0 := d.applyDatadogMetric(ns, metric, manualQuery)
	s := d.waitSample(rec, t0, fmt.Sprintf("HPA desiredReplicas still %d after the manual DatadogMetric was applied", wantInline), 60*time.Second,
		func(s hpaSample) bool { return s.desired != wantInline })
	took := s.at.Sub(t0)
	want := expectedAverageValueReplicas(5000, 1000, wantInline, minR, maxR)
	t.Logf("DatadogMetric %s/%s applied → HPA desiredReplicas %d → %d after %s (formula: ceil(5/1) = %d; bound %s)", ns, metric, wantInline, s.desired, took.Round(10*time.Millisecond), want, dmTakeOver)
	recordTiming("DatadogMetric scenario 1b: manual object replaces autogen → HPA desiredReplicas %d→%d %s", wantInline, s.desired, took.Round(10*time.Millisecond))
	if s.desired != want {
		t.Errorf("desiredReplicas after the manual object = %d, want %d (value 5); history:\n  %s", s.desired, want, rec.history(t0))
	}
	if took > dmTakeOver {
		t.Errorf("the HPA switched to the manual DatadogMetric %s after it was applied, more than one refresh period + HPA sync + margin (%s); history:\n  %s",
			took.Round(10*time.Millisecond), dmTakeOver, rec.history(t0))
	}
	d.waitDeployment(ns, name, fmt.Sprintf("%d replicas on the manual value 5", want), 60*time.Second,
		func(spec, ready int32) bool { return spec == want && ready == want })
	m := d.waitDatadogMetric(ns, metric, "manual object Valid, value 5, referenced by the HPA", 30*time.Second, func(m *datadogMetric) bool {
		return m != nil && m.condition("Valid") == "True" && m.valueIs(5) && contains(m.references(), "hpa:"+ns+"/"+name)
	})
	t.Logf("manual object: %s", m)
	t.Logf("HPA history:\n  %s", rec.history(time.Time{}))
	recordTiming("DatadogMetric scenario 1b %s", time.Since(start).Round(100*time.Millisecond))
}

// Scenario 2: an HPA names datadogmetric@<ns>:<name> and scales a Deployment on the
// object's query (tag filters, %%tag_kube_cluster_name%% from --cluster-name) up and back
// down; the object's status carries the value, Valid=True and the HPAs that name it, and
// `kubectl get datadogmetric` prints Datadog's columns.
func TestDatadogMetricScenario2ReferenceScalesDeployment(t *testing.T) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	d := startDatadogMetricEnv(t, ctx)
	const ns, name, object = "dm2", "worker", "dm2-queue"
	const metric = "datadogmetric@" + ns + ":" + object
	const source = "xm.e2e.dm.queue_depth"
	const targetMilli, minR, maxR = int64(10000), int32(1), int32(6)
	d.startDeployment(ns, name, 1)
	gaugeStart := time.Now()
	g := startGauge(t, d.x, source, "queue:jobs,kube_cluster_name:"+dmClusterName, 2, time.Second)
	// The same series name from another cluster: only the template variable keeps it out.
	startGauge(t, d.x, source, "queue:jobs,kube_cluster_name:other-cluster", 500, time.Second)
	d.applyDatadogMetric(ns, object, "avg:"+source+"{queue:jobs,kube_cluster_name:%%tag_kube_cluster_name%%}.rollup(10)")
	d.createHPA(ns, externalHPA(name, name, metric, nil, autoscalingv2.AverageValueMetricType, "10", minR, maxR))
	rec := d.recordHPA(ns, name)
	d.waitHPA(ns, name, "ScalingActive=True, average 2, desired 1", 60*time.Second, func(h *autoscalingv2.HorizontalPodAutoscaler) bool {
		m, ok := currentExternal(h)
		return isTrue(h, autoscalingv2.ScalingActive) && ok && m == averageValueShown(2000, 1) && h.Status.DesiredReplicas == 1
	})
	ref := "hpa:" + ns + "/" + name
	m := d.waitDatadogMetric(ns, object, "status: value 2, Valid=True, Active=True, references "+ref, 30*time.Second, func(m *datadogMetric) bool {
		return m != nil && m.valueIs(2) && m.condition("Valid") == "True" && m.condition("Active") == "True" && m.Status.AutoscalerReferences == ref
	})
	t.Logf("object: %s", m)

	// A second HPA naming the same object (its target does not exist, so it never scales:
	// it only references): autoscalerReferences lists both, sorted, comma+space separated,
	// and drops it again when it goes.
	d.createHPA(ns, externalHPA("audit", "audit-absent", metric, nil, autoscalingv2.AverageValueMetricType, "10", 1, 2))
	both := "hpa:" + ns + "/audit, " + ref
	d.waitDatadogMetric(ns, object, "references "+both, 30*time.Second, func(m *datadogMetric) bool {
		return m != nil && m.Status.AutoscalerReferences == both
	})
	if err := d.c.Client.AutoscalingV2().HorizontalPodAutoscalers(ns).Delete(ctx, "audit", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	d.waitDatadogMetric(ns, object, "references "+ref+" after the second HPA is deleted", 30*time.Second, func(m *datadogMetric) bool {
		return m != nil && m.Status.AutoscalerReferences == ref
	})

	// Datadog's printer columns, filled from xmetrics' status.
	out, err := d.c.Kubectl(ctx, "get", "datadogmetric", "-n", ns, object)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kubectl get datadogmetric:\n%s", out)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Errorf("kubectl get datadogmetric -n %s %s: want a header and one row, got:\n%s", ns, object, out)
	} else {
		for _, col := range []string{"NAME", "ACTIVE", "VALID", "VALUE", "REFERENCES", "UPDATE TIME"} {
			if !strings.Contains(lines[0], col) {
				t.Errorf("kubectl get datadogmetric: no column %s in %q", col, lines[0])
			}
		}
		if f := strings.Fields(lines[1]); len(f) < 5 || f[0] != object || f[1] != "True" || f[2] != "True" || f[4] != ref {
			t.Errorf("kubectl get datadogmetric row %q: want %s True True <value> %s <age>", lines[1], object, ref)
		}
	}

	steadyState(t, gaugeStart)
	current := int32(1)
	for _, step := range []struct {
		value float64
		what  string
	}{{42, "traffic up"}, {0, "traffic stopped"}} {
		usage := int64(step.value * 1000)
		want := expectedAverageValueReplicas(usage, targetMilli, current, minR, maxR)
		t0 := g.Set(step.value)
		s := d.waitDesiredChange(rec, t0, current, 60*time.Second)
		t.Logf("%s: value → %v: HPA desiredReplicas %d → %d after %s (formula: ceil(%v/10) = %d)", step.what, step.value, current, s.desired, s.at.Sub(t0).Round(10*time.Millisecond), step.value, want)
		recordLatency(fmt.Sprintf("DatadogMetric %d→%d", current, want), s.at.Sub(t0))
		if s.desired != want {
			t.Errorf("%s: desiredReplicas = %d, want %d; history:\n  %s", step.what, s.desired, want, rec.history(t0))
		}
		d.waitDeployment(ns, name, fmt.Sprintf("%d replicas ready", want), 60*time.Second, func(spec, ready int32) bool { return spec == want && ready == want })
		current = want
		m := d.waitDatadogMetric(ns, object, fmt.Sprintf("status: value %v, Valid=True", step.value), 30*time.Second, func(m *datadogMetric) bool {
			return m != nil && m.valueIs(step.value) && m.condition("Valid") == "True"
		})
		t.Logf("object after %s: %s", step.what, m)
	}
	if current != 1 {
		t.Errorf("after the traffic stopped: %d replicas, want 1", current)
	}
	t.Logf("HPA history:\n  %s", rec.history(time.Time{}))
	recordTiming("DatadogMetric scenario 2 %s", time.Since(start).Round(100*time.Millisecond))
}

// Scenario 3: the DatadogMetric an HPA names (datadogmetric@<ns>:<name>) is deleted: the
// external metrics API answers 404 naming <ns>/<name> and saying to create it, and that
// message reaches the HPA's ScalingActive condition. Recreated, it serves values again
// within one refresh period.
func TestDatadogMetricScenario3DeletedObject(t *testing.T) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	d := startDatadogMetricEnv(t, ctx)
	const ns, name, object = "dm3", "web", "dm3-latency"
	const metric = "datadogmetric@" + ns + ":" + object
	const source = "xm.e2e.dm.latency"
	query := "avg:" + source + "{service:web}.rollup(10)"
	d.startDeployment(ns, name, 1)
	startGauge(t, d.x, source, "service:web", 7, time.Second)
	d.applyDatadogMetric(ns, object, query)
	// Value 7 against 100: desired stays 1; only the metric and the condition move.
	d.createHPA(ns, externalHPA(name, name, metric, nil, autoscalingv2.ValueMetricType, "100", 1, 3))
	rec := d.recordHPA(ns, name)
	d.waitHPA(ns, name, "HPA reads 7 through the DatadogMetric", 60*time.Second, func(h *autoscalingv2.HorizontalPodAutoscaler) bool {
		m, ok := currentExternal(h)
		return isTrue(h, autoscalingv2.ScalingActive) && ok && m == 7000
	})

	// Deleted.
	t0 := d.deleteDatadogMetric(ns, object)
	missing := ns + "/" + object
	s := d.waitSample(rec, t0, "the HPA's ScalingActive never named the deleted DatadogMetric "+missing, 60*time.Second, func(s hpaSample) bool {
		return strings.HasPrefix(s.active, "False") && strings.Contains(s.active, missing) && strings.Contains(s.active, "create")
	})
	took := s.at.Sub(t0)
	t.Logf("DatadogMetric %s deleted → HPA ScalingActive=False naming it after %s (bound %s)", missing, took.Round(10*time.Millisecond), dmTakeOver)
	recordTiming("DatadogMetric scenario 3: object deleted → HPA ScalingActive=False naming it %s", took.Round(10*time.Millisecond))
	if took > dmTakeOver {
		t.Errorf("the HPA showed the missing DatadogMetric %s after its deletion, more than one refresh period + HPA sync + margin (%s); history:\n  %s",
			took.Round(10*time.Millisecond), dmTakeOver, rec.history(t0))
	}
	h, err := d.getHPA(ns, name)
	if err != nil {
		t.Fatal(err)
	}
	if c := findCondition(h, autoscalingv2.ScalingActive); c == nil || c.Reason != "FailedGetExternalMetric" {
		t.Errorf("ScalingActive after the deletion: %+v, want reason FailedGetExternalMetric", c)
	} else {
		t.Logf("HPA %s/%s ScalingActive=%s reason=%s message=%q", ns, name, c.Status, c.Reason, c.Message)
	}
	// What the HPA controller got: a 404 whose Status message names the object.
	code, body := d.rawGet(externalMetricPath(ns, metric, ""))
	t.Logf("GET %s after the deletion: %d %s", externalMetricPath(ns, metric, ""), code, truncate(body, 500))
	var st metav1.Status
	if err := json.Unmarshal([]byte(body), &st); err != nil || code != http.StatusNotFound || st.Kind != "Status" || st.Code != http.StatusNotFound ||
		!strings.Contains(st.Message, missing) || !strings.Contains(st.Message, "create") {
		t.Errorf("external metric %s of the deleted object: want a 404 Status naming %s and saying to create it; got %d %s", metric, missing, code, truncate(body, 500))
	}

	// Recreated: values again.
	t1 := d.applyDatadogMetric(ns, object, query)
	s = d.waitSample(rec, t1, "the HPA never read the recreated DatadogMetric's value 7", 60*time.Second, activeTrueWith(7000))
	took = s.at.Sub(t1)
	t.Logf("DatadogMetric %s recreated → HPA ScalingActive=True with value 7 after %s (bound %s)", missing, took.Round(10*time.Millisecond), dmTakeOver)
	recordTiming("DatadogMetric scenario 3: object recreated → HPA reads it %s", took.Round(10*time.Millisecond))
	if took > dmTakeOver {
		t.Errorf("the HPA read the recreated DatadogMetric %s after it was applied, more than one refresh period + HPA sync + margin (%s); history:\n  %s",
			took.Round(10*time.Millisecond), dmTakeOver, rec.history(t1))
	}
	if code, body := d.rawGet(externalMetricPath(ns, metric, "")); code != http.StatusOK {
		t.Errorf("external metric %s after the recreation: %d %s", metric, code, truncate(body, 500))
	}
	t.Logf("HPA history:\n  %s", rec.history(time.Time{}))
	recordTiming("DatadogMetric scenario 3 %s", time.Since(start).Round(100*time.Millisecond))
}

// Scenario 4: garbage collection of autogen objects with a short --autogen-expiry. While
// the HPA naming the inline metric exists its autogen object stays (same object, for
// several expiry periods); once the HPA is deleted the object goes after the expiry (not
// before it) plus a margin, and is not made again. A manual object nobody references, in
// the same namespace, is never collected.
func TestDatadogMetricScenario4AutogenGarbageCollection(t *testing.T) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	const expiry = 5 * time.Second
	// gcMargin: the watch event of the HPA's deletion, a collection pass (at most every
	// refresh period, or a timer of its own), the delete call, a busy machine.
	const gcMargin = 10 * time.Second
	// early: how much sooner than the expiry a deletion may land (xmetrics may count
	// from the last refresh that saw the reference, up to a refresh period before the
	// HPA's deletion, and round to seconds).
	const early = 2 * time.Second
	d := startDatadogMetricEnv(t, ctx, "--datadogmetric-autogen=true", "--autogen-expiry="+expiry.String())
	const ns, name, metric = "dm4", "web", "xm.e2e.dm.gc_depth"
	selector := map[string]string{"queue": "gc"}
	startGauge(t, d.x, metric, "queue:gc", 4, time.Second)
	startGauge(t, d.x, "xm.e2e.dm.gc_manual", "queue:gc", 9, time.Second)
	const manual = "dm4-manual-unreferenced"
	d.applyDatadogMetric(XmetricsNamespace, manual, "avg:xm.e2e.dm.gc_manual{queue:gc}.rollup(10)")
	manualObj := d.waitDatadogMetric(XmetricsNamespace, manual, "manual object exists", 10*time.Second, func(m *datadogMetric) bool { return m != nil })

	d.startDeployment(ns, name, 1)
	d.createHPA(ns, externalHPA(name, name, metric, selector, autoscalingv2.ValueMetricType, "10", 1, 3))
	query := inlineQuery(metric, selector)
	auto := d.waitAutogen(metric, query, 30*time.Second)
	d.waitHPA(ns, name, "HPA reads 4 through the autogen object", 60*time.Second, func(h *autoscalingv2.HorizontalPodAutoscaler) bool {
		m, ok := currentExternal(h)
		return isTrue(h, autoscalingv2.ScalingActive) && ok && m == 4000
	})

	// Referenced: kept, the same object, for three expiry periods.
	held := time.Now()
	var last *datadogMetric
	if err := WaitFor(func() (bool, error) {
		m, err := d.getDatadogMetric(XmetricsNamespace, auto.Name)
		if apierrors.IsNotFound(err) {
			return false, fmt.Errorf("autogen object %s deleted %s after the check began while HPA %s/%s still names its metric", auto.Name, time.Since(held).Round(10*time.Millisecond), ns, name)
		}
		if err != nil {
			return false, Retry(err)
		}
		if m.UID != auto.UID || m.DeletionTimestamp != nil {
			return false, fmt.Errorf("autogen object %s replaced or being deleted while referenced: uid %s → %s, deletionTimestamp %v", auto.Name, auto.UID, m.UID, m.DeletionTimestamp)
		}
		last = m
		return time.Since(held) >= 3*expiry, nil
	}, 3*expiry+30*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("autogen object kept for %s (3 × --autogen-expiry) while referenced: %s", time.Since(held).Round(100*time.Millisecond), last)

	// Unreferenced: collected after the expiry.
	if err := d.c.Client.AutoscalingV2().HorizontalPodAutoscalers(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	tDel := time.Now()
	d.waitDatadogMetric(XmetricsNamespace, auto.Name, "autogen object deleted after the HPA", expiry+gcMargin+30*time.Second, func(m *datadogMetric) bool { return m == nil })
	gone := time.Since(tDel)
	t.Logf("HPA deleted → autogen object %s deleted after %s (--autogen-expiry %s, bound %s)", auto.Name, gone.Round(100*time.Millisecond), expiry, expiry+gcMargin)
	recordTiming("DatadogMetric scenario 4: HPA deleted → autogen object deleted %s (expiry %s)", gone.Round(100*time.Millisecond), expiry)
	if gone < expiry-early {
		t.Errorf("autogen object deleted %s after its last HPA, before --autogen-expiry %s", gone.Round(100*time.Millisecond), expiry)
	}
	if gone > expiry+gcMargin {
		t.Errorf("autogen object deleted %s after its last HPA, more than --autogen-expiry %s + %s", gone.Round(100*time.Millisecond), expiry, gcMargin)
	}
	// Nothing references the inline metric any more: the object is not generated again.
	absentSince := time.Now()
	if err := WaitFor(func() (bool, error) {
		_, err := d.getDatadogMetric(XmetricsNamespace, auto.Name)
		if err == nil {
			return false, fmt.Errorf("autogen object %s generated again %s after its deletion with no HPA naming its metric", auto.Name, time.Since(absentSince).Round(10*time.Millisecond))
		}
		if !apierrors.IsNotFound(err) {
			return false, Retry(err)
		}
		return time.Since(absentSince) >= 3*dmRefresh, nil
	}, 3*dmRefresh+30*time.Second); err != nil {
		t.Error(err)
	}
	// The manual object, unreferenced all along and older than the expiry several times over.
	m, err := d.getDatadogMetric(XmetricsNamespace, manual)
	switch {
	case err != nil:
		t.Errorf("manual DatadogMetric %s/%s (no HPA ever named it) is gone after %s: %v; only generated objects are collected", XmetricsNamespace, manual, time.Since(manualObj.CreationTimestamp.Time).Round(time.Second), err)
	case m.UID != manualObj.UID:
		t.Errorf("manual DatadogMetric %s/%s was replaced (uid %s → %s)", XmetricsNamespace, manual, manualObj.UID, m.UID)
	default:
		t.Logf("manual unreferenced object kept: %s", m)
	}
	recordTiming("DatadogMetric scenario 4 %s", time.Since(start).Round(100*time.Millisecond))
}
