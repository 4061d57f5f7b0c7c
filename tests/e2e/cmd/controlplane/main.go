// Command controlplane starts the e2e harness's control plane (embedded etcd, kube-apiserver,
// kube-controller-manager, all on 127.0.0.1) for a program that is not a Go test: bench/peers runs
// xmetrics and the Go peer adapter against it. It writes what a client needs as one JSON object to
// --info, then runs until SIGTERM or SIGINT and stops everything (kube-apiserver and
// kube-controller-manager also die with it if it is killed: they run with a parent-death signal).
//
// The JSON: apiserver (URL), adminKubeconfig (system:masters), caFile (the apiserver's CA), dir,
// and clientTokenFile: a bound token (1 h) of the service account default/bench-client, bound to
// cluster-admin, for the requests a bench sends to the adapters as the HPA controller would.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"xmetrics.local/e2e"
)

type info struct {
	APIServer       string `json:"apiserver"`
	AdminKubeconfig string `json:"adminKubeconfig"`
	CAFile          string `json:"caFile"`
	Dir             string `json:"dir"`
	ClientTokenFile string `json:"clientTokenFile"`
}

func main() {
	infoPath := flag.String("info", "", "where to write the cluster's addresses and files (JSON)")
	flag.Parse()
	if *infoPath == "" {
		fmt.Fprintln(os.Stderr, "controlplane: --info is required")
		os.Exit(2)
	}
	logf := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "controlplane: "+format+"\n", args...)
	}
	cluster, err := e2e.Launch(logf)
	if err != nil {
		logf("%v", err)
		os.Exit(1)
	}
	defer cluster.Stop()

	token, err := clientToken(cluster)
	if err != nil {
		logf("client token: %v", err)
		cluster.Stop()
		os.Exit(1)
	}
	out := info{
		APIServer:       cluster.APIServerURL,
		AdminKubeconfig: cluster.AdminKubeconfig,
		CAFile:          cluster.CAFile,
		Dir:             cluster.Dir,
		ClientTokenFile: filepath.Join(cluster.Dir, "bench-client.token"),
	}
	if err := os.WriteFile(out.ClientTokenFile, []byte(token), 0o600); err != nil {
		logf("%v", err)
		cluster.Stop()
		os.Exit(1)
	}
	body, _ := json.Marshal(out)
	if err := os.WriteFile(*infoPath, body, 0o600); err != nil {
		logf("%v", err)
		cluster.Stop()
		os.Exit(1)
	}

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	logf("%v: stopping", <-signals)
}

// clientToken makes default/bench-client a cluster-admin and returns a bound token for it.
func clientToken(c *e2e.Cluster) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "bench-client"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: "default", Name: "bench-client"}},
	}
	_, err := c.Client.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return "", err
	}
	return c.ServiceAccountToken(ctx, "default", "bench-client")
}
