package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Defaults of the Service that fronts xmetrics for the aggregator.
const (
	XmetricsNamespace      = "xmetrics"
	XmetricsServiceName    = "xmetrics"
	ExternalMetricsGroup   = "external.metrics.k8s.io"
	ExternalMetricsVersion = "v1beta1"
)

// XmetricsOptions configures StartXmetricsWith. Zero values take the defaults.
type XmetricsOptions struct {
	// Args after the subcommand. A flag given here replaces the launcher's default
	// for it (--bind-address, --secure-port, --cert-dir, --dogstatsd-address, --kubeconfig).
	Args []string
	// Subcommand, default "serve".
	Subcommand string
	// Kubeconfig passed as --kubeconfig: default the cluster's admin kubeconfig;
	// "-" passes none (standalone mode).
	Kubeconfig string
	// ServiceNamespace/ServiceName name the Service in front of xmetrics: the
	// serving certificate carries <name>.<namespace>.svc, the name the aggregator verifies.
	ServiceNamespace, ServiceName string
	Env                           []string      // extra KEY=VALUE
	ReadyTimeout                  time.Duration // default 30 s: until GET /healthz answers 200
	// ShareCertsWith runs this xmetrics on the cert dir of another one instead of a new
	// one: same CA, serving and client certificates, as replicas mounting one Secret.
	ShareCertsWith *Xmetrics
	// Container runs the image `make image` built (podman, read-only root, uid 65532, host
	// network) instead of the binary.
	Container bool
}

// Xmetrics is a running xmetrics binary on loopback.
type Xmetrics struct {
	Binary  string
	Dir     string // its files: certs/, xmetrics.log
	CertDir string // --cert-dir: ca.crt ca.key tls.crt tls.key client-admin.crt client-admin.key
	LogPath string

	Port          int    // HTTPS port on 127.0.0.1
	URL           string // https://127.0.0.1:<Port>
	DogStatsDAddr string // 127.0.0.1:<udp port>

	CAFile         string // CA of the serving certificate (the APIService caBundle)
	CABundle       []byte
	ClientCertFile string // client certificate from that CA (CN xmetrics-admin, O system:masters)
	ClientKeyFile  string

	ServiceNamespace, ServiceName string
	// FromSecret: run with --serving-cert-secret, so xmetrics itself creates (or reads) the
	// Secret and writes the cert dir; CABundle is read from there once it appears.
	FromSecret bool
	SecretName string // its --serving-cert-secret
	container  string // the podman container's name (Container)

	t       testing.TB
	proc    *process
	timeout time.Duration
}

// XmetricsBinary is $XMETRICS_BINARY, default ../../build/xmetrics (from tests/e2e).
func XmetricsBinary() string {
	p := os.Getenv("XMETRICS_BINARY")
	if p == "" {
		p = filepath.Join("..", "..", "build", "xmetrics")
	}
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return p
}

// StartXmetrics runs `xmetrics serve <defaults> args...` against the cluster (admin
// kubeconfig), waits for /healthz, and stops it at the end of the test.
func StartXmetrics(t testing.TB, c *Cluster, args ...string) *Xmetrics {
	t.Helper()
	return StartXmetricsWith(t, c, XmetricsOptions{Args: args})
}

// StartXmetricsWith is StartXmetrics with options.
func StartXmetricsWith(t testing.TB, c *Cluster, opts XmetricsOptions) *Xmetrics {
	t.Helper()
	return StartXmetricsReplicas(t, c, opts)[0]
}

// StartXmetricsReplicas starts one xmetrics per options, all before waiting for any (as a
// Deployment's pods race), then waits for each one's /healthz.
func StartXmetricsReplicas(t testing.TB, c *Cluster, replicas ...XmetricsOptions) []*Xmetrics {
	t.Helper()
	var xs []*Xmetrics
	for _, opts := range replicas {
		x, err := newXmetrics(t, c, opts)
		if err != nil {
			t.Fatalf("xmetrics: %v", err)
		}
		t.Cleanup(func() {
			x.Stop()
			if t.Failed() {
				t.Logf("---- tail of %s ----\n%s", x.LogPath, logTail(x.LogPath, 8000))
			}
			if c == nil && !t.Failed() && os.Getenv("XMETRICS_E2E_KEEP") == "" {
				os.RemoveAll(x.Dir) // with a cluster, x.Dir lives in (and goes with) the cluster's Dir
			}
		})
		if err := x.proc.start(); err != nil {
			t.Fatalf("xmetrics: %v", err)
		}
		xs = append(xs, x)
	}
	for _, x := range xs {
		if x.FromSecret {
			if err := x.waitCertDir(x.timeout); err != nil {
				t.Fatalf("xmetrics: %v", err)
			}
		}
		if err := x.WaitHealthy(x.timeout); err != nil {
			t.Fatalf("xmetrics: %v", err)
		}
	}
	return xs
}

func newXmetrics(t testing.TB, c *Cluster, opts XmetricsOptions) (*Xmetrics, error) {
	x := &Xmetrics{
		t:                t,
		Binary:           XmetricsBinary(),
		ServiceNamespace: opts.ServiceNamespace,
		ServiceName:      opts.ServiceName,
		timeout:          opts.ReadyTimeout,
	}
	if x.ServiceNamespace == "" {
		x.ServiceNamespace = XmetricsNamespace
	}
	if x.ServiceName == "" {
		x.ServiceName = XmetricsServiceName
	}
	if x.timeout == 0 {
		x.timeout = 30 * time.Second
	}
	if _, err := os.Stat(x.Binary); err != nil {
		return nil, fmt.Errorf("binary %s: %w (build it, or set XMETRICS_BINARY)", x.Binary, err)
	}
	base := os.TempDir()
	if c != nil {
		base = c.Dir
	}
	dir, err := os.MkdirTemp(base, "xmetrics-")
	if err != nil {
		return nil, err
	}
	x.Dir = dir
	x.LogPath = filepath.Join(dir, "xmetrics.log")
	if o := opts.ShareCertsWith; o != nil {
		if o.ServiceNamespace != x.ServiceNamespace || o.ServiceName != x.ServiceName {
			return nil, fmt.Errorf("sharing the certificates of %s.%s.svc with %s.%s.svc", o.ServiceName, o.ServiceNamespace, x.ServiceName, x.ServiceNamespace)
		}
		x.CertDir, x.CAFile, x.CABundle = o.CertDir, o.CAFile, o.CABundle
		x.ClientCertFile, x.ClientKeyFile = o.ClientCertFile, o.ClientKeyFile
	} else {
		x.CertDir = filepath.Join(dir, "certs")
		if err := os.MkdirAll(x.CertDir, 0o700); err != nil {
			return nil, err
		}
		if name, ok := flagValue(opts.Args, "--serving-cert-secret"); ok {
			x.FromSecret, x.SecretName = true, name // nothing written: the Secret's files arrive after start
			x.CAFile = filepath.Join(x.CertDir, "ca.crt")
			x.ClientCertFile = filepath.Join(x.CertDir, "client-admin.crt")
			x.ClientKeyFile = filepath.Join(x.CertDir, "client-admin.key")
		} else if err := x.writeCerts(); err != nil {
			return nil, err
		}
	}

	if x.Port, err = FreeTCPPort(); err != nil {
		return nil, err
	}
	udp, err := FreeUDPPort()
	if err != nil {
		return nil, err
	}
	x.DogStatsDAddr = "127.0.0.1:" + itoa(udp)

	sub := opts.Subcommand
	if sub == "" {
		sub = "serve"
	}
	args := []string{sub}
	defaults := [][2]string{
		{"--bind-address", "127.0.0.1"},
		{"--secure-port", itoa(x.Port)},
		{"--cert-dir", x.CertDir},
		{"--dogstatsd-address", x.DogStatsDAddr},
	}
	kubeconfig := opts.Kubeconfig
	if kubeconfig == "" && c != nil {
		kubeconfig = c.AdminKubeconfig
	}
	if kubeconfig != "" && kubeconfig != "-" {
		defaults = append(defaults, [2]string{"--kubeconfig", kubeconfig})
	}
	for _, d := range defaults {
		if v, ok := flagValue(opts.Args, d[0]); ok {
			switch d[0] { // keep the fields true to what the binary was told
			case "--secure-port":
				fmt.Sscan(v, &x.Port)
			case "--dogstatsd-address":
				x.DogStatsDAddr = v
			}
			continue
		}
		args = append(args, d[0], d[1])
	}
	args = append(args, opts.Args...)
	x.URL = "https://127.0.0.1:" + itoa(x.Port)
	x.proc = &process{Name: "xmetrics", Path: x.Binary, Args: args, Env: opts.Env, LogPath: x.LogPath}
	if opts.Container {
		if x.proc, err = x.containerized(t, args, opts.Env); err != nil {
			return nil, err
		}
	}
	return x, nil
}

// flagValue finds "--name value" or "--name=value" in args.
func flagValue(args []string, name string) (string, bool) {
	for i, a := range args {
		if a == name {
			if i+1 < len(args) {
				return args[i+1], true
			}
			return "", true
		}
		if strings.HasPrefix(a, name+"=") {
			return strings.TrimPrefix(a, name+"="), true
		}
	}
	return "", false
}

// writeCerts fills --cert-dir so that xmetrics generates nothing: its own CA and a
// serving certificate for localhost, 127.0.0.1 and <service>.<namespace>.svc.
func (x *Xmetrics) writeCerts() error {
	ca, err := NewCertAuthority("xmetrics-e2e-serving-ca")
	if err != nil {
		return err
	}
	if x.CAFile, _, err = ca.WriteFiles(x.CertDir, "ca"); err != nil {
		return err
	}
	x.CABundle = ca.CertPEM
	svc := x.ServiceName + "." + x.ServiceNamespace + ".svc"
	if _, _, err = ca.IssueFiles(x.CertDir, "tls", CertRequest{
		CommonName: svc,
		DNSNames:   []string{svc, svc + ".cluster.local", "localhost"},
		IPs:        []net.IP{net.ParseIP("127.0.0.1")},
		Server:     true,
	}); err != nil {
		return err
	}
	x.ClientCertFile, x.ClientKeyFile, err = ca.IssueFiles(x.CertDir, "client-admin", CertRequest{
		CommonName: "xmetrics-admin", Organizations: []string{"system:masters"}, Client: true,
	})
	return err
}

// waitCertDir waits for the files xmetrics writes from its serving-cert Secret (the
// server starts after them) and takes the CA bundle from there.
func (x *Xmetrics) waitCertDir(timeout time.Duration) error {
	return WaitFor(func() (bool, error) {
		if done, err := x.proc.exited(); done {
			return false, fmt.Errorf("exited: %v\n%s", err, logTail(x.LogPath, 4000))
		}
		for _, f := range []string{x.ClientKeyFile, filepath.Join(x.CertDir, "tls.crt")} {
			if _, err := os.Stat(f); err != nil {
				return false, nil
			}
		}
		b, err := os.ReadFile(x.CAFile)
		if err != nil {
			return false, nil
		}
		x.CABundle = b
		return true, nil
	}, timeout)
}

// HTTPClient verifies xmetrics' serving certificate (as "localhost") and, with
// clientCert, presents the client-admin certificate.
func (x *Xmetrics) HTTPClient(clientCert bool) (*http.Client, error) {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(x.CABundle)
	cfg := &tls.Config{RootCAs: pool, ServerName: "localhost"}
	if clientCert {
		pair, err := tls.LoadX509KeyPair(x.ClientCertFile, x.ClientKeyFile)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}, nil
}

// WaitHealthy waits until GET /healthz answers 200 (fails early if the process exits).
func (x *Xmetrics) WaitHealthy(timeout time.Duration) error {
	hc, err := x.HTTPClient(false)
	if err != nil {
		return err
	}
	defer hc.CloseIdleConnections()
	var last string
	err = WaitFor(func() (bool, error) {
		if done, err := x.proc.exited(); done {
			return false, fmt.Errorf("exited: %v\n%s", err, logTail(x.LogPath, 4000))
		}
		resp, err := hc.Get(x.URL + "/healthz")
		if err != nil {
			last = err.Error()
			return false, nil
		}
		resp.Body.Close()
		last = resp.Status
		return resp.StatusCode == http.StatusOK, nil
	}, timeout)
	if err != nil {
		return fmt.Errorf("%s/healthz (last: %s): %w", x.URL, last, err)
	}
	return nil
}

// Stop ends xmetrics (SIGTERM, SIGKILL after 10 s).
func (x *Xmetrics) Stop() {
	x.proc.stop(10 * time.Second)
	x.removeContainer()
}

// Kill ends xmetrics with SIGKILL (no shutdown: a crash, an OOM kill) and waits for it to exit.
func (x *Xmetrics) Kill() { x.proc.kill() }

// Restart stops and starts xmetrics with the same port, certificates and flags.
func (x *Xmetrics) Restart() error {
	x.Stop()
	if err := x.proc.start(); err != nil {
		return err
	}
	return x.WaitHealthy(x.timeout)
}

// Pid of the running process (0 if none).
func (x *Xmetrics) Pid() int { return x.proc.pid() }

// Logs returns everything xmetrics printed so far.
func (x *Xmetrics) Logs() string {
	b, _ := os.ReadFile(x.LogPath)
	return string(b)
}

// SendDogStatsD sends each line as one UDP datagram to xmetrics' DogStatsD listener.
func (x *Xmetrics) SendDogStatsD(lines ...string) error {
	conn, err := net.Dial("udp", x.DogStatsDAddr)
	if err != nil {
		return err
	}
	defer conn.Close()
	for _, l := range lines {
		if _, err := conn.Write([]byte(l)); err != nil {
			return err
		}
	}
	return nil
}

// APIServiceRegistration is v1beta1.external.metrics.k8s.io pointed at this
// xmetrics through an ExternalName Service (see Cluster.RegisterAPIService).
func (x *Xmetrics) APIServiceRegistration() APIServiceRegistration {
	return APIServiceRegistration{
		Group:            ExternalMetricsGroup,
		Version:          ExternalMetricsVersion,
		ServiceNamespace: x.ServiceNamespace,
		ServiceName:      x.ServiceName,
		Port:             x.Port,
		CABundle:         x.CABundle,
	}
}
