// Command e2e-bins builds (or finds in its cache) the kube-apiserver and
// kube-controller-manager binaries the e2e tests run, and prints their directory.
// run.sh calls it before `go test` so a cold build does not eat the test timeout.
package main

import (
	"fmt"
	"os"

	"xmetrics.local/e2e/k8sbin"
)

func main() {
	b, err := k8sbin.Ensure(func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "e2e-bins: "+format+"\n", args...)
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e-bins:", err)
		os.Exit(1)
	}
	fmt.Println(b.Dir)
}
