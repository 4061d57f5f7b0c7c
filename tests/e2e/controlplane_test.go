package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestControlPlaneStarts proves the harness: kube-apiserver answers kubectl, the
// controller manager turns a Deployment into Ready pods, the HPA controller runs
// (as its own service account) and reports on an External metric, and the
// aggregation layer reaches a server on loopback through an ExternalName Service
// "localhost" with the front-proxy client certificate and X-Remote-* headers.
func TestControlPlaneStarts(t *testing.T) {
	c := StartCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	const ns = "e2e-smoke"
	const metric = "e2e_queue_depth"
	if err := c.EnsureNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}

	out, err := c.Kubectl(ctx, "get", "ns", "-o", "name")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"namespace/default", "namespace/kube-system", "namespace/" + ns} {
		if !strings.Contains(out, want) {
			t.Fatalf("kubectl get ns: no %s in\n%s", want, out)
		}
	}

	// A Deployment: the kcm makes a ReplicaSet and pods; the test plays the kubelet.
	replicas := int32(2)
	_, err = c.Client.AppsV1().Deployments(ns).Create(ctx, neverPulledDeployment("web", replicas),
		metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mustWait(t, "a ReplicaSet and 2 pods for deployment web", 60*time.Second, func() (bool, error) {
		rs, err := c.Client.AppsV1().ReplicaSets(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil || len(rs.Items) == 0 {
			return false, Retry(err)
		}
		pods, err := c.Client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		return err == nil && len(pods.Items) == 2, Retry(err)
	})
	n, err := c.MarkPodsReady(ctx, ns, "app=web")
	if err != nil || n != 2 {
		t.Fatalf("MarkPodsReady: %d pods, %v", n, err)
	}
	mustWait(t, "deployment web 2/2 ready and available", 60*time.Second, func() (bool, error) {
		d, err := c.Client.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		return err == nil && d.Status.ReadyReplicas == 2 && d.Status.AvailableReplicas == 2, Retry(err)
	})
	stopReady := c.KeepPodsReady(ns, "app=web", 0)
	defer stopReady()

	// An HPA on an External metric while no metrics API exists: the HPA controller
	// says so in a condition, which proves it runs.
	minReplicas := int32(1)
	zero := int32(0)
	_, err = c.Client.AutoscalingV2().HorizontalPodAutoscalers(ns).Create(ctx, &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"},
			MinReplicas:    &minReplicas,
			MaxReplicas:    4,
			Metrics: []autoscalingv2.MetricSpec{{
				Type: autoscalingv2.ExternalMetricSourceType,
				External: &autoscalingv2.ExternalMetricSource{
					Metric: autoscalingv2.MetricIdentifier{
						Name:     metric,
						Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"queue": "emails"}},
					},
					Target: autoscalingv2.MetricTarget{Type: autoscalingv2.ValueMetricType, Value: resource.NewQuantity(10, resource.DecimalSI)},
				},
			}},
			Behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{
				ScaleDown: &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: &zero},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var noMetrics autoscalingv2.HorizontalPodAutoscalerCondition
	mustWait(t, "HPA condition ScalingActive=False", 60*time.Second, func() (bool, error) {
		cond, err := hpaCondition(ctx, c, ns, "web", autoscalingv2.ScalingActive)
		noMetrics = cond
		return err == nil && cond.Status == corev1.ConditionFalse, Retry(err)
	})
	t.Logf("HPA without a metrics API: ScalingActive=%s reason=%s message=%q", noMetrics.Status, noMetrics.Reason, noMetrics.Message)
	if noMetrics.Reason != "FailedGetExternalMetric" || !strings.Contains(noMetrics.Message, metric) {
		t.Errorf("unexpected ScalingActive condition: %s: %s", noMetrics.Reason, noMetrics.Message)
	}

	// The aggregation layer: a tiny HTTPS server of the test, registered as
	// v1beta1.external.metrics.k8s.io through an ExternalName Service "localhost".
	echo := startEchoServer(t, c, "echo", "e2e-aggregation")
	echo.setValue("30")
	reg := APIServiceRegistration{
		Group: ExternalMetricsGroup, Version: ExternalMetricsVersion,
		ServiceNamespace: "e2e-aggregation", ServiceName: "echo",
		Port: echo.port, CABundle: echo.caPEM,
	}
	registered := time.Now()
	if err := c.RegisterAPIService(ctx, reg); err != nil {
		t.Fatal(err)
	}
	cond, err := c.WaitAPIServiceAvailable(ctx, reg.APIServiceName(), 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("APIService %s Available=%s (%s: %s) %s after registration", reg.APIServiceName(), cond.Status, cond.Reason, cond.Message, time.Since(registered).Round(time.Millisecond))
	if probe, ok := echo.find(func(r echoRequest) bool { return r.User == "system:kube-aggregator" }); ok {
		t.Logf("availability probe: %s", probe)
	} else {
		t.Errorf("no availability probe from system:kube-aggregator reached the server; saw %v", echo.all())
	}

	out, err = c.Kubectl(ctx, "get", "--raw", "/apis/external.metrics.k8s.io/v1beta1")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, metric) {
		t.Errorf("discovery through kube-apiserver: no %s in %s", metric, out)
	}
	path := "/apis/external.metrics.k8s.io/v1beta1/namespaces/" + ns + "/" + metric + "?labelSelector=queue%3Demails"
	out, err = c.Kubectl(ctx, "get", "--raw", path)
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Items []struct {
			MetricLabels map[string]string `json:"metricLabels"`
			Value        string            `json:"value"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list.Items) != 1 {
		t.Fatalf("metric through kube-apiserver: %v: %s", err, out)
	}
	if got := list.Items[0].MetricLabels["remote_user"]; got != "admin" {
		t.Errorf("X-Remote-User seen by the aggregated server = %q, want admin (the kubectl user)", got)
	}
	if got := list.Items[0].MetricLabels["remote_groups"]; !strings.Contains(got, "system:masters") {
		t.Errorf("X-Remote-Group seen by the aggregated server = %q, want system:masters among them", got)
	}
	if r, ok := echo.find(func(r echoRequest) bool { return r.User == "admin" }); ok {
		t.Logf("kubectl's request as the aggregated server saw it: %s", r)
	}

	// With a value, the HPA controller asks the aggregated server as its own
	// service account and scales: usage 30 / target 10 × 2 ready pods → 6, capped at 4.
	mustWait(t, "deployment web scaled to 4 by the HPA", 90*time.Second, func() (bool, error) {
		d, err := c.Client.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		return err == nil && *d.Spec.Replicas == 4 && d.Status.ReadyReplicas == 4, Retry(err)
	})
	hpaUser := "system:serviceaccount:kube-system:horizontal-pod-autoscaler"
	r, ok := echo.find(func(r echoRequest) bool { return r.User == hpaUser })
	if !ok {
		t.Fatalf("no request from %s reached the server; saw %v", hpaUser, echo.all())
	}
	t.Logf("HPA controller's request: %s", r)

	// Value drops: usage 5 / 10 × 4 ready → 2 (downscale stabilization 0 s).
	changed := time.Now()
	echo.setValue("5")
	var desiredAt time.Duration
	mustWait(t, "HPA desired replicas 2", 60*time.Second, func() (bool, error) {
		h, err := c.Client.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, "web", metav1.GetOptions{})
		if err == nil && h.Status.DesiredReplicas == 2 {
			desiredAt = time.Since(changed)
			return true, nil
		}
		return false, Retry(err)
	})
	t.Logf("value 30 → 5: HPA desiredReplicas 4 → 2 after %s", desiredAt.Round(time.Millisecond))

	// What an aggregated server gets asked, by whom (for the xmetrics side).
	seen := map[string]int{}
	for _, r := range echo.all() {
		seen[fmt.Sprintf("%s %s user=%q groups=%q accept=%q", r.Method, r.Path, r.User, r.Groups, r.Accept)]++
	}
	for k, n := range seen {
		t.Logf("aggregated server saw %d× %s", n, k)
	}
	mustWait(t, "deployment web back to 2", 60*time.Second, func() (bool, error) {
		d, err := c.Client.AppsV1().Deployments(ns).Get(ctx, "web", metav1.GetOptions{})
		return err == nil && *d.Spec.Replicas == 2 && d.Status.Replicas == 2, Retry(err)
	})
}

func hpaCondition(ctx context.Context, c *Cluster, ns, name string, typ autoscalingv2.HorizontalPodAutoscalerConditionType) (autoscalingv2.HorizontalPodAutoscalerCondition, error) {
	h, err := c.Client.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return autoscalingv2.HorizontalPodAutoscalerCondition{}, err
	}
	for _, cond := range h.Status.Conditions {
		if cond.Type == typ {
			return cond, nil
		}
	}
	return autoscalingv2.HorizontalPodAutoscalerCondition{}, fmt.Errorf("no %s condition yet (status %+v)", typ, h.Status)
}

func mustWait(t *testing.T, what string, timeout time.Duration, cond func() (bool, error)) {
	t.Helper()
	start := time.Now()
	if err := WaitFor(cond, timeout); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
	t.Logf("%s: %s", what, time.Since(start).Round(time.Millisecond))
}

// echoServer is an aggregated API server stand-in: it trusts X-Remote-* only from
// a client certificate signed by the front-proxy CA with CN front-proxy-client,
// records every request, and answers external.metrics.k8s.io with one item whose
// labels echo the caller.
type echoServer struct {
	port  int
	caPEM []byte

	mu    sync.Mutex
	reqs  []echoRequest
	value string
}

type echoRequest struct {
	Method, Path, Query string
	FrontProxyCN        string // "" when no verified front-proxy certificate
	User                string
	Groups              []string
	Extra               map[string]string
	Accept              string
}

func (r echoRequest) String() string {
	return fmt.Sprintf("%s %s?%s cert=%q user=%q groups=%q extra=%v accept=%q",
		r.Method, r.Path, r.Query, r.FrontProxyCN, r.User, r.Groups, r.Extra, r.Accept)
}

func startEchoServer(t *testing.T, c *Cluster, service, namespace string) *echoServer {
	ca, err := NewCertAuthority("echo-ca")
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := ca.Issue(CertRequest{
		CommonName: service + "." + namespace + ".svc",
		DNSNames:   []string{service + "." + namespace + ".svc"},
		Server:     true,
	})
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	frontProxy := x509.NewCertPool()
	frontProxy.AppendCertsFromPEM(c.FrontProxyCA.CertPEM)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &echoServer{port: l.Addr().(*net.TCPAddr).Port, caPEM: ca.CertPEM, value: "0"}
	srv := &http.Server{
		Handler:           http.HandlerFunc(s.serve),
		ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{
			Certificates: []tls.Certificate{pair},
			ClientAuth:   tls.VerifyClientCertIfGiven,
			ClientCAs:    frontProxy,
		},
	}
	go srv.ServeTLS(l, "", "")
	t.Cleanup(func() { srv.Close() })
	return s
}

func (s *echoServer) setValue(v string) {
	s.mu.Lock()
	s.value = v
	s.mu.Unlock()
}

func (s *echoServer) find(pred func(echoRequest) bool) (echoRequest, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.reqs {
		if pred(r) {
			return r, true
		}
	}
	return echoRequest{}, false
}

func (s *echoServer) all() []echoRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]echoRequest(nil), s.reqs...)
}

func (s *echoServer) serve(w http.ResponseWriter, r *http.Request) {
	rec := echoRequest{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Accept: r.Header.Get("Accept")}
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && r.TLS.PeerCertificates[0].Subject.CommonName == FrontProxyClientName {
		rec.FrontProxyCN = FrontProxyClientName
		rec.User = r.Header.Get("X-Remote-User")
		rec.Groups = r.Header.Values("X-Remote-Group")
		for k, v := range r.Header {
			if strings.HasPrefix(k, "X-Remote-Extra-") {
				if rec.Extra == nil {
					rec.Extra = map[string]string{}
				}
				rec.Extra[strings.TrimPrefix(k, "X-Remote-Extra-")] = strings.Join(v, ",")
			}
		}
	}
	s.mu.Lock()
	if len(s.reqs) < 10000 {
		s.reqs = append(s.reqs, rec)
	}
	value := s.value
	s.mu.Unlock()

	w.Header().Set("Content-Type", "application/json")
	status := func(code int, reason, msg string) {
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(map[string]any{"kind": "Status", "apiVersion": "v1", "metadata": map[string]any{},
			"status": "Failure", "message": msg, "reason": reason, "code": code})
	}
	if rec.User == "" {
		status(http.StatusUnauthorized, "Unauthorized", "no front-proxy client certificate")
		return
	}
	const prefix = "/apis/external.metrics.k8s.io/v1beta1"
	switch {
	case r.URL.Path == "/openapi/v2":
		// kube-apiserver v1.37 logs a 404 here as an error and retries with backoff;
		// an empty but valid spec keeps it quiet.
		json.NewEncoder(w).Encode(map[string]any{"swagger": "2.0",
			"info": map[string]any{"title": "echo", "version": "v1beta1"}, "paths": map[string]any{}})
	case r.URL.Path == prefix:
		json.NewEncoder(w).Encode(map[string]any{
			"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "external.metrics.k8s.io/v1beta1",
			"resources": []map[string]any{{"name": "e2e_queue_depth", "singularName": "", "namespaced": true,
				"kind": "ExternalMetricValueList", "verbs": []string{"get"}}},
		})
	case strings.HasPrefix(r.URL.Path, prefix+"/namespaces/"):
		parts := strings.Split(strings.TrimPrefix(r.URL.Path, prefix+"/namespaces/"), "/")
		if len(parts) != 2 {
			status(http.StatusNotFound, "NotFound", "no such path")
			return
		}
		json.NewEncoder(w).Encode(map[string]any{
			"kind": "ExternalMetricValueList", "apiVersion": "external.metrics.k8s.io/v1beta1", "metadata": map[string]any{},
			"items": []map[string]any{{
				"metricName":   parts[1],
				"metricLabels": map[string]string{"remote_user": rec.User, "remote_groups": strings.Join(rec.Groups, ",")},
				"timestamp":    time.Now().UTC().Format(time.RFC3339),
				"value":        value,
			}},
		})
	default:
		status(http.StatusNotFound, "NotFound", "not served here: "+r.URL.Path)
	}
}

// TestAPIServerRestart proves RestartAPIServer: same port, same etcd data, and the
// controller manager (which outlives it) still acts afterwards.
func TestAPIServerRestart(t *testing.T) {
	c := StartCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := c.EnsureNamespace(ctx, "before-restart"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := c.RestartAPIServer(); err != nil {
		t.Fatal(err)
	}
	t.Logf("kube-apiserver restarted on %s in %s", c.APIServerURL, time.Since(start).Round(time.Millisecond))
	if _, err := c.Client.CoreV1().Namespaces().Get(ctx, "before-restart", metav1.GetOptions{}); err != nil {
		t.Fatalf("namespace created before the restart: %v", err)
	}
	// The kcm's watches resume: a namespace created now gets its default service account.
	if err := c.EnsureNamespace(ctx, "after-restart"); err != nil {
		t.Fatal(err)
	}
	mustWait(t, "default service account in a namespace created after the restart", 60*time.Second, func() (bool, error) {
		_, err := c.Client.CoreV1().ServiceAccounts("after-restart").Get(ctx, "default", metav1.GetOptions{})
		return err == nil, Retry(err)
	})
}
