package e2e

import (
	"fmt"
	"net/url"
	"path/filepath"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

// startEtcd runs etcd inside the test process (go.etcd.io/etcd/server/v3/embed),
// plain HTTP on loopback, data under dir/etcd, logs to dir/etcd.log.
func startEtcd(dir string) (*embed.Etcd, string, error) {
	clientPort, err := FreeTCPPort()
	if err != nil {
		return nil, "", err
	}
	peerPort, err := FreeTCPPort()
	if err != nil {
		return nil, "", err
	}
	clientURL := url.URL{Scheme: "http", Host: "127.0.0.1:" + itoa(clientPort)}
	peerURL := url.URL{Scheme: "http", Host: "127.0.0.1:" + itoa(peerPort)}

	cfg := embed.NewConfig()
	cfg.Name = "xmetrics-e2e"
	cfg.Dir = filepath.Join(dir, "etcd")
	cfg.ListenClientUrls = []url.URL{clientURL}
	cfg.AdvertiseClientUrls = []url.URL{clientURL}
	cfg.ListenPeerUrls = []url.URL{peerURL}
	cfg.AdvertisePeerUrls = []url.URL{peerURL}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.LogLevel = "warn"
	cfg.LogOutputs = []string{filepath.Join(dir, "etcd.log")}
	// A test cluster's data is thrown away: skip fsync, it is the slowest part on a busy disk.
	cfg.UnsafeNoFsync = true

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, "", fmt.Errorf("start embedded etcd: %w", err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, "", fmt.Errorf("embedded etcd failed: %w", err)
	case <-time.After(60 * time.Second):
		e.Server.Stop()
		e.Close()
		return nil, "", fmt.Errorf("embedded etcd not ready after 60s")
	}
	return e, clientURL.String(), nil
}
