"""The README's "Try it" block, run as written against a server like `make run`'s (the fixture's,
which adds a token file, a 1 s refresh period and ports of its own).

Only what differs between `make run` and a test are replaced: the DogStatsD port (the test's server
listens on a port of its own, not 8125), the kubeconfig `make run` writes (build/run/kubeconfig) and
the binary's path. Each replacement must find its text, so a README that changes those lines makes
this test fail until it is updated. The block runs in bash, with kubectl and nc on the PATH.
"""

import json
import os
import re
import subprocess

import pytest

from conftest import KUBECTL, Xmetrics

README = os.path.join(os.path.dirname(__file__), "..", "..", "README.md")


def try_it_block():
    with open(README) as f:
        text = f.read()
    section = text.split("## Try it", 1)[1]
    m = re.search(r"```sh\n(.*?)```", section, re.S)
    assert m, "README.md's Try it section has no sh block"
    return m.group(1)


def replaced(block, old, new):
    assert old in block, f"the Try it block no longer contains {old!r}: update tests/integration/test_readme.py"
    return block.replace(old, new)


@pytest.fixture
def run_like_make_run(request, tmp_path):
    """As `make run`: serve with --cert-dir and --write-kubeconfig."""
    binary = os.path.abspath(request.config.getoption("--xmetrics-binary"))
    server = Xmetrics(binary, str(tmp_path))
    yield binary, server
    server.stop()


def test_the_try_it_block_shows_what_it_says(run_like_make_run):
    binary, server = run_like_make_run
    block = try_it_block()
    block = replaced(block, "127.0.0.1 8125", f"127.0.0.1 {server.dogstatsd[1]}")
    block = replaced(block, "build/run/kubeconfig", server.kubeconfig)
    block = replaced(block, "build/xmetrics ", binary + " ")
    env = {**os.environ, "PATH": os.path.dirname(KUBECTL) + os.pathsep + os.environ["PATH"]}

    # Once, as a user pastes it: a rerun would send the increments again.
    res = subprocess.run(["bash", "-euo", "pipefail", "-c", block], capture_output=True, text=True,
                         timeout=60, env=env)
    assert res.returncode == 0, f"the block failed: {res.stderr}\n{res.stdout}"
    outputs = [res]
    out = outputs[-1].stdout
    # `kubectl get --raw` ends its output without a newline: the documents follow one another.
    lists, decoder, at = [], json.JSONDecoder(), 0
    while (at := out.find('{"kind":"ExternalMetricValueList"', at)) >= 0:
        doc, at = decoder.raw_decode(out, at)
        lists.append(doc)
    assert len(lists) == 2, out
    counter, gauge = (lst["items"][0] for lst in lists)
    assert counter["metricName"] == "checkout.requests" and counter["metricLabels"] == {"env": "prod"}
    # "30 increments within one 10 s flush = 3 per second", as the comment promises; a lost
    # datagram would read 2900m or less.
    assert counter["value"] == "3", (counter, outputs[-1].stderr)
    assert gauge == {**gauge, "metricName": "queue.depth", "metricLabels": {"queue": "emails"}, "value": "1500m"}
    # `xmetrics query` prints the gauge's quantity and its number.
    assert re.search(r"^queue\.depth\s+queue=emails\s+1500m \(1\.5\)\s+\S+Z\s+\d+s$", out, re.M), out
    # `xmetrics status` lists both with their values.
    assert "checkout.requests" in out and "queue.depth" in out, out
