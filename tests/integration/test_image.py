"""The container image of `make image` in a real runtime: podman with runc, read-only root,
uid 65532, host network on loopback; DogStatsD in, kubectl get --raw out, as test_external_metrics
does against the bare binary.

The archives come from scripts/build-image (make test builds them first through `make image`);
this module runs it again, a no-op when they are current, and a full build when they are missing. podman runs
on a private storage root in a temporary directory, so nothing is left in the machine's own.
"""
import json
import os
import re
import resource
import subprocess
import tarfile
import tempfile

import pytest

from conftest import REPO, Xmetrics, wait_for

VERSION = re.search(r"^project\(xmetrics VERSION ([0-9.]+)", open(os.path.join(REPO, "CMakeLists.txt")).read(),
                    re.M).group(1)
IMAGE_DIR = os.path.join(REPO, "build", "image")
OCI_ARCHIVE = os.path.join(IMAGE_DIR, f"xmetrics-{VERSION}.oci.tar")
DOCKER_ARCHIVE = os.path.join(IMAGE_DIR, f"xmetrics-{VERSION}.docker.tar")
SBOM = os.path.join(IMAGE_DIR, f"xmetrics-{VERSION}.spdx.json")
IMAGE = f"localhost/xmetrics:{VERSION}"
# crun refuses this machine's hybrid cgroup layout, and podman's default ulimits are refused: ask
# for no more than this process may have.
def _at_most(limit, cap):
    hard = resource.getrlimit(limit)[1]
    return cap if hard == resource.RLIM_INFINITY else min(hard, cap)


_NOFILE, _NPROC = _at_most(resource.RLIMIT_NOFILE, 65536), _at_most(resource.RLIMIT_NPROC, 4096)
ULIMITS = ["--ulimit", f"nofile={_NOFILE}:{_NOFILE}", "--ulimit", f"nproc={_NPROC}:{_NPROC}"]


class Podman:
    def __init__(self, root):
        self.base = ["podman", "--root", os.path.join(root, "storage"),
                     "--runroot", os.path.join(root, "run"), "--storage-driver", "vfs",
                     "--runtime", "runc", "--cgroup-manager", "cgroupfs", "--events-backend", "none"]

    def argv(self, *args):
        return [*self.base, *args]

    def __call__(self, *args, check=True, timeout=120):
        res = subprocess.run(self.argv(*args), capture_output=True, text=True, timeout=timeout)
        if check and res.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} exited {res.returncode}: {res.stderr}")
        return res


@pytest.fixture(scope="module")
def archives():
    # A no-op (about 2 s) when the archives match the Release binary, the scripts and the commit;
    # make test has just run it through `make image`.
    subprocess.run([os.path.join(REPO, "scripts", "build-image")], check=True, cwd=REPO,
                   timeout=1800, stdout=subprocess.DEVNULL)
    return OCI_ARCHIVE, DOCKER_ARCHIVE


@pytest.fixture(scope="module")
def podman(archives):
    with tempfile.TemporaryDirectory(prefix="xmetrics-podman-") as root:
        p = Podman(root)
        out = p("load", "-i", archives[0]).stdout
        assert f"Loaded image: {IMAGE}" in out, out
        yield p
        p("rm", "--all", "--force", check=False)
        p("rmi", "--all", "--force", check=False)


@pytest.fixture(scope="module")
def container(podman):
    """`xmetrics serve` in the image, as the chart runs it: read-only root, uid 65532, the cert dir
    a mounted directory. The work dir is mounted at the same path, so the kubeconfig, the certs and
    the token file have the same names inside and out."""
    with tempfile.TemporaryDirectory(prefix="xmetrics-it-image-") as workdir:
        os.chmod(workdir, 0o755)
        os.mkdir(os.path.join(workdir, "certs"))
        os.chown(workdir, 65532, 65532)
        os.chown(os.path.join(workdir, "certs"), 65532, 65532)
        name = f"xmetrics-it-{os.getpid()}"
        command = podman.argv("run", "--rm", "--name", name, "--read-only", "--user", "65532",
                              "--network", "host", *ULIMITS, "-v", f"{workdir}:{workdir}", IMAGE)
        server = Xmetrics(None, workdir, command=command)
        server.name = name
        yield server
        server.stop()
        podman("rm", "--force", name, check=False)


def test_both_archives_load_with_the_version_tag(podman, archives):
    out = podman("load", "-i", archives[1]).stdout
    # docker-archive: RepoTags xmetrics:<version>, what kind/containerd name docker.io/library/…
    assert f"Loaded image: docker.io/library/xmetrics:{VERSION}" in out, out
    ids = {podman("image", "inspect", "--format", "{{.Id}}", ref).stdout.strip()
           for ref in (IMAGE, f"docker.io/library/xmetrics:{VERSION}")}
    assert len(ids) == 1, ids  # the same image


def test_config_runs_xmetrics_serve_as_nonroot_with_the_labels(podman):
    (info,) = json.loads(podman("image", "inspect", IMAGE).stdout)
    cfg = info["Config"]
    assert cfg["User"] == "65532:65532"
    assert cfg["Entrypoint"] == ["/usr/bin/xmetrics", "serve"]
    labels = cfg["Labels"]
    assert labels["org.opencontainers.image.version"] == VERSION
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                          text=True).stdout.strip()
    assert labels["org.opencontainers.image.revision"].removesuffix("-dirty") == head
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", labels["org.opencontainers.image.created"])
    for key in ("source", "licenses"):
        assert labels[f"org.opencontainers.image.{key}"], key


def test_xmetrics_version_in_the_image_is_the_host_build(podman, request):
    res = podman("run", "--rm", "--read-only", "--user", "65532", "--network", "none", *ULIMITS,
                 "--entrypoint", "/usr/bin/xmetrics", IMAGE, "version", "-o", "json")
    inside = json.loads(res.stdout)
    binary = os.path.abspath(request.config.getoption("--xmetrics-binary"))
    host = json.loads(subprocess.run([binary, "version", "-o", "json"], capture_output=True,
                                     text=True, timeout=10, check=True).stdout)
    assert inside["version"] == host["version"] == VERSION
    # Release (image) and Debug (host) builds of one checkout: the same revision and date.
    assert inside["revision"] == host["revision"]
    assert inside["buildDate"] == host["buildDate"]
    (info,) = json.loads(podman("image", "inspect", IMAGE).stdout)
    assert info["Config"]["Labels"]["org.opencontainers.image.revision"] == inside["revision"]


def test_the_image_answers_as_the_kubectl_plugin(podman):
    res = podman("run", "--rm", "--read-only", "--user", "65532", "--network", "none", *ULIMITS,
                 "--entrypoint", "/usr/bin/kubectl-xmetrics", IMAGE, "--help")
    assert "kubectl xmetrics" in res.stdout and "query" in res.stdout, res.stdout


def test_readyz_answers_over_verified_https(container):
    status, _, body = container.request("/readyz")
    assert status == 200, body


def test_the_process_runs_as_65532(container, podman):
    pid = podman("inspect", "--format", "{{.State.Pid}}", container.name).stdout.strip()
    with open(f"/proc/{pid}/status") as f:
        ids = dict(line.split(":", 1) for line in f if line.startswith(("Uid", "Gid")))
    assert ids["Uid"].split() == ["65532"] * 4, ids
    assert ids["Gid"].split() == ["65532"] * 4, ids
    # What it wrote, in the only writable place it has.
    assert os.stat(os.path.join(container.workdir, "certs", "tls.key")).st_uid == 65532


def test_a_dogstatsd_gauge_sent_to_the_container_reads_back_through_kubectl(container):
    before = container.status()["dogstatsd"]["metrics"]
    container.send("image.queue.depth:42|g|#queue:emails")
    container.wait_ingested(before + 1)
    path = ("/apis/external.metrics.k8s.io/v1beta1/namespaces/default/image.queue.depth"
            "?labelSelector=queue%3Demails")
    body = json.loads(container.get_raw(path).stdout)
    assert body["kind"] == "ExternalMetricValueList"
    assert [(i["metricName"], i["value"]) for i in body["items"]] == [("image.queue.depth", "42")]


def test_there_is_no_shell(podman):
    res = podman("run", "--rm", "--read-only", *ULIMITS, "--entrypoint", "/bin/sh", IMAGE, "-c",
                 "true", check=False)
    assert res.returncode != 0
    assert "no such file or directory" in res.stderr.lower(), res.stderr


@pytest.fixture(scope="module")
def image_files(podman):
    name = f"xmetrics-it-export-{os.getpid()}"
    podman("create", "--name", name, IMAGE)
    try:
        with tempfile.TemporaryDirectory() as d:
            tar_path = os.path.join(d, "rootfs.tar")
            podman("export", "-o", tar_path, name)
            with tarfile.open(tar_path) as tar:
                return {m.name.lstrip("./"): m for m in tar.getmembers()}
    finally:
        podman("rm", "--force", name, check=False)


def test_only_the_binary_its_libraries_and_data_are_in_the_image(image_files):
    names = set(image_files)
    for tool in ("bin/sh", "usr/bin/sh", "bin/bash", "bin/dash", "usr/bin/dpkg", "usr/bin/apt",
                 "usr/bin/perl", "bin/busybox"):
        assert tool not in names, tool
    executables = {n for n, m in image_files.items() if m.isfile() and m.mode & 0o111}
    libs = {n for n in executables if re.search(r"\.so(\.[0-9]+)*$", n)}
    assert executables - libs == {"usr/bin/xmetrics"}
    plugin = image_files["usr/bin/kubectl-xmetrics"]  # the kubectl plugin's name for it
    assert plugin.issym() and plugin.linkname == "xmetrics", (plugin.type, plugin.linkname)
    assert "etc/ssl/certs/ca-certificates.crt" in names
    passwd = image_files["etc/passwd"]
    assert passwd.isfile()


def test_every_library_resolves_inside_the_image(podman):
    # The image's own dynamic loader resolves xmetrics and the libcurl it dlopens: nothing missing.
    for target in ("/usr/bin/xmetrics", "/usr/lib/x86_64-linux-gnu/libcurl.so.4"):
        res = podman("run", "--rm", "--read-only", *ULIMITS, "--entrypoint",
                     "/lib64/ld-linux-x86-64.so.2", IMAGE, "--list", target)
        assert "not found" not in res.stdout, res.stdout
        assert "libc.so.6" in res.stdout, res.stdout


def test_the_sbom_names_every_debian_package_in_the_image(image_files):
    with open(SBOM) as f:
        sbom = json.load(f)
    assert sbom["spdxVersion"] == "SPDX-2.3"
    pkgs = {p["name"]: p for p in sbom["packages"]}
    assert pkgs["xmetrics"]["versionInfo"] == VERSION
    debian = {n for n, p in pkgs.items() if p.get("supplier") == "Organization: Debian"}
    # Each Debian package in the image ships its copyright file there.
    in_image = {m.group(1) for n in image_files
                if (m := re.fullmatch(r"usr/share/doc/([^/]+)/copyright", n))}
    in_image |= {m.group(1) for n, info in image_files.items()
                 if info.issym() and (m := re.fullmatch(r"usr/share/doc/([^/]+)", n))}
    assert debian == in_image
    for must in ("libc6", "libssl3", "libcurl4", "ca-certificates", "libstdc++6"):
        assert must in debian, must
        assert re.match(r"\d", pkgs[must]["versionInfo"]), pkgs[must]


def test_every_layer_is_a_complete_tar_archive(archives):
    # Scanners and GNU tar reject a layer without its end-of-archive blocks (umoci 0.4.7's insert
    # wrote such layers); Python's tarfile does too.
    with tarfile.open(archives[0]) as oci:
        index = json.load(oci.extractfile("index.json"))
        blob = lambda digest: oci.extractfile("blobs/sha256/" + digest.split(":")[1])
        manifest = json.load(blob(index["manifests"][0]["digest"]))
        assert index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"] == \
            f"xmetrics:{VERSION}"
        for layer in manifest["layers"]:
            assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
            with tarfile.open(fileobj=blob(layer["digest"]), mode="r|gz") as t:
                names = [m.name for m in t]
            assert "usr/bin/xmetrics" in names
