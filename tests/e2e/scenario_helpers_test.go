package e2e

// Helpers of the issue-3 scenarios (scenarios_test.go): xmetrics deployed the way
// deploy/manifests/ describes (its RBAC applied as-is, its own service account's
// credentials, the Service and APIService patched only where a one-machine cluster
// must differ), DogStatsD gauges kept fresh, HPAs with fast behavior, the HPA
// formula of the reference, xmetrics' status document, and the timing summary.

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	apiregv1 "k8s.io/kube-aggregator/pkg/apis/apiregistration/v1"
)

// ---------------------------------------------------------------------------
// Timing summary (printed by TestMain; visible with -v)

var timings struct {
	sync.Mutex
	start   time.Time
	lines   []string
	latency []string
}

func recordTiming(format string, args ...any) {
	timings.Lock()
	timings.lines = append(timings.lines, fmt.Sprintf(format, args...))
	timings.Unlock()
}

// recordLatency notes one "DogStatsD value change → HPA status.desiredReplicas changed" time.
func recordLatency(what string, d time.Duration) {
	timings.Lock()
	timings.latency = append(timings.latency, fmt.Sprintf("%s %s", what, d.Round(10*time.Millisecond)))
	timings.Unlock()
}

func TestMain(m *testing.M) {
	timings.start = time.Now()
	code := m.Run()
	removePodmanStore()
	timings.Lock()
	wall := time.Since(timings.start).Round(100 * time.Millisecond)
	for _, l := range timings.lines {
		fmt.Printf("e2e timing: %s\n", l)
	}
	lat := "none measured"
	if len(timings.latency) > 0 {
		lat = strings.Join(timings.latency, ", ")
	}
	fmt.Printf("e2e summary: go test wall time %s; DogStatsD change → HPA desiredReplicas: %s\n", wall, lat)
	timings.Unlock()
	os.Exit(code)
}

// ---------------------------------------------------------------------------
// xmetrics deployed from deploy/manifests

// ManifestsDir is deploy/manifests of the repository (from tests/e2e).
func ManifestsDir() string {
	p, _ := filepath.Abs(filepath.Join("..", "..", "deploy", "manifests"))
	return p
}

// DatadogMetricCRD is the CustomResourceDefinition of deploy/manifests/05-datadogmetric-crd.yaml.
const DatadogMetricCRD = "datadogmetrics.datadoghq.com"

// xmEnv is a cluster with xmetrics registered as v1beta1.external.metrics.k8s.io.
type xmEnv struct {
	t   *testing.T
	ctx context.Context
	c   *Cluster
	x   *Xmetrics

	Kubeconfig string       // xmetrics' own: a token of the xmetrics/xmetrics service account
	admin      *http.Client // client certificate from the cluster CA, group system:masters
	anon       *http.Client // no client certificate
	// ServicePort is the port the Service and APIService point at (registerLoopback);
	// 0: xmetrics' own. Another when something (a load balancer) stands in front of it.
	ServicePort int
}

// with returns a copy of e that reports to t (a subtest).
func (e *xmEnv) with(t *testing.T) *xmEnv {
	c := *e
	c.t = t
	return &c
}

// startXmetricsEnv starts a cluster, applies deploy/manifests/00-namespace.yaml,
// 05-datadogmetric-crd.yaml (waiting for Established) and 10-rbac.yaml as they are,
// checks the other manifests with a server-side dry run, runs xmetrics with its
// service account's token (so every permission it uses comes from 10-rbac.yaml),
// waits for /readyz (both watches synced), creates the Service (30-service.yaml as
// ExternalName "localhost") and the APIService (40-apiservice.yaml with the loopback
// port and caBundle), and waits for Available=True.
func startXmetricsEnv(t *testing.T, ctx context.Context, args ...string) *xmEnv {
	t.Helper()
	return startXmetricsEnvWith(t, ctx, XmetricsOptions{Args: args})
}

// startXmetricsEnvWith is startXmetricsEnv with launcher options (e.g. Env for backend keys).
func startXmetricsEnvWith(t *testing.T, ctx context.Context, opts XmetricsOptions) *xmEnv {
	t.Helper()
	start := time.Now()
	c := startManifestsCluster(t, ctx)
	e := launchXmetricsEnv(t, ctx, c, XmetricsNamespace, "xmetrics", opts)
	e.register()
	t.Logf("xmetrics ready and registered %s after start", time.Since(start).Round(time.Millisecond))
	return e
}

// startManifestsCluster starts a cluster and applies what startXmetricsEnv applies of
// deploy/manifests before running xmetrics: the namespace, the CRD (Established) and the
// RBAC as they are, the Deployment, Service and APIService as a server-side dry run.
func startManifestsCluster(t *testing.T, ctx context.Context) *Cluster {
	t.Helper()
	c := StartCluster(t)
	dir := ManifestsDir()
	for _, f := range []string{"00-namespace.yaml", "05-datadogmetric-crd.yaml", "10-rbac.yaml"} {
		if out, err := c.Kubectl(ctx, "apply", "-f", filepath.Join(dir, f)); err != nil {
			t.Fatalf("apply %s: %v\n%s", f, err, out)
		}
	}
	// Every scenario has the DatadogMetric CRD, as a cluster that follows deploy/manifests
	// has. Established = its REST endpoint is served: before that xmetrics' DatadogMetric
	// watch (--use-datadogmetric-crd) would get 404s and a kubectl apply of a DatadogMetric
	// "no matches for kind".
	if out, err := c.Kubectl(ctx, "wait", "--for=condition=Established", "--timeout=60s", "crd/"+DatadogMetricCRD); err != nil {
		t.Fatalf("CRD %s from 05-datadogmetric-crd.yaml not Established: %v\n%s", DatadogMetricCRD, err, out)
	}
	// The manifests the test cannot apply as they are (no kubelet, no image; a
	// loopback Service) must still be valid for this API server.
	for _, f := range []string{"20-deployment.yaml", "30-service.yaml", "40-apiservice.yaml"} {
		if out, err := c.Kubectl(ctx, "apply", "--dry-run=server", "-f", filepath.Join(dir, f)); err != nil {
			t.Fatalf("server-side dry run of %s: %v\n%s", f, err, out)
		}
	}
	return c
}

// launchXmetricsEnv runs xmetrics (opts) with a token of the service account
// saNamespace/saName, so every permission it uses comes from that account's RBAC,
// and waits for /readyz. opts.ServiceNamespace/ServiceName name the Service the
// serving certificate is for (default xmetrics/xmetrics).
func launchXmetricsEnv(t *testing.T, ctx context.Context, c *Cluster, saNamespace, saName string, opts XmetricsOptions) *xmEnv {
	t.Helper()
	return launchXmetricsEnvs(t, ctx, c, saNamespace, saName, opts)[0]
}

// launchXmetricsEnvs is launchXmetricsEnv for several replicas at once: every process is
// started before any is waited for, as a Deployment's pods start.
func launchXmetricsEnvs(t *testing.T, ctx context.Context, c *Cluster, saNamespace, saName string, replicas ...XmetricsOptions) []*xmEnv {
	t.Helper()
	kc, err := c.ServiceAccountKubeconfig(ctx, saNamespace, saName)
	if err != nil {
		t.Fatal(err)
	}
	for i := range replicas {
		replicas[i].Kubeconfig = kc
	}
	var envs []*xmEnv
	for _, x := range StartXmetricsReplicas(t, c, replicas...) {
		e := &xmEnv{t: t, ctx: ctx, c: c, x: x, Kubeconfig: kc}
		t.Cleanup(func() {
			if t.Failed() {
				e.dumpXmetricsState()
			}
		})
		e.admin = e.clientCertClient("e2e-admin", "system:masters")
		e.anon = e.tlsClient(nil, nil)
		envs = append(envs, e)
	}
	for _, e := range envs {
		e.waitReady(60 * time.Second)
	}
	return envs
}

// register creates the Service and APIService of deploy/manifests (30-service.yaml,
// 40-apiservice.yaml), patched for loopback (registerLoopback).
func (e *xmEnv) register() {
	e.t.Helper()
	var svc corev1.Service
	decodeManifest(e.t, "30-service.yaml", &svc)
	var api apiregv1.APIService
	decodeManifest(e.t, "40-apiservice.yaml", &api)
	e.registerLoopback("deploy/manifests", &svc, &api)
}

// registerLoopback creates svc and api (from `from`, for messages) patched for
// loopback: the Service becomes type ExternalName "localhost" (no selector, its
// https port the real one), the APIService gets xmetrics' port and the caBundle;
// then waits for Available=True.
func (e *xmEnv) registerLoopback(from string, svc *corev1.Service, api *apiregv1.APIService) {
	t, ctx, c, x := e.t, e.ctx, e.c, e.x
	t.Helper()
	servicePort := x.Port
	if e.ServicePort != 0 {
		servicePort = e.ServicePort
	}
	if svc.Namespace != x.ServiceNamespace || svc.Name != x.ServiceName {
		t.Fatalf("the Service of %s is %s/%s, the serving certificate is for %s.%s.svc", from, svc.Namespace, svc.Name, x.ServiceName, x.ServiceNamespace)
	}
	svc.Spec.Type = corev1.ServiceTypeExternalName
	svc.Spec.ExternalName = "localhost"
	svc.Spec.Selector = nil
	for i := range svc.Spec.Ports {
		if svc.Spec.Ports[i].Name == "https" {
			svc.Spec.Ports[i].Port = int32(servicePort)
			svc.Spec.Ports[i].TargetPort = intstr.FromInt32(int32(servicePort))
		}
	}
	if _, err := c.Client.CoreV1().Services(svc.Namespace).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create service from %s: %v", from, err)
	}

	if api.Spec.Service == nil || api.Spec.Service.Name != svc.Name || api.Spec.Service.Namespace != svc.Namespace {
		t.Fatalf("the APIService of %s does not point at its Service %s/%s: %+v", from, svc.Namespace, svc.Name, api.Spec.Service)
	}
	port := int32(servicePort)
	api.Spec.Service.Port = &port
	if !x.FromSecret {
		api.Spec.CABundle = x.CABundle
	} else if len(api.Spec.CABundle) != 0 || api.Spec.InsecureSkipTLSVerify {
		// With the serving-cert Secret the APIService is applied as it ships: xmetrics injects.
		t.Fatalf("the APIService of %s comes with caBundle/insecureSkipTLSVerify: %+v", from, api.Spec)
	}
	registered := time.Now()
	if _, err := c.Aggregator.ApiregistrationV1().APIServices().Create(ctx, api, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create apiservice from %s: %v", from, err)
	}
	cond, err := c.WaitAPIServiceAvailable(ctx, api.Name, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("APIService %s Available=%s (%s) %s after creation", api.Name, cond.Status, cond.Reason, time.Since(registered).Round(time.Millisecond))
	if x.FromSecret {
		e.checkInjectedCaBundle(api.Name)
	}
}

func decodeManifest(t *testing.T, name string, into any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(ManifestsDir(), name))
	if err != nil {
		t.Fatal(err)
	}
	if err := k8syaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096).Decode(into); err != nil {
		t.Fatalf("decode %s: %v", name, err)
	}
}

// waitReady waits for xmetrics' /readyz (authentication settings read, HPAs listed,
// first refresh done).
func (e *xmEnv) waitReady(timeout time.Duration) {
	e.t.Helper()
	start := time.Now()
	var last string
	err := WaitFor(func() (bool, error) {
		code, body, err := e.get(nil, "/readyz", nil)
		if err != nil {
			last = err.Error()
			return false, nil
		}
		last = fmt.Sprintf("%d %s", code, body)
		return code == http.StatusOK, nil
	}, timeout)
	if err != nil {
		e.t.Fatalf("xmetrics /readyz (last: %s): %v", last, err)
	}
	e.t.Logf("xmetrics /readyz ok after %s", time.Since(start).Round(time.Millisecond))
}

func (e *xmEnv) dumpXmetricsState() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cp := *e
	cp.ctx = ctx
	e = &cp
	if st, err := e.status(); err == nil {
		b, _ := json.MarshalIndent(st.raw, "", "  ")
		e.t.Logf("---- xmetrics status ----\n%s", b)
	} else {
		e.t.Logf("xmetrics status: %v", err)
	}
	hpas, err := e.c.Client.AutoscalingV2().HorizontalPodAutoscalers("").List(ctx, metav1.ListOptions{})
	if err == nil {
		for _, h := range hpas.Items {
			e.t.Logf("---- HPA %s/%s: desired=%d current=%d metrics=%s", h.Namespace, h.Name, h.Status.DesiredReplicas, h.Status.CurrentReplicas, currentMetricText(&h))
			for _, cond := range h.Status.Conditions {
				e.t.Logf("     %s=%s %s: %s", cond.Type, cond.Status, cond.Reason, cond.Message)
			}
		}
	}
}

// ---------------------------------------------------------------------------
// Talking to xmetrics directly

// tlsClient trusts xmetrics' serving CA (verified as "localhost") and presents
// the given client certificate (none when certPEM is nil).
func (e *xmEnv) tlsClient(certPEM, keyPEM []byte) *http.Client {
	e.t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(e.x.CABundle)
	cfg := &tls.Config{RootCAs: pool, ServerName: "localhost"}
	if certPEM != nil {
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			e.t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	hc := &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
	e.t.Cleanup(hc.CloseIdleConnections)
	return hc
}

// clientCertClient presents a client certificate from the cluster CA (the
// apiserver's --client-ca-file) for user and groups.
func (e *xmEnv) clientCertClient(user string, groups ...string) *http.Client {
	e.t.Helper()
	certPEM, keyPEM, err := e.c.CA.Issue(CertRequest{CommonName: user, Organizations: groups, Client: true})
	if err != nil {
		e.t.Fatal(err)
	}
	return e.tlsClient(certPEM, keyPEM)
}

// frontProxyClient presents the apiserver's own front-proxy client certificate
// (CN front-proxy-client from the front-proxy CA), as the aggregator does.
func (e *xmEnv) frontProxyClient() *http.Client {
	e.t.Helper()
	certPEM, err := os.ReadFile(e.c.FrontProxyCert)
	if err != nil {
		e.t.Fatal(err)
	}
	keyPEM, err := os.ReadFile(e.c.FrontProxyKey)
	if err != nil {
		e.t.Fatal(err)
	}
	return e.tlsClient(certPEM, keyPEM)
}

// get sends GET path to xmetrics with the headers; hc nil = no client certificate.
func (e *xmEnv) get(hc *http.Client, path string, header http.Header) (int, string, error) {
	if hc == nil {
		hc = e.anon
	}
	req, err := http.NewRequestWithContext(e.ctx, http.MethodGet, e.x.URL+path, nil)
	if err != nil {
		return 0, "", err
	}
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(b), nil
}

// xmStatus is GET /xmetrics/v1/status.
type xmStatus struct {
	Metrics []struct {
		MetricName string   `json:"metricName"`
		Selector   string   `json:"selector"`
		Query      string   `json:"query"`
		References []string `json:"references"`
		Value      string   `json:"value"`
		Valid      bool     `json:"valid"`
		Error      string   `json:"error"`
	} `json:"metrics"`
	Poller struct {
		RefreshPeriodSeconds int    `json:"refreshPeriodSeconds"`
		Cycles               int64  `json:"cycles"`
		BackendCalls         int64  `json:"backendCalls"`
		Following            bool   `json:"following"`       // a follower mirroring the leader
		FollowExchanges      int64  `json:"followExchanges"` // with the leader's /xmetrics/v1/replicate
		FollowError          string `json:"followError"`
		LastFollow           string `json:"lastFollow"`
	} `json:"poller"`
	Dogstatsd struct {
		Packets      int64    `json:"packets"`
		Relayed      int64    `json:"relayed"`      // sent on to the other replicas
		RelayFailed  int64    `json:"relayFailed"`  // could not be sent on
		FromReplicas int64    `json:"fromReplicas"` // relayed here by another replica
		RelayAddress string   `json:"relayAddress"`
		RelayTargets []string `json:"relayTargets"`
	} `json:"dogstatsd"`
	Leader struct {
		Enabled   bool   `json:"enabled"`
		IsLeader  bool   `json:"isLeader"`
		Identity  string `json:"identity"` // this replica's, on the Lease
		Holder    string `json:"holder"`   // the Lease's holderIdentity as last read
		PeerURL   string `json:"peerUrl"`
		Takeovers int64  `json:"takeovers"`
		LastError string `json:"lastError"`
	} `json:"leader"`
	Kubernetes *struct {
		AuthenticationLoaded bool       `json:"authenticationLoaded"`
		HPAWatch             watchStats `json:"hpaWatch"`
		AuthenticationWatch  watchStats `json:"authenticationWatch"`
	} `json:"kubernetes"`
	raw map[string]any
}

type watchStats struct {
	Synced        bool   `json:"synced"`
	Objects       int64  `json:"objects"`
	Lists         int64  `json:"lists"`
	WatchRestarts int64  `json:"watchRestarts"`
	Events        int64  `json:"events"`
	LastError     string `json:"lastError"`
}

func (w watchStats) String() string {
	return fmt.Sprintf("synced=%v objects=%d lists=%d watchRestarts=%d events=%d lastError=%q",
		w.Synced, w.Objects, w.Lists, w.WatchRestarts, w.Events, w.LastError)
}

// status reads xmetrics' status as system:masters (client certificate from the cluster CA).
func (e *xmEnv) status() (*xmStatus, error) {
	code, body, err := e.get(e.admin, "/xmetrics/v1/status", nil)
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("status: %d %s", code, body)
	}
	var st xmStatus
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		return nil, fmt.Errorf("status: %v: %s", err, body)
	}
	_ = json.Unmarshal([]byte(body), &st.raw)
	return &st, nil
}

// references is metric name → its references in status.
func (s *xmStatus) references() map[string][]string {
	out := map[string][]string{}
	for _, m := range s.Metrics {
		out[m.MetricName] = append(out[m.MetricName], m.References...)
	}
	return out
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// ---------------------------------------------------------------------------
// Through kube-apiserver

type externalMetricList struct {
	Kind       string `json:"kind"`
	APIVersion string `json:"apiVersion"`
	Items      []struct {
		MetricName   string            `json:"metricName"`
		MetricLabels map[string]string `json:"metricLabels"`
		Timestamp    string            `json:"timestamp"`
		Value        string            `json:"value"`
	} `json:"items"`
}

func externalMetricPath(ns, metric, selector string) string {
	p := "/apis/external.metrics.k8s.io/v1beta1/namespaces/" + ns + "/" + metric
	if selector != "" {
		p += "?labelSelector=" + strings.ReplaceAll(strings.ReplaceAll(selector, "=", "%3D"), ",", "%2C")
	}
	return p
}

// readMetric reads an external metric through kube-apiserver with kubectl (admin).
func (e *xmEnv) readMetric(ns, metric, selector string) (*externalMetricList, error) {
	out, err := e.c.Kubectl(e.ctx, "get", "--raw", externalMetricPath(ns, metric, selector))
	if err != nil {
		return nil, err
	}
	var l externalMetricList
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		return nil, fmt.Errorf("%v: %s", err, out)
	}
	return &l, nil
}

// ---------------------------------------------------------------------------
// DogStatsD: a gauge an "app" keeps sending

type gauge struct {
	xs []*Xmetrics // every datagram goes to each (replicas with their own stores)
	// Each datagram to one of xs in turn instead, as a UDP Service spreads them over pods.
	roundRobin bool
	name       string
	tags       string
	mu         sync.Mutex
	value      float64
	sent       int
}

// startGauge sends "name:value|g|#tags" now and every interval until the test ends.
func startGauge(t *testing.T, x *Xmetrics, name, tags string, value float64, interval time.Duration) *gauge {
	return startGaugeTo(t, []*Xmetrics{x}, name, tags, value, interval)
}

// startGaugeTo is startGauge sending every datagram to each of xs.
func startGaugeTo(t *testing.T, xs []*Xmetrics, name, tags string, value float64, interval time.Duration) *gauge {
	return startGaugeOver(t, xs, false, name, tags, value, interval)
}

// startGaugeOver sends each datagram to each of xs, or with roundRobin to one of them in turn.
func startGaugeOver(t *testing.T, xs []*Xmetrics, roundRobin bool, name, tags string, value float64, interval time.Duration) *gauge {
	g := &gauge{xs: xs, roundRobin: roundRobin, name: name, tags: tags, value: value}
	g.send()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				g.send()
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return g
}

func (g *gauge) line() string {
	l := g.name + ":" + strconv.FormatFloat(g.value, 'f', -1, 64) + "|g"
	if g.tags != "" {
		l += "|#" + g.tags
	}
	return l
}

func (g *gauge) send() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.roundRobin {
		_ = g.xs[g.sent%len(g.xs)].SendDogStatsD(g.line())
	} else {
		for _, x := range g.xs {
			_ = x.SendDogStatsD(g.line()) // errors while xmetrics restarts are expected
		}
	}
	g.sent++
}

// Set changes the value and sends it at once; returns when it was sent.
func (g *gauge) Set(v float64) time.Time {
	g.mu.Lock()
	g.value = v
	g.mu.Unlock()
	g.send()
	return time.Now()
}

// ---------------------------------------------------------------------------
// Workloads and HPAs

// startDeployment creates a Deployment of never-pulled pods, plays the kubelet
// for them (KeepPodsReady) and waits until it has `replicas` ready pods.
func (e *xmEnv) startDeployment(ns, name string, replicas int32) {
	t, ctx, c := e.t, e.ctx, e.c
	t.Helper()
	if err := c.EnsureNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	_, err := c.Client.AppsV1().Deployments(ns).Create(ctx, neverPulledDeployment(name, replicas),
		metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c.KeepPodsReady(ns, "app="+name, 0)
	mustWait(t, fmt.Sprintf("deployment %s/%s %d/%d ready", ns, name, replicas, replicas), 60*time.Second, func() (bool, error) {
		d, err := c.Client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		return err == nil && d.Status.ReadyReplicas == replicas && d.Status.Replicas == replicas, Retry(err)
	})
}

// neverPulledDeployment is a Deployment labelled app=<name> whose image is never pulled: there is no
// kubelet, so the tests mark its pods Ready themselves.
func neverPulledDeployment(name string, replicas int32) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "app", Image: "registry.invalid/never-pulled:1",
				}}},
			},
		},
	}
}

// externalHPA is an autoscaling/v2 HPA on one External metric, scaling the
// Deployment `target`, with behavior that lets it move every sync (1 s): scale-up
// by up to 10 pods per second, scale-down by 100 % per second, no stabilization.
func externalHPA(name, target, metric string, selector map[string]string, targetType autoscalingv2.MetricTargetType, targetValue string, minReplicas, maxReplicas int32) *autoscalingv2.HorizontalPodAutoscaler {
	q := resource.MustParse(targetValue)
	mt := autoscalingv2.MetricTarget{Type: targetType}
	switch targetType {
	case autoscalingv2.ValueMetricType:
		mt.Value = &q
	case autoscalingv2.AverageValueMetricType:
		mt.AverageValue = &q
	}
	var sel *metav1.LabelSelector
	if len(selector) > 0 {
		sel = &metav1.LabelSelector{MatchLabels: selector}
	}
	zero := int32(0)
	maxPolicy := autoscalingv2.MaxChangePolicySelect
	return &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: target},
			MinReplicas:    &minReplicas,
			MaxReplicas:    maxReplicas,
			Metrics: []autoscalingv2.MetricSpec{{
				Type: autoscalingv2.ExternalMetricSourceType,
				External: &autoscalingv2.ExternalMetricSource{
					Metric: autoscalingv2.MetricIdentifier{Name: metric, Selector: sel},
					Target: mt,
				},
			}},
			Behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{
				ScaleUp: &autoscalingv2.HPAScalingRules{
					StabilizationWindowSeconds: &zero,
					SelectPolicy:               &maxPolicy,
					Policies:                   []autoscalingv2.HPAScalingPolicy{{Type: autoscalingv2.PodsScalingPolicy, Value: 10, PeriodSeconds: 1}},
				},
				ScaleDown: &autoscalingv2.HPAScalingRules{
					StabilizationWindowSeconds: &zero,
					SelectPolicy:               &maxPolicy,
					Policies:                   []autoscalingv2.HPAScalingPolicy{{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 1}},
				},
			},
		},
	}
}

func (e *xmEnv) createHPA(ns string, h *autoscalingv2.HorizontalPodAutoscaler) {
	e.t.Helper()
	if err := e.c.EnsureNamespace(e.ctx, ns); err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.c.Client.AutoscalingV2().HorizontalPodAutoscalers(ns).Create(e.ctx, h, metav1.CreateOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

func (e *xmEnv) getHPA(ns, name string) (*autoscalingv2.HorizontalPodAutoscaler, error) {
	return e.c.Client.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(e.ctx, name, metav1.GetOptions{})
}

func findCondition(h *autoscalingv2.HorizontalPodAutoscaler, typ autoscalingv2.HorizontalPodAutoscalerConditionType) *autoscalingv2.HorizontalPodAutoscalerCondition {
	for i := range h.Status.Conditions {
		if h.Status.Conditions[i].Type == typ {
			return &h.Status.Conditions[i]
		}
	}
	return nil
}

// currentExternal is the HPA's status.currentMetrics[0].external.current, as milli-units
// (value for a Value target, averageValue for AverageValue); ok=false when absent.
func currentExternal(h *autoscalingv2.HorizontalPodAutoscaler) (milli int64, ok bool) {
	for _, m := range h.Status.CurrentMetrics {
		if m.External == nil {
			continue
		}
		if m.External.Current.Value != nil {
			return m.External.Current.Value.MilliValue(), true
		}
		if m.External.Current.AverageValue != nil {
			return m.External.Current.AverageValue.MilliValue(), true
		}
	}
	return 0, false
}

func currentMetricText(h *autoscalingv2.HorizontalPodAutoscaler) string {
	var parts []string
	for _, m := range h.Status.CurrentMetrics {
		if m.External == nil {
			continue
		}
		if m.External.Current.Value != nil {
			parts = append(parts, "value="+m.External.Current.Value.String())
		}
		if m.External.Current.AverageValue != nil {
			parts = append(parts, "averageValue="+m.External.Current.AverageValue.String())
		}
	}
	if len(parts) == 0 {
		return "<none>"
	}
	return strings.Join(parts, ",")
}

func hpaText(h *autoscalingv2.HorizontalPodAutoscaler) string {
	var conds []string
	for _, c := range h.Status.Conditions {
		conds = append(conds, fmt.Sprintf("%s=%s(%s: %s)", c.Type, c.Status, c.Reason, c.Message))
	}
	return fmt.Sprintf("desired=%d current=%d metric=%s conditions=[%s]", h.Status.DesiredReplicas, h.Status.CurrentReplicas, currentMetricText(h), strings.Join(conds, "; "))
}

// ---------------------------------------------------------------------------
// The HPA formula of the reference (kubernetes-metrics-api.md, "What the HPA does")

const hpaTolerance = 0.1

// expectedValueReplicas: target type Value. usage = sum of items (milli);
// ratio = usage/target; within tolerance keep current, else ceil(ratio × readyPods);
// clamped to [min, max].
func expectedValueReplicas(usageMilli, targetMilli int64, current, ready, minR, maxR int32) int32 {
	ratio := float64(usageMilli) / float64(targetMilli)
	r := current
	if !(1-hpaTolerance <= ratio && ratio <= 1+hpaTolerance) {
		r = int32(math.Ceil(ratio * float64(ready)))
	}
	return clamp(r, minR, maxR)
}

// expectedAverageValueReplicas: target type AverageValue. replicas = ceil(usage/target)
// unless usage/(target × current) is within tolerance; clamped to [min, max].
func expectedAverageValueReplicas(usageMilli, targetMilli int64, current, minR, maxR int32) int32 {
	ratio := float64(usageMilli) / (float64(targetMilli) * float64(current))
	r := current
	if !(1-hpaTolerance <= ratio && ratio <= 1+hpaTolerance) {
		r = int32(math.Ceil(float64(usageMilli) / float64(targetMilli)))
	}
	return clamp(r, minR, maxR)
}

// averageValueShown is what the HPA status shows for an AverageValue target:
// ceil(usage / currentReplicas), in milli.
func averageValueShown(usageMilli int64, current int32) int64 {
	return int64(math.Ceil(float64(usageMilli) / float64(current)))
}

func clamp(r, minR, maxR int32) int32 {
	if r < minR {
		return minR
	}
	if r > maxR {
		return maxR
	}
	return r
}

// ---------------------------------------------------------------------------
// HPA status history: every distinct (desired, current, metric) seen, polled every 100 ms

type hpaSample struct {
	at      time.Time
	desired int32
	current int32
	metric  int64
	hasMet  bool
	active  string // ScalingActive: "True" or "False <reason>: <message>"
}

type hpaRecorder struct {
	mu      sync.Mutex
	samples []hpaSample
}

func (e *xmEnv) recordHPA(ns, name string) *hpaRecorder {
	r := &hpaRecorder{}
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			h, err := e.c.Client.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, name, metav1.GetOptions{})
			if err == nil {
				m, ok := currentExternal(h)
				s := hpaSample{at: time.Now(), desired: h.Status.DesiredReplicas, current: h.Status.CurrentReplicas, metric: m, hasMet: ok}
				if c := findCondition(h, autoscalingv2.ScalingActive); c != nil {
					s.active = string(c.Status)
					if c.Status != corev1.ConditionTrue {
						s.active += " " + c.Reason + ": " + c.Message
					}
				}
				r.mu.Lock()
				if n := len(r.samples); n == 0 || r.samples[n-1].desired != s.desired || r.samples[n-1].current != s.current ||
					r.samples[n-1].metric != s.metric || r.samples[n-1].hasMet != s.hasMet || r.samples[n-1].active != s.active {
					r.samples = append(r.samples, s)
				}
				r.mu.Unlock()
			} else if !apierrors.IsNotFound(err) && ctx.Err() == nil {
				time.Sleep(100 * time.Millisecond)
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	e.t.Cleanup(func() { cancel(); <-done })
	return r
}

// firstAfter returns the first sample at or after t for which match holds.
func (r *hpaRecorder) firstAfter(t time.Time, match func(hpaSample) bool) (hpaSample, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.samples {
		if !s.at.Before(t) && match(s) {
			return s, true
		}
	}
	return hpaSample{}, false
}

func (r *hpaRecorder) history(since time.Time) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var parts []string
	if since.IsZero() && len(r.samples) > 0 {
		since = r.samples[0].at
	}
	for _, s := range r.samples {
		if s.at.Before(since) {
			continue
		}
		m := "-"
		if s.hasMet {
			m = resource.NewMilliQuantity(s.metric, resource.DecimalSI).String()
		}
		parts = append(parts, fmt.Sprintf("+%s desired=%d current=%d metric=%s ScalingActive=%s", s.at.Sub(since).Round(10*time.Millisecond), s.desired, s.current, m, truncate(s.active, 400)))
	}
	return strings.Join(parts, "\n  ")
}

// sortedKeys for stable logs.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
