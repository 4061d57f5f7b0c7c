// Package e2e starts a real Kubernetes control plane on loopback for xmetrics'
// end-to-end tests: embedded etcd, kube-apiserver (aggregation layer with
// front-proxy certificates, RBAC) and kube-controller-manager (deployment,
// replicaset, HPA, service-account and garbage-collector controllers), both built
// from the k8s.io/kubernetes module pinned in go.mod. There is no kubelet and no
// scheduler: MarkPodsReady / KeepPodsReady play the kubelet's part.
package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	aggregator "k8s.io/kube-aggregator/pkg/client/clientset_generated/clientset"

	"xmetrics.local/e2e/k8sbin"
)

// KubernetesVersion is the k8s.io/kubernetes release pinned in go.mod.
const KubernetesVersion = "v1.37.2"

// FrontProxyClientName is the CN of the certificate kube-apiserver presents to
// aggregated API servers, and the only name in --requestheader-allowed-names.
const FrontProxyClientName = "front-proxy-client"

// Cluster is a running control plane. All paths are absolute; all addresses are loopback.
type Cluster struct {
	Dir string // everything of this cluster: pki/, etcd/, *.log, kubeconfigs

	APIServerURL    string // https://127.0.0.1:<port>
	APIServerPort   int
	AdminKubeconfig string // user "admin", group system:masters (client certificate)
	EtcdURL         string

	CAFile            string // signs the apiserver's serving cert and every client cert (--client-ca-file)
	ClientCAFile      string // same file as CAFile
	FrontProxyCAFile  string // --requestheader-client-ca-file
	FrontProxyCert    string // --proxy-client-cert-file (CN front-proxy-client)
	FrontProxyKey     string // --proxy-client-key-file
	ServiceAccountKey string // signs service-account tokens (private, PKCS#8)

	RESTConfig *rest.Config          // admin
	Client     *kubernetes.Clientset // admin
	Aggregator aggregator.Interface  // admin, apiregistration.k8s.io

	APIServerLog         string
	ControllerManagerLog string

	CA           *CertAuthority
	FrontProxyCA *CertAuthority

	t         owner
	pki       string
	etcd      *embed.Etcd
	apiserver *process
	kcm       *process
	stopOnce  sync.Once
}

// owner is what a Cluster needs from whoever started it: a log, whether it failed (then its files
// are kept and its logs printed), and a place for cleanups. A testing.TB is one; Launch makes one
// for a program that is not a test.
type owner interface {
	Logf(format string, args ...any)
	Failed() bool
	Cleanup(func())
}

// programOwner is the owner of a cluster started by Launch: it logs through logf, never fails, and
// runs its cleanups (last registered first) when the cluster stops.
type programOwner struct {
	logf     func(format string, args ...any)
	cleanups []func()
}

func (o *programOwner) Logf(format string, args ...any) { o.logf(format, args...) }
func (o *programOwner) Failed() bool                    { return false }
func (o *programOwner) Cleanup(f func())                { o.cleanups = append(o.cleanups, f) }

// Launch starts a control plane as StartCluster does, for a program (bench/peers' controlplane
// command): progress goes to logf and the caller calls Stop.
func Launch(logf func(format string, args ...any)) (*Cluster, error) {
	c, err := startCluster(&programOwner{logf: logf})
	if err != nil {
		if c != nil {
			c.dumpLogs()
			c.Stop()
		}
		return nil, err
	}
	return c, nil
}

// StartCluster builds (first time only) and starts etcd, kube-apiserver and
// kube-controller-manager, waits until the apiserver is ready and the controller
// manager has created the default service account, and registers Stop with t.Cleanup.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	c, err := startCluster(t)
	if err != nil {
		if c != nil {
			c.dumpLogs()
			c.Stop()
		}
		t.Fatalf("start cluster: %v", err)
	}
	t.Cleanup(c.Stop)
	return c
}

func startCluster(t owner) (*Cluster, error) {
	start := time.Now()
	bins, err := k8sbin.Ensure(t.Logf)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "xmetrics-e2e-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{t: t, Dir: dir, pki: filepath.Join(dir, "pki")}
	if err := os.MkdirAll(c.pki, 0o755); err != nil {
		return c, err
	}
	if err := c.writePKI(); err != nil {
		return c, fmt.Errorf("pki: %w", err)
	}

	c.etcd, c.EtcdURL, err = startEtcd(dir)
	if err != nil {
		return c, err
	}

	c.APIServerPort, err = FreeTCPPort()
	if err != nil {
		return c, err
	}
	c.APIServerURL = "https://127.0.0.1:" + itoa(c.APIServerPort)
	if err := c.writeAdminConfig(); err != nil {
		return c, err
	}

	c.APIServerLog = filepath.Join(dir, "kube-apiserver.log")
	c.apiserver = &process{
		Name:    "kube-apiserver",
		Path:    bins.KubeAPIServer,
		Args:    c.apiserverArgs(),
		LogPath: c.APIServerLog,
	}
	if err := c.StartAPIServer(); err != nil {
		return c, err
	}
	t.Logf("kube-apiserver %s ready at %s after %s", KubernetesVersion, c.APIServerURL, time.Since(start).Round(time.Millisecond))

	kcmKubeconfig, err := c.ClientCertKubeconfig("system:kube-controller-manager")
	if err != nil {
		return c, err
	}
	c.ControllerManagerLog = filepath.Join(dir, "kube-controller-manager.log")
	c.kcm = &process{
		Name:    "kube-controller-manager",
		Path:    bins.ControllerManager,
		Args:    c.controllerManagerArgs(kcmKubeconfig),
		LogPath: c.ControllerManagerLog,
	}
	if err := c.kcm.start(); err != nil {
		return c, err
	}
	// The service-account controller creating default/default proves the kcm runs
	// (and pods can be admitted: the ServiceAccount admission plugin needs it).
	err = WaitFor(func() (bool, error) {
		if done, err := c.kcm.exited(); done {
			return false, fmt.Errorf("kube-controller-manager exited: %v\n%s", err, logTail(c.ControllerManagerLog, 4000))
		}
		_, err := c.Client.CoreV1().ServiceAccounts("default").Get(context.Background(), "default", metav1.GetOptions{})
		return err == nil, nil
	}, 90*time.Second)
	if err != nil {
		return c, fmt.Errorf("waiting for kube-controller-manager: %w", err)
	}
	t.Logf("control plane up in %s (dir %s)", time.Since(start).Round(time.Millisecond), dir)
	return c, nil
}

func (c *Cluster) writePKI() error {
	var err error
	if c.CA, err = NewCertAuthority("xmetrics-e2e-ca"); err != nil {
		return err
	}
	if c.FrontProxyCA, err = NewCertAuthority("xmetrics-e2e-front-proxy-ca"); err != nil {
		return err
	}
	if c.CAFile, _, err = c.CA.WriteFiles(c.pki, "ca"); err != nil {
		return err
	}
	c.ClientCAFile = c.CAFile
	if c.FrontProxyCAFile, _, err = c.FrontProxyCA.WriteFiles(c.pki, "front-proxy-ca"); err != nil {
		return err
	}
	if _, _, err = c.CA.IssueFiles(c.pki, "apiserver", CertRequest{
		CommonName: "kube-apiserver",
		DNSNames:   []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
		IPs:        []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.0.0.1")},
		Server:     true,
	}); err != nil {
		return err
	}
	if c.FrontProxyCert, c.FrontProxyKey, err = c.FrontProxyCA.IssueFiles(c.pki, "front-proxy-client", CertRequest{
		CommonName: FrontProxyClientName,
		Client:     true,
	}); err != nil {
		return err
	}
	if c.ServiceAccountKey, _, err = writeServiceAccountKeys(c.pki); err != nil {
		return err
	}
	return nil
}

func (c *Cluster) writeAdminConfig() error {
	certPEM, keyPEM, err := c.CA.Issue(CertRequest{CommonName: "admin", Organizations: []string{"system:masters"}, Client: true})
	if err != nil {
		return err
	}
	c.AdminKubeconfig = filepath.Join(c.Dir, "admin.kubeconfig")
	if err := c.writeKubeconfig(c.AdminKubeconfig, "admin", certPEM, keyPEM, ""); err != nil {
		return err
	}
	c.RESTConfig = &rest.Config{
		Host:    c.APIServerURL,
		QPS:     100,
		Burst:   200,
		Timeout: 30 * time.Second,
		TLSClientConfig: rest.TLSClientConfig{
			CAData:   c.CA.CertPEM,
			CertData: certPEM,
			KeyData:  keyPEM,
		},
	}
	if c.Client, err = kubernetes.NewForConfig(c.RESTConfig); err != nil {
		return err
	}
	if c.Aggregator, err = aggregator.NewForConfig(c.RESTConfig); err != nil {
		return err
	}
	return nil
}

func (c *Cluster) apiserverArgs() []string {
	p := func(name string) string { return filepath.Join(c.pki, name) }
	return []string{
		"--etcd-servers=" + c.EtcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + itoa(c.APIServerPort),
		// Endpoints may not hold a loopback address: keep the "kubernetes" service without endpoints.
		"--endpoint-reconciler-type=none",
		"--service-cluster-ip-range=10.0.0.0/24",
		"--cert-dir=" + p(""),
		"--tls-cert-file=" + p("apiserver.crt"),
		"--tls-private-key-file=" + p("apiserver.key"),
		"--client-ca-file=" + c.ClientCAFile,
		"--authorization-mode=Node,RBAC",
		// Aggregation layer: the apiserver's front-proxy identity and how it passes the user on.
		"--requestheader-client-ca-file=" + c.FrontProxyCAFile,
		"--requestheader-allowed-names=" + FrontProxyClientName,
		"--requestheader-username-headers=X-Remote-User",
		"--requestheader-group-headers=X-Remote-Group",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		"--proxy-client-cert-file=" + c.FrontProxyCert,
		"--proxy-client-key-file=" + c.FrontProxyKey,
		// Resolve an APIService's Service (ExternalName -> its host) instead of its endpoints.
		"--enable-aggregator-routing=false",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + p("sa.pub"),
		"--service-account-signing-key-file=" + p("sa.key"),
		// On SIGTERM end open watches within 2 s (default: the HTTP server waits up to
		// --request-timeout for them), so RestartAPIServer is quick and graceful.
		"--shutdown-watch-termination-grace-period=2s",
		"--profiling=false",
		"--v=2",
	}
}

func (c *Cluster) controllerManagerArgs(kubeconfig string) []string {
	return []string{
		"--kubeconfig=" + kubeconfig,
		"--secure-port=0",
		"--leader-elect=false",
		"--controllers=deployment-controller,replicaset-controller,horizontal-pod-autoscaler-controller," +
			"serviceaccount-controller,serviceaccount-token-controller,garbage-collector-controller,namespace-controller",
		// Every controller gets its own service account: the HPA controller really is
		// system:serviceaccount:kube-system:horizontal-pod-autoscaler.
		"--use-service-account-credentials=true",
		"--service-account-private-key-file=" + c.ServiceAccountKey,
		"--root-ca-file=" + c.CAFile,
		"--horizontal-pod-autoscaler-sync-period=1s",
		"--horizontal-pod-autoscaler-downscale-stabilization=0s",
		"--profiling=false",
		"--v=2",
	}
}

// StartAPIServer starts kube-apiserver (again) on the same port and etcd and waits for /readyz.
func (c *Cluster) StartAPIServer() error {
	if err := c.apiserver.start(); err != nil {
		return err
	}
	return c.waitAPIServerReady(120 * time.Second)
}

// StopAPIServer stops kube-apiserver (SIGTERM, then SIGKILL after 20 s).
func (c *Cluster) StopAPIServer() {
	c.apiserver.stop(20 * time.Second)
}

// RestartAPIServer stops kube-apiserver and starts it again on the same port with
// the same etcd and certificates; it returns when /readyz answers ok.
func (c *Cluster) RestartAPIServer() error {
	c.StopAPIServer()
	return c.StartAPIServer()
}

// RestartControllerManager stops and starts kube-controller-manager.
func (c *Cluster) RestartControllerManager() error {
	c.kcm.stop(20 * time.Second)
	return c.kcm.start()
}

func (c *Cluster) waitAPIServerReady(timeout time.Duration) error {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(c.CA.CertPEM)
	hc := &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}
	defer hc.CloseIdleConnections()
	var last string
	err := WaitFor(func() (bool, error) {
		if done, err := c.apiserver.exited(); done {
			return false, fmt.Errorf("kube-apiserver exited: %v\n%s", err, logTail(c.APIServerLog, 6000))
		}
		resp, err := hc.Get(c.APIServerURL + "/readyz")
		if err != nil {
			last = err.Error()
			return false, nil
		}
		resp.Body.Close()
		last = resp.Status
		return resp.StatusCode == http.StatusOK, nil
	}, timeout)
	if err != nil {
		return fmt.Errorf("kube-apiserver /readyz (last: %s): %w", last, err)
	}
	return nil
}

// Stop stops the controller manager, the apiserver and etcd. The cluster
// directory is removed unless the test failed or XMETRICS_E2E_KEEP is set.
func (c *Cluster) Stop() {
	c.stopOnce.Do(func() {
		if o, ok := c.t.(*programOwner); ok {
			for i := len(o.cleanups) - 1; i >= 0; i-- {
				o.cleanups[i]()
			}
		}
		if c.t.Failed() {
			c.dumpLogs()
		}
		if c.kcm != nil {
			c.kcm.stop(10 * time.Second)
		}
		if c.apiserver != nil {
			c.apiserver.stop(10 * time.Second)
		}
		if c.etcd != nil {
			c.etcd.Close()
		}
		if c.t.Failed() || os.Getenv("XMETRICS_E2E_KEEP") != "" {
			c.t.Logf("cluster files kept in %s", c.Dir)
		} else {
			os.RemoveAll(c.Dir)
		}
	})
}

func (c *Cluster) dumpLogs() {
	for _, p := range []string{c.APIServerLog, c.ControllerManagerLog} {
		if p != "" {
			c.t.Logf("---- tail of %s ----\n%s", p, logTail(p, 6000))
		}
	}
}

// writeKubeconfig writes a kubeconfig for this cluster with either a client
// certificate (certPEM/keyPEM) or a bearer token; everything is inline (*-data).
func (c *Cluster) writeKubeconfig(path, user string, certPEM, keyPEM []byte, token string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["e2e"] = &clientcmdapi.Cluster{Server: c.APIServerURL, CertificateAuthorityData: c.CA.CertPEM}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{ClientCertificateData: certPEM, ClientKeyData: keyPEM, Token: token}
	cfg.Contexts["e2e"] = &clientcmdapi.Context{Cluster: "e2e", AuthInfo: user, Namespace: "default"}
	cfg.CurrentContext = "e2e"
	return clientcmd.WriteToFile(*cfg, path)
}

// ClientCertKubeconfig writes a kubeconfig authenticating as user with groups
// through a client certificate from the cluster CA; returns its path.
func (c *Cluster) ClientCertKubeconfig(user string, groups ...string) (string, error) {
	certPEM, keyPEM, err := c.CA.Issue(CertRequest{CommonName: user, Organizations: groups, Client: true})
	if err != nil {
		return "", err
	}
	path := filepath.Join(c.Dir, "user-"+sanitize(user)+".kubeconfig")
	return path, c.writeKubeconfig(path, sanitize(user), certPEM, keyPEM, "")
}

// ServiceAccountToken creates namespace/serviceaccount if missing and returns a
// bound token for it (TokenRequest, 1 h), as a pod of that service account would get.
func (c *Cluster) ServiceAccountToken(ctx context.Context, namespace, name string) (string, error) {
	if err := c.EnsureNamespace(ctx, namespace); err != nil {
		return "", err
	}
	_, err := c.Client.CoreV1().ServiceAccounts(namespace).Create(ctx,
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return "", err
	}
	expiry := int64(3600)
	tr, err := c.Client.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &expiry}}, metav1.CreateOptions{})
	if err != nil {
		return "", err
	}
	return tr.Status.Token, nil
}

// ServiceAccountKubeconfig writes a kubeconfig with a token of namespace/name; returns its path.
func (c *Cluster) ServiceAccountKubeconfig(ctx context.Context, namespace, name string) (string, error) {
	token, err := c.ServiceAccountToken(ctx, namespace, name)
	if err != nil {
		return "", err
	}
	path := filepath.Join(c.Dir, "sa-"+sanitize(namespace)+"-"+sanitize(name)+".kubeconfig")
	return path, c.writeKubeconfig(path, "sa-"+sanitize(name), nil, nil, token)
}

// EnsureNamespace creates the namespace if it does not exist.
func (c *Cluster) EnsureNamespace(ctx context.Context, name string) error {
	_, err := c.Client.CoreV1().Namespaces().Create(ctx,
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	return nil
}

// WaitFor polls cond every 100 ms until it returns true, returns an error, or
// timeout passes (then the error names the timeout and cond's last error).
func WaitFor(cond func() (bool, error), timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		ok, err := cond()
		if err != nil {
			var soft *softError
			if !errors.As(err, &soft) {
				return err
			}
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				return fmt.Errorf("timed out after %s: %w", timeout, err)
			}
			return fmt.Errorf("timed out after %s", timeout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Retry wraps an error that WaitFor should report on timeout but not stop on.
func Retry(err error) error {
	if err == nil {
		return nil
	}
	return &softError{err}
}

type softError struct{ err error }

func (e *softError) Error() string { return e.err.Error() }
func (e *softError) Unwrap() error { return e.err }

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		}
		return '_'
	}, s)
}
