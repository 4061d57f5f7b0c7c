// Package k8sbin builds kube-apiserver and kube-controller-manager from the
// k8s.io/kubernetes module pinned in tests/e2e/go.mod, once per (go.mod, go.sum,
// Go version), into a cache directory that outlives test runs.
//
// Only the standard library is imported so that `go run ./cmd/e2e-bins` (used by
// run.sh to build before the timed `go test`) compiles in a second.
package k8sbin

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"
)

// Packages built, keyed by the binary name they produce.
var Packages = map[string]string{
	"kube-apiserver":          "k8s.io/kubernetes/cmd/kube-apiserver",
	"kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager",
}

// Binaries are the absolute paths of the built control-plane programs.
type Binaries struct {
	Dir               string
	KubeAPIServer     string
	ControllerManager string
}

var (
	once   sync.Once
	result Binaries
	errRes error
)

// Ensure returns the binaries, building them the first time. The directory is
// $XMETRICS_E2E_BIN_DIR if set (used as is when both binaries are there), else
// <user cache dir>/xmetrics-e2e/k8s-<hash of go.mod, go.sum and the Go version>.
// log receives progress lines (may be nil).
func Ensure(log func(format string, args ...any)) (Binaries, error) {
	once.Do(func() { result, errRes = ensure(log) })
	return result, errRes
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	if p := filepath.Join(runtime.GOROOT(), "bin", "go"); fileExists(p) {
		return p
	}
	return "/usr/local/go/bin/go"
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

func ensure(log func(string, ...any)) (Binaries, error) {
	if log == nil {
		log = func(string, ...any) {}
	}
	goBin := goTool()
	out, err := exec.Command(goBin, "env", "GOMOD").Output()
	if err != nil {
		return Binaries{}, fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return Binaries{}, fmt.Errorf("not inside the tests/e2e module (go env GOMOD is %q)", gomod)
	}
	modDir := filepath.Dir(gomod)

	dir := os.Getenv("XMETRICS_E2E_BIN_DIR")
	if dir == "" {
		h := sha256.New()
		for _, f := range []string{"go.mod", "go.sum"} {
			b, err := os.ReadFile(filepath.Join(modDir, f))
			if err != nil {
				return Binaries{}, err
			}
			h.Write(b)
		}
		goVersion, err := exec.Command(goBin, "env", "GOVERSION").Output()
		if err != nil {
			return Binaries{}, fmt.Errorf("go env GOVERSION: %w", err)
		}
		h.Write(goVersion)
		cache, err := os.UserCacheDir()
		if err != nil {
			cache = os.TempDir()
		}
		dir = filepath.Join(cache, "xmetrics-e2e", "k8s-"+hex.EncodeToString(h.Sum(nil))[:16])
	}
	b := Binaries{
		Dir:               dir,
		KubeAPIServer:     filepath.Join(dir, "kube-apiserver"),
		ControllerManager: filepath.Join(dir, "kube-controller-manager"),
	}
	if fileExists(b.KubeAPIServer) && fileExists(b.ControllerManager) {
		return b, nil
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return Binaries{}, err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".build-")
	if err != nil {
		return Binaries{}, err
	}
	defer os.RemoveAll(tmp)
	start := time.Now()
	log("building kube-apiserver and kube-controller-manager into %s (first time: several minutes)", dir)
	// Stamp the release into the binaries as the release build does, so /version
	// says v1.37.x rather than v0.0.0-master.
	verOut, err := exec.Command(goBin, "list", "-m", "-f", "{{.Version}}", "k8s.io/kubernetes").Output()
	if err != nil {
		return Binaries{}, fmt.Errorf("go list -m k8s.io/kubernetes: %w", err)
	}
	version := strings.TrimSpace(string(verOut))
	var major, minor string
	if parts := strings.SplitN(strings.TrimPrefix(version, "v"), ".", 3); len(parts) >= 2 {
		major, minor = parts[0], parts[1]
	}
	var ldflags []string
	for _, pkg := range []string{"k8s.io/component-base/version", "k8s.io/client-go/pkg/version"} {
		ldflags = append(ldflags,
			"-X "+pkg+".gitVersion="+version,
			"-X "+pkg+".gitMajor="+major,
			"-X "+pkg+".gitMinor="+minor,
			"-X "+pkg+".gitTreeState=clean")
	}
	args := []string{"build", "-ldflags=" + strings.Join(ldflags, " "), "-o", tmp + string(filepath.Separator)}
	args = append(args, Packages["kube-apiserver"], Packages["kube-controller-manager"])
	cmd := exec.Command(goBin, args...)
	cmd.Dir = modDir
	var stderr bytes.Buffer
	cmd.Stdout = &stderr
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return Binaries{}, fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	log("built in %s", time.Since(start).Round(time.Second))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Binaries{}, err
	}
	for _, name := range []string{"kube-apiserver", "kube-controller-manager"} {
		if err := os.Rename(filepath.Join(tmp, name), filepath.Join(dir, name)); err != nil {
			return Binaries{}, err
		}
	}
	if os.Getenv("XMETRICS_E2E_BIN_DIR") == "" {
		// Binaries of an older go.mod/go.sum/Go are ~300 MB each pair: drop them.
		old, _ := filepath.Glob(filepath.Join(filepath.Dir(dir), "k8s-*"))
		for _, o := range old {
			if o != dir {
				os.RemoveAll(o)
			}
		}
	}
	return b, nil
}
