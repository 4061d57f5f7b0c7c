"""A fake Datadog query API (GET /api/v1/query, and POST /api/v2/query/timeseries answering the same
data in the v2 shape) on 127.0.0.1 for the integration tests and bench/.

It answers batches per `query_index` as the real API does, replays the recorded fixtures in
fixtures/datadog/, announces and enforces an X-RateLimit budget, and can be told to fail: 400 for
chosen queries, or any status, a timeout, or garbage for the next calls.
"""
import json
import os
import re
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

V1_PATH, V2_PATH = "/api/v1/query", "/api/v2/query/timeseries"
FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "datadog")


def split_queries(text):
    """Datadog's comma-joined query list, split on commas outside braces and parentheses."""
    out, depth, current = [], 0, ""
    for c in text:
        if c in "{(":
            depth += 1
        elif c in "})":
            depth -= 1
        if c == "," and depth == 0:
            out.append(current)
            current = ""
        else:
            current += c
    out.append(current)
    return out


def metric_of(query):
    """avg:nginx.requests{app:web}.rollup(30) -> nginx.requests"""
    m = re.match(r"^\s*(?:[a-z0-9]+:)?([A-Za-z0-9_.]+)", query)
    return m.group(1) if m else query


QUERY_RE = re.compile(r"^\s*(avg|sum|min|max):([A-Za-z0-9_.]+)\{(.*?)\}(?: by \{([^}]*)\})?"
                      r"(\.rollup\([^)]*\))?\s*$")
IN_RE = re.compile(r"^\s*([^\s:]+)\s+IN\s+\((.*)\)\s*$")
AGGREGATE = {"avg": lambda v: sum(v) / len(v), "sum": sum, "min": min, "max": max}


def parse_query(query):
    """The subset the fake evaluates: agg:metric{filter}[ by {k}][.rollup(...)] where the filter is
    `*`, `k:v,...` or `k:v AND k IN (a,b) AND ...`. Returns (agg, metric, [(key, values)], group
    keys), or None for anything else."""
    m = QUERY_RE.match(query)
    if not m:
        return None
    agg, metric, text, by = m.group(1), m.group(2), m.group(3).strip(), m.group(4)
    terms = []
    if text != "*":
        parts = text.split(" AND ") if (" AND " in text or " IN " in text) else text.split(",")
        for part in parts:
            inside = IN_RE.match(part)
            if inside:
                terms.append((inside.group(1).lower(),
                              {v.strip().lower() for v in inside.group(2).split(",")}))
            elif ":" in part and not any(c in part for c in "*!()"):
                k, v = part.strip().split(":", 1)
                terms.append((k.lower(), {v.lower()}))
            else:
                return None
    keys = [k.strip().lower() for k in by.split(",")] if by else []
    return agg, metric, terms, keys


def tag_values(tags, key):
    return [t.split(":", 1)[1] for t in tags if t.split(":", 1)[0] == key and ":" in t]


def load_fixture(name):
    import yaml  # only the fixture replay needs it; bench/ runs on the standard library
    with open(os.path.join(FIXTURES, name)) as f:
        return yaml.safe_load(f)["interactions"]


class FakeDatadog:
    def __init__(self, api_key="fake-api-key-0123456789", app_key="fake-app-key-9876543210",
                 rate_limit=None, replay_fixtures=True):
        self.api_key, self.app_key = api_key, app_key
        self.values = {}          # metric name (or exact query) -> number, or None for all-null
        self.series_count = {}    # metric name -> how many series to return (default 1)
        # Series with tags, for metrics answered by evaluating the query as Datadog does (filter,
        # space aggregation, `by {k}` groups): {"metric", "tags": ["k:v"], "points": [[ms, v]]}.
        self.data = []
        self.bad = {}             # substring -> error message: a call holding such a query is a 400
        self.failures = []        # what the next calls do: ("status", code, body) / ("timeout", s) / ("garbage",)
        self.rate_limit = rate_limit  # (limit, period seconds) or None: announce a roomy budget
        self.calls = []           # one dict per call: time, queries, status, headers
        self.lock = threading.Lock()
        self.window_start, self.used = 0, 0
        self.clock_offset_ms = 0  # how far ahead of the real time this server stamps its points
        # The recorded answer for system.cpu.idle{*}, replayed with its points moved to now.
        self.recorded = None
        if replay_fixtures:
            ok = load_fixture("test_query_timeseries_points_returns_ok_response.yaml")[0]
            self.recorded = json.loads(ok["response"]["body"]["string"])
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def fail_next(self, *modes):
        with self.lock:
            self.failures.extend(modes)

    def query_calls(self):
        with self.lock:
            return [c for c in self.calls if c["path"] in (V1_PATH, V2_PATH)]

    def _rate_headers(self, now):
        if self.rate_limit is None:
            limit, period = 100000, 3600
        else:
            limit, period = self.rate_limit
        if now >= self.window_start + period:
            self.window_start = now - now % period
            self.used = 0
        self.used += 1
        reset = max(1, int(self.window_start + period - now))
        headers = {"X-RateLimit-Limit": str(limit), "X-RateLimit-Period": str(period),
                   "X-RateLimit-Remaining": str(max(0, limit - self.used)),
                   "X-RateLimit-Reset": str(reset), "X-RateLimit-Name": "query"}
        return headers, self.used > limit

    def _evaluated(self, index, query, parsed, call):
        """One series per group, as Datadog answers: points aggregated per timestamp over the series
        the filter selects, within [from, to]; tag_set and scope name the group."""
        agg, metric, terms, keys = parsed
        groups = {}
        for series in self.data:
            if series["metric"] != metric:
                continue
            tags = [t.lower() for t in series["tags"]]
            if not all(any(v in values for v in tag_values(tags, k)) for k, values in terms):
                continue
            if not keys:
                groups.setdefault((), []).append(series)
                continue
            combos = [[]]
            for k in keys:
                combos = [c + [f"{k}:{v}"] for c in combos for v in tag_values(tags, k)]
            for combo in combos:  # a series with two values of a key is in both groups
                groups.setdefault(tuple(combo), []).append(series)
        out = []
        for group, members in sorted(groups.items()):
            by_time = {}
            for series in members:
                for t, v in series["points"]:
                    if call["from"] * 1000 <= t <= call["to"] * 1000 and v is not None:
                        by_time.setdefault(t, []).append(v)
            points = [[t, AGGREGATE[agg](vs)] for t, vs in sorted(by_time.items())]
            scope = ",".join([f"{k}:{sorted(v)[0]}" for k, v in terms if len(v) == 1] +
                             list(group)) or "*"
            out.append({"metric": metric, "expression": query, "scope": scope,
                        "tag_set": list(group), "query_index": index, "pointlist": points,
                        "interval": 30, "length": len(points), "aggr": agg, "unit": None})
        return out

    def _series(self, index, query, now_ms, call=None):
        name = metric_of(query)
        parsed = parse_query(query)
        if parsed and call and any(s["metric"] == parsed[1] for s in self.data):
            return self._evaluated(index, query, parsed, call)
        if name == "system.cpu.idle" and self.recorded:
            s = json.loads(json.dumps(self.recorded["series"][0]))
            shift = now_ms - 30000 - s["pointlist"][-1][0]
            s["pointlist"] = [[t + shift, v] for t, v in s["pointlist"]]
            s["query_index"] = index
            s["expression"] = query
            return [s]
        value = self.values.get(query, self.values.get(name, "absent"))
        if value == "absent":
            return []
        at = now_ms + self.clock_offset_ms
        points = [[at - 90000, value], [at - 60000, value], [at - 30000, value], [at, None]]
        # A grouped query (`k IN (a,b)` by {k}, as xmetrics coalesces) gets one series per value
        # wanted, each with the metric's value, as a query per value would.
        groups = [[]]
        if parsed and parsed[3]:
            wanted = dict(parsed[2])
            groups = [[f"{parsed[3][0]}:{v}"] for v in sorted(wanted.get(parsed[3][0], ()))]
        return [{"metric": name, "expression": query, "scope": ",".join(tags) or "*",
                 "tag_set": tags, "query_index": index, "pointlist": points, "interval": 30,
                 "length": len(points), "aggr": None,
                 "unit": [{"family": "general", "name": "request", "short_name": "req"}, None]}
                for tags in groups for _ in range(self.series_count.get(name, 1))]

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # The body follows the headers at once, as from a real server. With Nagle's algorithm
            # it waited for the client's delayed ACK of the headers: 40 ms per call.
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def send(self, status, body, headers=None):
                data = body.encode() if isinstance(body, str) else body
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                parsed = urllib.parse.urlparse(self.path)
                params = urllib.parse.parse_qs(parsed.query)
                queries = split_queries(params.get("query", [""])[0])
                now = time.time()
                call = {"time": now, "path": parsed.path, "queries": queries,
                        "from": int(params.get("from", ["0"])[0]),
                        "to": int(params.get("to", ["0"])[0]),
                        "headers": dict(self.headers.items()), "status": None}
                rate = self.refused(call, V1_PATH)
                if rate is None:
                    return
                now_ms = int(now * 1000)
                series = []
                for i, q in enumerate(queries):
                    series.extend(fake._series(i, q, now_ms, call))
                body = {"status": "ok", "res_type": "time_series", "resp_version": 1,
                        "query": ",".join(queries), "from_date": call["from"] * 1000,
                        "to_date": call["to"] * 1000, "series": series, "values": [],
                        "times": [], "message": "", "group_by": []}
                call["status"] = 200
                self.send(200, json.dumps(body), rate)

            def do_POST(self):
                """The v2 timeseries API over the same data: the series v1 would answer, with their
                points laid on the answer's one `times` list (null where a series has none)."""
                parsed = urllib.parse.urlparse(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                now = time.time()
                call = {"time": now, "path": parsed.path, "queries": [], "from": 0, "to": 0,
                        "headers": dict(self.headers.items()), "status": None, "body": raw}
                try:
                    attributes = json.loads(raw)["data"]["attributes"]
                    call["queries"] = [q["query"] for q in attributes["queries"]]
                    call["from"], call["to"] = attributes["from"] // 1000, attributes["to"] // 1000
                except (ValueError, KeyError, TypeError):
                    attributes = None
                rate = self.refused(call, V2_PATH)
                if rate is None:
                    return
                if attributes is None:
                    call["status"] = 400
                    return self.send(400, '{"errors":["malformed request body"]}', rate)
                now_ms = int(now * 1000)
                v1 = []
                for i, q in enumerate(call["queries"]):
                    v1.extend(fake._series(i, q, now_ms, call))
                times = sorted({t for s in v1 for t, _ in s["pointlist"]})
                series, values = [], []
                for s in v1:
                    at = dict((t, v) for t, v in s["pointlist"])
                    series.append({"group_tags": s["tag_set"], "query_index": s["query_index"],
                                   "unit": s["unit"]})
                    values.append([at.get(t) for t in times])
                body = {"data": {"id": "0", "type": "timeseries_response",
                                 "attributes": {"series": series, "times": times,
                                                "values": values}}}
                call["status"] = 200
                self.send(200, json.dumps(body), rate)

            def refused(self, call, path):
                """Records the call and answers it if it is refused (wrong path, keys, budget, a
                scripted failure, a bad query): returns the rate-limit headers to answer it with, or
                None when it was answered here."""
                with fake.lock:
                    fake.calls.append(call)
                    rate, over = fake._rate_headers(int(call["time"]))
                    failure = fake.failures.pop(0) if fake.failures else None
                queries = call["queries"]
                if call["path"] != path:
                    call["status"] = 404
                    return self.send(404, '{"errors":["Not found"]}')
                if (self.headers.get("DD-API-KEY") != fake.api_key
                        or self.headers.get("DD-APPLICATION-KEY") != fake.app_key):
                    call["status"] = 403
                    return self.send(403, '{"errors":["Forbidden"]}', rate)
                if over:
                    call["status"] = 429
                    return self.send(429, '{"errors":["Rate limit exceeded"]}', rate)
                if failure:
                    kind = failure[0]
                    if kind == "timeout":
                        time.sleep(failure[1])
                        call["status"] = "timeout"
                        try:
                            return self.send(500, '{"errors":["too late"]}', rate)
                        except OSError:
                            return
                    if kind == "garbage":
                        call["status"] = 200
                        return self.send(200, "<html><body>Service maintenance</body></html>", rate)
                    call["status"] = failure[1]
                    headers = dict(rate)
                    if len(failure) > 3:
                        headers.update(failure[3])
                    return self.send(failure[1], failure[2], headers)
                for q in queries:
                    for needle, message in fake.bad.items():
                        if needle in q:
                            call["status"] = 400
                            return self.send(400, json.dumps({"errors": [message]}), rate)
                return rate

        return Handler
