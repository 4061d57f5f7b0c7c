// Command peer-adapter is the Go peer bench/peers measures xmetrics against: the test adapter of
// sigs.k8s.io/custom-metrics-apiserver (its provider, its API server library, its flags), built from
// the module version pinned in go.mod. It differs from upstream's test-adapter/main.go in one thing:
// upstream opens the metric-writing endpoint on a fixed ":8080" (every interface); a bench must
// listen on loopback only, on a port the kernel picks, so --write-address chooses it and the bound
// address is printed as "write-metrics listening on <addr>".
package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/emicklei/go-restful/v3"
	"k8s.io/component-base/logs"
	"k8s.io/component-base/metrics/legacyregistry"
	"k8s.io/klog/v2"

	"sigs.k8s.io/custom-metrics-apiserver/pkg/apiserver/metrics"
	basecmd "sigs.k8s.io/custom-metrics-apiserver/pkg/cmd"
	fakeprov "sigs.k8s.io/custom-metrics-apiserver/test-adapter/provider"
)

func main() {
	logs.InitLogs()
	defer logs.FlushLogs()

	adapter := &basecmd.AdapterBase{Name: "test-adapter"}
	writeAddress := "127.0.0.1:0"
	adapter.Flags().StringVar(&writeAddress, "write-address", writeAddress,
		"where the POST /write-metrics/... endpoint listens")
	logs.AddFlags(adapter.Flags())
	if err := adapter.Flags().Parse(os.Args); err != nil {
		klog.Fatalf("unable to parse flags: %v", err)
	}

	client, err := adapter.DynamicClient()
	if err != nil {
		klog.Fatalf("unable to construct dynamic client: %v", err)
	}
	mapper, err := adapter.RESTMapper()
	if err != nil {
		klog.Fatalf("unable to construct discovery REST mapper: %v", err)
	}
	provider, webService := fakeprov.NewFakeProvider(client, mapper)
	adapter.WithCustomMetrics(provider)
	adapter.WithExternalMetrics(provider)
	if err := metrics.RegisterMetrics(legacyregistry.Register); err != nil {
		klog.Fatalf("unable to register metrics: %v", err)
	}

	restful.DefaultContainer.Add(webService)
	listener, err := net.Listen("tcp", writeAddress)
	if err != nil {
		klog.Fatalf("write-metrics listener: %v", err)
	}
	fmt.Fprintf(os.Stderr, "write-metrics listening on %s\n", listener.Addr())
	go func() {
		server := &http.Server{ReadHeaderTimeout: 3 * time.Second}
		klog.Fatal(server.Serve(listener))
	}()
	if err := adapter.Run(context.Background()); err != nil {
		klog.Fatalf("unable to run custom metrics adapter: %v", err)
	}
}
