"""Runs tests/integration/fake_datadog.py's FakeDatadog as a process, for the Go e2e tests.

argv[1] is JSON: {"values": {metric or query: number or null}, "rate_limit": [limit, period] or
null, "api_key": "...", "app_key": "..."}. The URL is printed as the first line of stdout; the
server runs until stdin closes (the test's cleanup closes it).
"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "integration"))
from fake_datadog import FakeDatadog  # noqa: E402

config = json.loads(sys.argv[1])
kwargs = {"replay_fixtures": False}
for key in ("api_key", "app_key"):
    if config.get(key):
        kwargs[key] = config[key]
if config.get("rate_limit"):
    kwargs["rate_limit"] = tuple(config["rate_limit"])
fake = FakeDatadog(**kwargs)
fake.values.update(config.get("values", {}))
print(fake.url, flush=True)
sys.stdin.read()
fake.stop()
