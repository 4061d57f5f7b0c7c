"""--cert-dir as Kubernetes mounts it: a Secret volume is read-only and its directory is 0777.
xmetrics must use it as is (nothing can be planted into a read-only mount) and say exactly what is
missing when a file is absent; a writable directory others can write to is still refused."""
import os
import shutil
import subprocess
import tempfile

import pytest

from conftest import KUBECTL, wait_for

FILES = ["ca.crt", "ca.key", "tls.crt", "tls.key", "client-admin.crt", "client-admin.key"]


def read_only_copy(source, files):
    """A read-only bind mount of a 0777 directory holding `files` from `source`."""
    backing = tempfile.mkdtemp(prefix="xmetrics-secret-")
    for f in files:
        shutil.copy(os.path.join(source, f), backing)
    os.chmod(backing, 0o777)
    mountpoint = tempfile.mkdtemp(prefix="xmetrics-ro-")
    subprocess.run(["mount", "--bind", backing, mountpoint], check=True)
    subprocess.run(["mount", "-o", "remount,ro,bind", mountpoint], check=True)
    return backing, mountpoint


def unmount(backing, mountpoint):
    subprocess.run(["umount", mountpoint], check=False)
    shutil.rmtree(backing, ignore_errors=True)
    os.rmdir(mountpoint)


@pytest.fixture
def generated(xmetrics):
    """The six files a first start generated (as an operator would put them in the Secret)."""
    return os.path.join(xmetrics.workdir, "certs")


def test_a_read_only_secret_mount_is_used_as_is(request, generated, tmp_path):
    backing, mountpoint = read_only_copy(generated, FILES)
    binary = os.path.abspath(request.config.getoption("--xmetrics-binary"))
    kubeconfig = tmp_path / "kubeconfig"
    proc = subprocess.Popen([binary, "serve", "--secure-port", "0", "--dogstatsd-address", "",
                             "--cert-dir", mountpoint, "--write-kubeconfig", str(kubeconfig)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: kubeconfig.exists() or proc.poll() is not None,
                 what="xmetrics to start on the read-only cert dir")
        assert proc.poll() is None, proc.stdout.read()
        res = subprocess.run([KUBECTL, "--kubeconfig", str(kubeconfig), "get", "--raw",
                              "/apis/external.metrics.k8s.io/v1beta1"],
                             capture_output=True, text=True, timeout=30)
        assert res.returncode == 0, res.stderr
        with open(os.path.join(mountpoint, "tls.crt")) as mounted, \
                open(os.path.join(generated, "tls.crt")) as original:
            assert mounted.read() == original.read()  # served from the mount, nothing rewritten
    finally:
        proc.terminate()
        proc.wait(10)
        unmount(backing, mountpoint)


def test_a_read_only_mount_missing_a_file_names_it(request, generated):
    backing, mountpoint = read_only_copy(generated, [f for f in FILES if f != "client-admin.key"])
    try:
        binary = os.path.abspath(request.config.getoption("--xmetrics-binary"))
        res = subprocess.run([binary, "serve", "--secure-port", "0", "--dogstatsd-address", "",
                              "--cert-dir", mountpoint], capture_output=True, text=True,
                             timeout=20)
        assert res.returncode != 0
        assert "read-only" in res.stderr and "client-admin.key" in res.stderr, res.stderr
    finally:
        unmount(backing, mountpoint)


def test_a_writable_directory_others_can_write_to_is_refused(request):
    d = tempfile.mkdtemp(prefix="xmetrics-open-")
    try:
        os.chmod(d, 0o777)
        binary = os.path.abspath(request.config.getoption("--xmetrics-binary"))
        res = subprocess.run([binary, "serve", "--secure-port", "0", "--dogstatsd-address", "",
                              "--cert-dir", d], capture_output=True, text=True, timeout=20)
        assert res.returncode != 0
        assert "writable by others" in res.stderr, res.stderr
    finally:
        shutil.rmtree(d, ignore_errors=True)
