package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"testing"
	"time"
)

// TestXmetricsLauncher checks the launcher on its own, without a cluster and in
// standalone mode: xmetrics serves the certificate the launcher put in --cert-dir
// (valid for xmetrics.xmetrics.svc, the name the aggregator verifies), answers
// /healthz, and Restart keeps the port. The Kubernetes-mode scenarios use
// StartXmetrics(t, cluster, ...) with the cluster's kubeconfig.
func TestXmetricsLauncher(t *testing.T) {
	if _, err := os.Stat(XmetricsBinary()); err != nil {
		t.Fatalf("no xmetrics binary at %s (set XMETRICS_BINARY): %v", XmetricsBinary(), err)
	}
	x := StartXmetricsWith(t, nil, XmetricsOptions{Kubeconfig: "-"})

	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(x.CABundle)
	svcName := x.ServiceName + "." + x.ServiceNamespace + ".svc"
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: svcName},
	}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get(x.URL + "/healthz")
	if err != nil {
		t.Fatalf("GET /healthz verifying the certificate as %s: %v", svcName, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz: %s", resp.Status)
	}

	port, pid := x.Port, x.Pid()
	if err := x.Restart(); err != nil {
		t.Fatal(err)
	}
	if x.Port != port || x.Pid() == pid {
		t.Fatalf("restart: port %d→%d, pid %d→%d", port, x.Port, pid, x.Pid())
	}
}
