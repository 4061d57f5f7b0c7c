package e2e

// TLS with no manual step: deploy/manifests as they ship (no caBundle anywhere in the test),
// xmetrics creating its serving-cert Secret, injecting its CA into the APIService, and rotating
// the certificate while requests go through kube-apiserver without one failing.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const (
	servingCertSecret  = "xmetrics-serving-cert"
	externalAPIService = "v1beta1.external.metrics.k8s.io"
)

// manifestsReplica is how 20-deployment.yaml runs xmetrics, for a pod named podName, plus
// extra flags.
func manifestsReplica(t *testing.T, podName string, extra ...string) XmetricsOptions {
	t.Helper()
	var dep appsv1.Deployment
	decodeManifest(t, "20-deployment.yaml", &dep)
	ctr := dep.Spec.Template.Spec.Containers[0]
	args := chartServeArgs(t, ctr)
	for _, want := range []string{"--serving-cert-secret=" + servingCertSecret, "--inject-ca-bundle=" + externalAPIService} {
		if !contains(args, want) {
			t.Fatalf("20-deployment.yaml: xmetrics is not run with %s (args %q)", want, args)
		}
	}
	if dep.Spec.Template.Spec.Volumes[0].EmptyDir == nil {
		t.Fatalf("20-deployment.yaml: the cert dir is not an emptyDir: %+v", dep.Spec.Template.Spec.Volumes[0])
	}
	// An extra flag replaces the manifest's of the same name (a flag may be given once).
	for _, x := range extra {
		name := strings.SplitN(x, "=", 2)[0]
		kept := args[:0]
		for _, a := range args {
			if strings.SplitN(a, "=", 2)[0] != name {
				kept = append(kept, a)
			}
		}
		args = append(kept, x)
	}
	return XmetricsOptions{Args: args, Env: podEnv(t, ctr, podName)}
}

// checkInjectedCaBundle: the APIService trusts exactly the CA bundle of the Secret (and of the
// files xmetrics serves), with verification on.
func (e *xmEnv) checkInjectedCaBundle(apiService string) {
	t := e.t
	t.Helper()
	api, err := e.c.Aggregator.ApiregistrationV1().APIServices().Get(e.ctx, apiService, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ns, name := e.x.ServiceNamespace, e.x.SecretName // the Secret lives beside the Service
	sec, err := e.c.Client.CoreV1().Secrets(ns).Get(e.ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("Secret %s/%s: %v", ns, name, err)
	}
	if api.Spec.InsecureSkipTLSVerify {
		t.Fatalf("APIService %s: insecureSkipTLSVerify is on", apiService)
	}
	if string(api.Spec.CABundle) != string(sec.Data["ca.crt"]) || len(api.Spec.CABundle) == 0 {
		t.Fatalf("APIService %s caBundle (%d bytes) is not the Secret's ca.crt (%d bytes)", apiService, len(api.Spec.CABundle), len(sec.Data["ca.crt"]))
	}
	if string(e.x.CABundle) != string(sec.Data["ca.crt"]) {
		t.Fatalf("the cert dir's ca.crt is not the Secret's")
	}
	if sec.Annotations["xmetrics.io/issued-by"] != "xmetrics" {
		t.Fatalf("Secret %s: annotations %v, want xmetrics.io/issued-by=xmetrics", sec.Name, sec.Annotations)
	}
	if _, ok := sec.Data["ca.key"]; !ok {
		t.Fatalf("Secret %s holds no ca.key: rotation would be impossible", sec.Name)
	}
	if _, err := os.Stat(filepath.Join(e.x.CertDir, "ca.key")); err == nil {
		t.Fatalf("the CA key was written to the cert dir %s: it belongs in the Secret only", e.x.CertDir)
	}
}

func TestManifestsNeedNoTLSStep(t *testing.T) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	c := startManifestsCluster(t, ctx)
	if _, err := c.Client.CoreV1().Secrets(XmetricsNamespace).Get(ctx, servingCertSecret, metav1.GetOptions{}); err == nil {
		t.Fatalf("Secret %s exists before xmetrics ran", servingCertSecret)
	}
	// Two replicas started at once, as the Deployment's two pods: one create of the Secret
	// wins, the other replica uses the winner's.
	envs := launchXmetricsEnvs(t, ctx, c, XmetricsNamespace, "xmetrics",
		manifestsReplica(t, "xmetrics-a"), manifestsReplica(t, "xmetrics-b"))
	a, b := envs[0], envs[1]
	for _, f := range []string{"ca.crt", "tls.crt", "client-admin.crt"} {
		fa, _ := os.ReadFile(filepath.Join(a.x.CertDir, f))
		fb, _ := os.ReadFile(filepath.Join(b.x.CertDir, f))
		if len(fa) == 0 || string(fa) != string(fb) {
			t.Fatalf("the replicas serve different %s: one Secret should give both the same", f)
		}
	}
	created := 0
	for _, x := range []*Xmetrics{a.x, b.x} {
		created += strings.Count(logTail(x.LogPath, 1<<20), "event=secret_created")
	}
	if created != 1 {
		t.Fatalf("%d replicas logged event=secret_created, want exactly 1", created)
	}
	// 30-service.yaml and 40-apiservice.yaml as they ship; only the Service is pointed at
	// loopback (no kubelet here). No caBundle is given: xmetrics injects it.
	a.register()
	t.Logf("APIService Available with verified TLS %s after the cluster started", time.Since(start).Round(time.Millisecond))

	// The value of a DogStatsD gauge through kube-apiserver. Sent to both replicas, each with its
	// own embedded store: whichever leads (the Lease) polls its own.
	startGaugeTo(t, []*Xmetrics{a.x, b.x}, "tls_e2e_depth", "queue:tls", 7, time.Second)
	var last string
	if err := WaitFor(func() (bool, error) {
		l, err := a.readMetric("default", "tls_e2e_depth", "queue=tls")
		if err != nil {
			last = err.Error()
			return false, nil
		}
		last = fmt.Sprintf("%+v", l.Items)
		return len(l.Items) == 1 && l.Items[0].Value == "7", nil
	}, 60*time.Second); err != nil {
		t.Fatalf("tls_e2e_depth through kube-apiserver (last %s): %v", last, err)
	}
	recordTiming("manifests, no TLS step: Available and a value read %s after the cluster started", time.Since(start).Round(100*time.Millisecond))
}

// servingSerial dials xmetrics the way the aggregator does (ServerName <service>.<ns>.svc),
// trusting exactly the APIService's caBundle at this moment, on a new connection each time.
func servingSerial(ctx context.Context, c *Cluster, addr string) (string, error) {
	api, err := c.Aggregator.ApiregistrationV1().APIServices().Get(ctx, externalAPIService, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(api.Spec.CABundle) {
		return "", fmt.Errorf("APIService caBundle holds no certificate")
	}
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 5 * time.Second}, Config: &tls.Config{RootCAs: pool, ServerName: XmetricsServiceName + "." + XmetricsNamespace + ".svc"}}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	return conn.(*tls.Conn).ConnectionState().PeerCertificates[0].SerialNumber.String(), nil
}

func TestServingCertificateRotatesWithNoFailedRequest(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c := startManifestsCluster(t, ctx)
	// 30 s certificates: renewed when 10 s are left, so about every 20 s; a round every 3 s.
	e := launchXmetricsEnvs(t, ctx, c, XmetricsNamespace, "xmetrics", manifestsReplica(t, "xmetrics-a", "--cert-validity=30s"))[0]
	e.register()
	startGauge(t, e.x, "tls_rotation_depth", "queue:rot", 3, time.Second)
	// And an HPA reading it the whole time: 3 against an average of 1 per pod = 3 replicas,
	// whatever the current count (AverageValue divides by the target, not the pods).
	const appNS, app = "rotation-app", "worker"
	e.startDeployment(appNS, app, 1)
	e.createHPA(appNS, externalHPA(app, app, "tls_rotation_depth", map[string]string{"queue": "rot"}, autoscalingv2.AverageValueMetricType, "1", 1, 5))
	e.waitHPA(appNS, app, "HPA ScalingActive=True, desired 3", 60*time.Second, func(h *autoscalingv2.HorizontalPodAutoscaler) bool {
		return isTrue(h, autoscalingv2.ScalingActive) && h.Status.DesiredReplicas == 3
	})
	hpa := e.recordHPA(appNS, app)
	watchFrom := time.Now()

	// Readers through kube-apiserver, as the HPA controller reads: every answer must be 200.
	var ok, failed atomic.Int64
	var firstFailure atomic.Value
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		path := externalMetricPath("default", "tls_rotation_depth", "")
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			var code int
			_, err := c.Client.Discovery().RESTClient().Get().AbsPath(path).Param("labelSelector", "queue=rot").Do(ctx).StatusCode(&code).Raw()
			if err != nil || code != 200 {
				if failed.Add(1) == 1 {
					firstFailure.Store(fmt.Sprintf("%s: %d %v", time.Now().Format(time.RFC3339Nano), code, err))
				}
				continue
			}
			ok.Add(1)
		}
	}()

	// Meanwhile new connections, verified against the APIService's caBundle, see the serving
	// certificate change.
	serials := map[string]bool{}
	var order []string
	deadline := time.Now().Add(75 * time.Second)
	for time.Now().Before(deadline) && len(serials) < 4 {
		s, err := servingSerial(ctx, c, "127.0.0.1:"+itoa(e.x.Port))
		if err != nil {
			t.Fatalf("a new connection trusting the APIService's caBundle failed: %v", err)
		}
		if !serials[s] {
			serials[s] = true
			order = append(order, s)
			t.Logf("%s serving certificate serial %s", time.Now().Format(time.RFC3339), s)
		}
		time.Sleep(500 * time.Millisecond)
	}
	close(stop)
	<-done
	if len(serials) < 3 {
		t.Fatalf("saw %d serving certificates in 75 s, want at least 3 (two rotations): %v", len(serials), order)
	}
	if failed.Load() != 0 {
		t.Fatalf("%d of %d requests through kube-apiserver failed during rotation; first: %v", failed.Load(), failed.Load()+ok.Load(), firstFailure.Load())
	}
	if ok.Load() < 100 {
		t.Fatalf("only %d requests went through kube-apiserver", ok.Load())
	}
	e.checkInjectedCaBundle(externalAPIService)
	if s, bad := hpa.firstAfter(watchFrom, func(s hpaSample) bool { return s.active != "True" || s.desired != 3 }); bad {
		t.Fatalf("the HPA failed during rotation at +%s: ScalingActive=%s desired=%d\n  %s", s.at.Sub(watchFrom).Round(time.Millisecond), s.active, s.desired, hpa.history(watchFrom))
	}
	t.Logf("%d certificates, %d requests through kube-apiserver, none failed", len(serials), ok.Load())
	recordTiming("rotation: %d serving certificates in %d requests through kube-apiserver, 0 failed", len(serials), ok.Load())
}

// The image as a cluster runs it: the manifests' flags, the APIService pointed at the container
// (ExternalName localhost), its TLS from the Secret it creates, and an HPA scaling through it.
func TestContainerImageServesAnHPAThroughTheAPIService(t *testing.T) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	c := startManifestsCluster(t, ctx)
	opts := manifestsReplica(t, "xmetrics-image")
	opts.Container = true
	e := launchXmetricsEnvs(t, ctx, c, XmetricsNamespace, "xmetrics", opts)[0]
	e.register()
	if !strings.Contains(logTail(e.x.LogPath, 1<<20), "start xmetrics (container localhost/xmetrics:") {
		t.Fatalf("xmetrics did not run from the image:\n%s", logTail(e.x.LogPath, 2000))
	}

	// 40 against a target of 10 per the HPA's Value = 4 replicas.
	const appNS, app, metric = "image-app", "consumer", "image_queue_depth"
	e.startDeployment(appNS, app, 1)
	startGauge(t, e.x, metric, "queue:image", 40, time.Second)
	e.createHPA(appNS, externalHPA(app, app, metric, map[string]string{"queue": "image"}, autoscalingv2.ValueMetricType, "10", 1, 6))
	e.waitHPA(appNS, app, "HPA ScalingActive=True, value 40, desired 4", 90*time.Second, func(h *autoscalingv2.HorizontalPodAutoscaler) bool {
		m, ok := currentExternal(h)
		return isTrue(h, autoscalingv2.ScalingActive) && ok && m == 40000 && h.Status.DesiredReplicas == 4
	})
	e.waitDeployment(appNS, app, "scaled to 4 by the HPA", 30*time.Second, func(spec, ready int32) bool { return spec == 4 })
	recordTiming("container image: an HPA scaled through it %s after the cluster started", time.Since(start).Round(100*time.Millisecond))
}
