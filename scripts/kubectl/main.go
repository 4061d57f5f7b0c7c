// kubectl built from its Go module, for machines where the Debian image lacks it. The tests use the
// real client; this is the same code the kubectl binary runs (k8s.io/kubernetes/cmd/kubectl).
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubectl/pkg/cmd"
)

func main() {
	os.Exit(cli.Run(cmd.NewDefaultKubectlCommand()))
}
