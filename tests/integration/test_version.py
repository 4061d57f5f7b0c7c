"""One version everywhere: CMake's project(VERSION) and git's revision, as `xmetrics version`,
`--version`, the xmetrics_build_info metric and the chart's appVersion say them."""
import json
import os
import re
import subprocess

import yaml

from conftest import REPO
from test_self_metrics import scrape

VERSION = re.search(r"^project\(xmetrics VERSION ([0-9.]+)", open(os.path.join(REPO, "CMakeLists.txt")).read(),
                    re.M).group(1)


def git(*args):
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()


def run(request, *args):
    binary = os.path.abspath(request.config.getoption("--xmetrics-binary"))
    res = subprocess.run([binary, *args], capture_output=True, text=True, timeout=10)
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_version_json_names_the_build_and_the_libraries(request):
    v = json.loads(run(request, "version", "-o", "json"))
    assert v["version"] == VERSION
    # The binary under test was built from this checkout (possibly with uncommitted changes).
    assert v["revision"].removesuffix("-dirty") == git("rev-parse", "HEAD")
    commit_date = subprocess.run(["date", "-u", "-d", "@" + git("log", "-1", "--format=%ct"),
                                  "+%Y-%m-%dT%H:%M:%SZ"], capture_output=True, text=True).stdout.strip()
    assert v["buildDate"] == commit_date
    assert re.match(r"(GCC|Clang) \d+\.\d+", v["compiler"]), v["compiler"]
    libs = v["libraries"]
    assert re.match(r"OpenSSL 3\.\d+\.\d+", libs["openssl"]), libs
    assert re.fullmatch(r"\d+\.\d+\.\d+", libs["libcurl"]), libs
    assert re.fullmatch(r"1\.\d+", libs["boost"]), libs


def test_version_flag_and_subcommand_print_the_same_lines(request):
    text = run(request, "version")
    assert run(request, "--version") == text
    assert text.startswith(f"xmetrics {VERSION}\n"), text
    for name in ("revision", "built", "compiler", "OpenSSL", "libcurl", "Boost"):
        assert re.search(rf"^  {name} +\S", text, re.M), (name, text)


def test_build_info_metric_carries_version_and_revision(xmetrics, request):
    parsed, _ = scrape(xmetrics)
    v = json.loads(run(request, "version", "-o", "json"))
    series = parsed.series("xmetrics_build_info")
    assert list(series.values()) == [1]
    (labels,) = series.keys()
    assert dict(labels) == {"version": VERSION, "revision": v["revision"]}


def test_chart_app_version_and_changelog_follow_the_version():
    chart = yaml.safe_load(open(os.path.join(REPO, "deploy", "helm", "xmetrics", "Chart.yaml")))
    assert chart["appVersion"] == VERSION
    changelog = open(os.path.join(REPO, "CHANGELOG.md")).read()
    assert re.search(rf"^## \[?{re.escape(VERSION)}\]?", changelog, re.M), "CHANGELOG.md has no entry for " + VERSION
