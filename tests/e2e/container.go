package e2e

// xmetrics from the image `make image` builds, run by podman (runc, cgroupfs; crun refuses this
// machine's hybrid cgroup layout) as the chart runs it: read-only root, uid 65532, host network.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// ImageArchive is $XMETRICS_IMAGE_ARCHIVE, default build/image/xmetrics-<version>.oci.tar of the
// repository, the version read from CMakeLists.txt.
func ImageArchive() (path, tag string, err error) {
	root, _ := filepath.Abs(filepath.Join("..", ".."))
	b, err := os.ReadFile(filepath.Join(root, "CMakeLists.txt"))
	if err != nil {
		return "", "", err
	}
	m := regexp.MustCompile(`(?m)^project\(xmetrics VERSION ([0-9.]+)`).FindSubmatch(b)
	if m == nil {
		return "", "", fmt.Errorf("no project(xmetrics VERSION …) in CMakeLists.txt")
	}
	tag = "localhost/xmetrics:" + string(m[1])
	path = os.Getenv("XMETRICS_IMAGE_ARCHIVE")
	if path == "" {
		path = filepath.Join(root, "build", "image", "xmetrics-"+string(m[1])+".oci.tar")
	}
	return path, tag, nil
}

// podmanStore is a private podman storage (in the test's directory, vfs driver) with the image
// loaded; nothing is left in the machine's own storage.
type podmanStore struct {
	dir  string
	base []string
	tag  string
}

var (
	podmanOnce sync.Once
	podman     *podmanStore
	podmanErr  error
)

// loadedImage loads the image archive into one private store for the whole test binary (about
// 5 s once, instead of per test).
func loadedImage(t testing.TB) *podmanStore {
	t.Helper()
	podmanOnce.Do(func() {
		archive, tag, err := ImageArchive()
		if err != nil {
			podmanErr = err
			return
		}
		if _, err := os.Stat(archive); err != nil {
			podmanErr = fmt.Errorf("image archive %s: %w (make image builds it)", archive, err)
			return
		}
		dir, err := os.MkdirTemp("", "xmetrics-e2e-podman-")
		if err != nil {
			podmanErr = err
			return
		}
		p := &podmanStore{dir: dir, tag: tag, base: []string{"--root", filepath.Join(dir, "storage"),
			"--runroot", filepath.Join(dir, "run"), "--storage-driver", "vfs",
			"--runtime", "runc", "--cgroup-manager", "cgroupfs", "--events-backend", "none"}}
		out, err := exec.Command("podman", append(p.base, "load", "-i", archive)...).CombinedOutput()
		if err != nil {
			podmanErr = fmt.Errorf("podman load -i %s: %v\n%s", archive, err, out)
			return
		}
		if !strings.Contains(string(out), "Loaded image: "+tag) {
			podmanErr = fmt.Errorf("podman load -i %s did not load %s:\n%s", archive, tag, out)
			return
		}
		podman = p
	})
	if podmanErr != nil {
		t.Fatalf("the xmetrics image: %v", podmanErr)
	}
	return podman
}

// ulimits: podman's defaults are refused here; ask for no more than this process has.
func ulimits() []string {
	var nofile, nproc syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &nofile)
	const rlimitNproc = 6 // RLIMIT_NPROC on Linux
	syscall.Getrlimit(rlimitNproc, &nproc)
	at := func(hard uint64, limit uint64) uint64 {
		if hard < limit {
			return hard
		}
		return limit
	}
	n, p := at(nofile.Max, 65536), at(nproc.Max, 4096)
	return []string{"--ulimit", fmt.Sprintf("nofile=%d:%d", n, n), "--ulimit", fmt.Sprintf("nproc=%d:%d", p, p)}
}

// containerized turns `xmetrics serve args…` into a `podman run` of the image: x.Dir (cert dir,
// kubeconfig copy) is mounted at the same path and owned by uid 65532, env becomes -e flags.
func (x *Xmetrics) containerized(t testing.TB, args, env []string) (*process, error) {
	p := loadedImage(t)
	uid := 65532
	for i, a := range args {
		// The kubeconfig is copied into x.Dir, readable by the container's user.
		if a == "--kubeconfig" && i+1 < len(args) {
			b, err := os.ReadFile(args[i+1])
			if err != nil {
				return nil, err
			}
			copyPath := filepath.Join(x.Dir, "kubeconfig")
			if err := os.WriteFile(copyPath, b, 0o600); err != nil {
				return nil, err
			}
			args[i+1] = copyPath
		}
	}
	if err := filepath.Walk(x.Dir, func(path string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, uid, uid)
	}); err != nil {
		return nil, err
	}
	name := "xmetrics-e2e-" + filepath.Base(x.Dir)
	run := append(append([]string{}, p.base...), "run", "--rm", "--name", name, "--read-only",
		"--user", fmt.Sprint(uid), "--network", "host")
	run = append(run, ulimits()...)
	run = append(run, "-v", x.Dir+":"+x.Dir)
	for _, e := range env {
		run = append(run, "-e", e)
	}
	run = append(run, p.tag) // the entrypoint is `xmetrics serve`
	run = append(run, args[1:]...)
	x.container = name
	return &process{Name: "xmetrics (container " + p.tag + ")", Path: "podman", Args: run, LogPath: x.LogPath}, nil
}

// removePodmanStore deletes the private store (the image is some 35 MB unpacked) at the end.
func removePodmanStore() {
	if podman == nil {
		return
	}
	exec.Command("podman", append(append([]string{}, podman.base...), "rm", "--all", "--force")...).Run()
	exec.Command("podman", append(append([]string{}, podman.base...), "rmi", "--all", "--force")...).Run()
	os.RemoveAll(podman.dir)
}

// removeContainer makes sure the container is gone after the process that ran it.
func (x *Xmetrics) removeContainer() {
	if x.container == "" || podman == nil {
		return
	}
	exec.Command("podman", append(append([]string{}, podman.base...), "rm", "--force", "--ignore", x.container)...).Run()
}
