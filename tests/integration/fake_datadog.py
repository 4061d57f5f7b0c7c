"""A fake Datadog query API (GET /api/v1/query, and POST /api/v2/query/timeseries answering the same
data in the v2 shape) on 127.0.0.1 for the integration tests and bench/.

It parses every query with the grammar Datadog documents (below) and answers a call holding one it
does not produce with 400 and Datadog's error body (`{"errors": [...]}`, as in the recorded
test_scalar_cross_product_query_returns_bad_request_response.yaml). It evaluates a metric query
over the tagged series it holds (`data`: filter, space aggregation, `by {k}` groups), replays the
recorded answers in fixtures/datadog/ for the queries they cover, and answers the rest from
`values`, a number per metric name that stands for one series whatever the filter. It answers
batches per `query_index` as the real API does, announces and enforces an X-RateLimit budget, and
can be told to fail: 400 for chosen queries, or any status, a timeout, or garbage for the next
calls.
"""
import functools
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


# --- the query grammar Datadog documents ---------------------------------------------------------
#
# Each rule, and the docs.datadoghq.com page that writes it down (see docs/architecture.md):
#   query    := expr ; expr := term (('+' | '-') term)* ; term := unary (('*' | '/') unary)*
#   unary    := '-' unary | atom ; atom := number | '(' expr ')' | name '(' args ')' | metric
#               arithmetic, functions: /metrics/#anatomy-of-a-metric-query, /dashboards/functions/
#   metric   := [space_agg ':'] name '{' filter '}' [' by {' key (',' key)* '}'] modifier*
#               space_agg: avg sum min max (/metrics/), p50 p75 p90 p95 p99
#               (/metrics/distributions/); none at all in the recorded `system.cpu.idle{*}`
#   modifier := '.rollup(' method [',' seconds] ')' | '.rollup(' seconds ')'
#               | '.as_count()' | '.as_rate()' | '.fill(' args ')'   (/dashboards/functions/rollup/)
#   filter   := '*' | or ; or := and (OR and)* ; and := unary ((AND | ',') unary)*
#   unary    := NOT unary | '!' tag | '(' or ')' | tag
#               | key (IN | NOT IN) '(' value (',' value)* ')'
#               AND/and, OR/or, NOT/not, IN/in, NOT IN/not in, `!`, `,`; the symbolic `!` and `,`
#               never in one filter with the functional words (/metrics/advanced-filtering/)
#   tag      := key [':' value] ; starts with a letter; letters, digits, `_ - : . /`; never ends
#               with ':' (/getting_started/tagging/#define-tags); `*` in values only: web-*,
#               *-trace, *-prod-* (/metrics/advanced-filtering/), and `*` alone for any value

SPACE_AGGREGATORS = ("avg", "sum", "min", "max", "p50", "p75", "p90", "p95", "p99")
ROLLUP_METHODS = ("avg", "sum", "min", "max", "count")
AGGREGATE = {"avg": lambda v: sum(v) / len(v), "sum": sum, "min": min, "max": max}
WORDS = {"AND": "and", "and": "and", "OR": "or", "or": "or", "NOT": "not", "not": "not",
         "IN": "in", "in": "in"}
FILTER_STOP = set(" \t\r\n,()!{}")
KEY_RE = re.compile(r"[^\W\d_][\w\-./]*\Z")
VALUE_RE = re.compile(r"[\w\-./:*]+\Z")
NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_.]*")
NUMBER_RE = re.compile(r"\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


class QueryError(ValueError):
    """A query the documented grammar does not produce: Datadog answers such a call 400."""

    def __init__(self, query, position, message):
        super().__init__(f"Error parsing query: unable to parse {query}: {message} "
                         f"at position {position}")
        self.position, self.reason = position, message


class MetricQuery:
    """One `agg:metric{filter} by {keys}.modifiers` of a parsed query."""

    def __init__(self, aggregator, metric, filter, by, modifiers):
        self.aggregator, self.metric, self.filter = aggregator, metric, filter
        self.by, self.modifiers = by, modifiers


class Parsed:
    """A parsed query: `metrics` in the order written; `single` when the whole query is one metric
    query (the fake evaluates those over its series; arithmetic and functions it only accepts)."""

    def __init__(self, metrics, single):
        self.metrics, self.single = metrics, single


class _Parser:
    def __init__(self, text):
        self.text, self.pos, self.metrics = text, 0, []

    def fail(self, message, at=None):
        raise QueryError(self.text, self.pos if at is None else at, message)

    def found(self):
        return repr(self.text[self.pos:self.pos + 12]) if self.pos < len(self.text) else "the end"

    def spaces(self):
        while self.pos < len(self.text) and self.text[self.pos] in " \t\r\n":
            self.pos += 1

    def peek(self):
        self.spaces()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def expect(self, char, what):
        if self.peek() != char:
            self.fail(f"expected {what}, found {self.found()}")
        self.pos += 1

    def query(self):
        expr = self.expr()
        if self.peek():
            self.fail(f"expected an operator or the end, found {self.found()}")
        return Parsed(self.metrics, isinstance(expr, MetricQuery))

    # arithmetic and functions around metric queries: accepted, not evaluated
    def expr(self):
        node = self.term()
        while self.peek() in ("+", "-"):
            self.pos += 1
            node = ("arith", node, self.term())
        return node

    def term(self):
        node = self.unary()
        while self.peek() in ("*", "/"):
            self.pos += 1
            node = ("arith", node, self.unary())
        return node

    def unary(self):
        if self.peek() == "-":
            self.pos += 1
            return ("neg", self.unary())
        return self.atom()

    def atom(self):
        c = self.peek()
        if c == "(":
            self.pos += 1
            node = self.expr()
            self.expect(")", "')'")
            return node
        number = NUMBER_RE.match(self.text, self.pos)
        if number:
            self.pos = number.end()
            return ("number", float(number.group()))
        name = NAME_RE.match(self.text, self.pos)
        if not name:
            self.fail(f"expected a metric query, a number or a function, found {self.found()}")
        after = name.end()
        if after < len(self.text) and self.text[after] == "(" and "." not in name.group():
            self.pos = after + 1
            args = [] if self.peek() == ")" else self.args()
            self.expect(")", "',' or ')' after a function argument")
            return ("call", name.group(), args)
        return self.metric()

    def args(self):
        out = [self.arg()]
        while self.peek() == ",":
            self.pos += 1
            out.append(self.arg())
        return out

    def arg(self):
        c = self.peek()
        if c in ("'", '"'):
            end = self.text.find(c, self.pos + 1)
            if end < 0:
                self.fail("unterminated quote")
            self.pos = end + 1
            return ("string", self.text[self.pos - 1:end])
        word = NAME_RE.match(self.text, self.pos)
        if word and (word.end() == len(self.text) or self.text[word.end()] in " \t,)"):
            self.pos = word.end()
            return ("word", word.group())
        return self.expr()

    # one metric query
    def metric(self):
        start = self.pos
        aggregator = None
        name = NAME_RE.match(self.text, self.pos)
        if self.text.startswith(":", name.end()):
            aggregator = name.group()
            if aggregator not in SPACE_AGGREGATORS:
                self.fail(f"unknown space aggregator {aggregator!r}", start)
            self.pos = name.end() + 1
            name = NAME_RE.match(self.text, self.pos)
            if not name:
                self.fail(f"expected a metric name, found {self.found()}")
        self.pos = name.end()
        self.spaces()  # `avg:kubernetes.pods.running {team IN (...)}` in Datadog's blog post
        if self.pos >= len(self.text) or self.text[self.pos] != "{":
            self.fail(f"expected '{{' after the metric name, found {self.found()}")
        self.pos += 1
        opened = self.pos
        node = MetricQuery(aggregator or "avg", name.group(), self.filter(), [], [])
        node.filter_text = self.text[opened:self.pos - 1].strip()
        save = self.pos
        self.spaces()
        if (self.pos > save and self.text.startswith("by", self.pos)
                and self.text[self.pos + 2:self.pos + 3] in (" ", "{")):
            self.pos += 2
            self.expect("{", "'{' after 'by'")
            while True:
                self.spaces()
                key = re.match(r"[^\s,{}()]+", self.text[self.pos:])
                if not key or not KEY_RE.match(key.group()):
                    self.fail(f"expected a tag key to group by, found {self.found()}")
                node.by.append(key.group().lower())
                self.pos += key.end()
                if self.peek() == ",":
                    self.pos += 1
                    continue
                self.expect("}", "',' or '}' in the group by list")
                break
        else:
            self.pos = save
        while self.text.startswith(".", self.pos):
            node.modifiers.append(self.modifier())
        self.metrics.append(node)
        return node

    def modifier(self):
        start = self.pos
        word = re.compile(r"\.([a-z_]+)\(").match(self.text, self.pos)
        if not word:
            self.fail(f"expected .rollup(), .as_count(), .as_rate() or .fill(), found "
                      f"{self.found()}")
        kind = word.group(1)
        self.pos = word.end()
        if kind in ("as_count", "as_rate"):
            self.expect(")", f"')' after .{kind}(")
            return (kind,)
        if kind == "fill":
            args = self.args()
            self.expect(")", "')' after the .fill() arguments")
            return ("fill", args)
        if kind != "rollup":
            self.fail(f"unknown modifier .{kind}()", start)
        seconds = re.compile(r"\s*(\d+)\s*\)").match(self.text, self.pos)
        if seconds:  # .rollup(20): the interval alone, avg
            self.pos = seconds.end()
            return ("rollup", "avg", int(seconds.group(1)))
        method = re.compile(r"\s*([a-z]+)\s*(?:,\s*(\d+)\s*)?\)").match(self.text, self.pos)
        if not method or method.group(1) not in ROLLUP_METHODS:
            self.fail(f"expected a rollup method ({', '.join(ROLLUP_METHODS)}) and optional "
                      f"seconds, found {self.found()}")
        self.pos = method.end()
        return ("rollup", method.group(1), int(method.group(2)) if method.group(2) else None)

    # the filter between the braces
    def filter(self):
        self.form = None
        if self.peek() == "*":
            self.pos += 1
            self.expect("}", "'}' after '*'")
            return ("all",)
        if self.peek() == "}":
            self.fail("expected a tag filter or '*', found '}'")
        node = self.f_or()
        if self.peek() != "}":
            self.fail(f"expected ',', AND, OR or '}}' after a tag filter, found {self.found()}")
        self.pos += 1
        return node

    def use(self, form, at):
        """The symbolic (`!`, `,`) and functional (AND OR NOT IN, NOT IN, parentheses) forms
        cannot be mixed in one filter."""
        if self.form is None:
            self.form = form
        elif self.form != form:
            self.fail("symbolic boolean syntax (!, ,) cannot be used with functional syntax "
                      "operators (NOT, AND, OR, IN, NOT IN)", at)

    def word(self):
        """The next filter word and the keyword it is (and/or/not/in), without consuming it."""
        self.spaces()
        end = self.pos
        while end < len(self.text) and self.text[end] not in FILTER_STOP:
            end += 1
        text = self.text[self.pos:end]
        return text, WORDS.get(text)

    def f_or(self):
        parts = [self.f_and()]
        while self.word()[1] == "or":
            self.use("functional", self.pos)
            self.pos += 2
            parts.append(self.f_and())
        return parts[0] if len(parts) == 1 else ("or", tuple(parts))

    def f_and(self):
        parts = [self.f_unary()]
        while True:
            if self.peek() == ",":
                self.use("symbolic", self.pos)
                self.pos += 1
            elif self.word()[1] == "and":
                self.use("functional", self.pos)
                self.pos += 3
            else:
                break
            parts.append(self.f_unary())
        return parts[0] if len(parts) == 1 else ("and", tuple(parts))

    def f_unary(self):
        c = self.peek()
        if c == "!":
            self.use("symbolic", self.pos)
            self.pos += 1
            if self.peek() in ("!", "(", ""):
                self.fail("'!' goes before a tag")
            return ("not", self.tag())
        if self.word()[1] == "not":
            self.use("functional", self.pos)
            self.pos += 3
            return ("not", self.f_unary())
        if c == "(":
            self.use("functional", self.pos)
            self.pos += 1
            node = self.f_or()
            self.expect(")", "AND, OR or ')'")
            return node
        return self.tag()

    def tag(self):
        self.spaces()
        start = self.pos
        text, keyword = self.word()
        if not text:
            self.fail(f"expected a tag, found {self.found()}")
        if keyword:
            self.fail(f"expected a tag, found the keyword {text!r}")
        key, colon, value = text.partition(":")
        if "*" in key:
            self.fail(f"wildcards go in tag values only, found {key!r}", start)
        if not KEY_RE.match(key):
            self.fail(f"a tag starts with a letter and holds letters, digits, '_', '-', ':', '.' "
                      f"and '/': found {text!r}", start)
        if colon and not value:
            self.fail(f"a tag cannot end with ':': found {text!r}", start)
        if colon and not VALUE_RE.match(value):
            self.fail(f"invalid tag value in {text!r}", start)
        self.pos += len(text)
        save = self.pos
        following, keyword = self.word()
        negated = False
        if keyword == "not":
            self.pos += 3
            negated = True
            following, keyword = self.word()
        if keyword != "in":
            self.pos = save
            return ("tag", key.lower(), value.lower() if colon else None)
        self.use("functional", self.pos)
        if colon:
            self.fail(f"expected a tag key before IN, found {text!r}", start)
        self.pos += 2
        self.expect("(", "'(' after IN")
        values = []
        while True:
            value, keyword = self.word()
            if not value or keyword or not VALUE_RE.match(value):
                self.fail(f"expected a tag value in the IN list, found {self.found()}")
            values.append(value.lower())
            self.pos += len(value)
            if self.peek() == ",":
                self.pos += 1
                continue
            self.expect(")", "',' or ')' in the IN list")
            break
        node = ("in", key.lower(), tuple(values))
        return ("not", node) if negated else node


@functools.lru_cache(maxsize=65536)
def _parse_cached(query):
    try:
        return _Parser(query).query(), None
    except QueryError as error:
        return None, error


def parse_query(query):
    """Parses one query with the documented grammar above; raises QueryError for anything else."""
    parsed, error = _parse_cached(query)
    if error:
        raise error
    return parsed


def _glob(pattern, value):
    return re.fullmatch(".*".join(re.escape(p) for p in pattern.split("*")), value) is not None


def selects(node, tags):
    """Does the filter select a series with these tags (lowercased `k:v` or bare `k` strings)?
    `k:v` holds when the series has a tag k whose value matches v (`*` any run); a bare `k` only
    when it has the bare tag k; NOT and NOT IN select what the positive form does not, series
    without the key included."""
    kind = node[0]
    if kind == "all":
        return True
    if kind == "tag":
        _, key, pattern = node
        if pattern is None:
            return key in tags
        return any(_glob(pattern, v) for v in tag_values(tags, key))
    if kind == "in":
        return any(_glob(p, v) for p in node[2] for v in tag_values(tags, node[1]))
    if kind == "not":
        return not selects(node[1], tags)
    if kind == "and":
        return all(selects(c, tags) for c in node[1])
    return any(selects(c, tags) for c in node[1])


def wanted_values(node, key):
    """The values a filter asks for key `k` (k:v and k IN (...) in its top-level AND), for answers
    grouped `by {k}` from the ungrouped `values` shorthand."""
    children = node[1] if node[0] == "and" else (node,)
    out = set()
    for c in children:
        if c[0] == "in" and c[1] == key:
            out.update(c[2])
        elif c[0] == "tag" and c[1] == key and c[2] and "*" not in c[2]:
            out.add(c[2])
    return out


def metric_of(query):
    """avg:nginx.requests{app:web}.rollup(30) -> nginx.requests (the first metric of a formula)."""
    return parse_query(query).metrics[0].metric


def tag_values(tags, key):
    return [t.split(":", 1)[1] for t in tags if t.split(":", 1)[0] == key and ":" in t]


def load_fixture(name):
    import yaml  # only the fixture replay needs it; bench/ runs on the standard library
    with open(os.path.join(FIXTURES, name)) as f:
        return yaml.safe_load(f)["interactions"]


def recorded_series():
    """The recorded 200 answers of fixtures/datadog/ as v1 series by metric: GET /api/v1/query for
    system.cpu.idle{*} as recorded, POST /api/v2/query/timeseries for
    avg:datadog.estimated_usage.metrics.custom{*} with its `times` and `values` as a pointlist."""
    v1 = load_fixture("test_query_timeseries_points_returns_ok_response.yaml")[0]
    query = urllib.parse.parse_qs(urllib.parse.urlparse(v1["request"]["uri"]).query)["query"][0]
    series = json.loads(v1["response"]["body"]["string"])["series"][0]
    out = {metric_of(query): series}
    v2 = load_fixture("test_timeseries_cross_product_query_returns_ok_response.yaml")[0]
    query = json.loads(v2["request"]["body"])["data"]["attributes"]["queries"][0]["query"]
    answer = json.loads(v2["response"]["body"]["string"])["data"]["attributes"]
    [values] = answer["values"]
    points = [[t, v] for t, v in zip(answer["times"], values)]
    out[metric_of(query)] = {
        "metric": metric_of(query), "expression": query, "scope": "*",
        "tag_set": answer["series"][0]["group_tags"], "query_index": 0, "pointlist": points,
        "interval": 60, "length": len(points), "aggr": "avg",
        "unit": answer["series"][0]["unit"]}
    return out


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
        # Recorded answers, by metric, as v1 series: replayed (points moved to now) for the
        # queries they cover, through either API.
        self.recorded = recorded_series() if replay_fixtures else {}
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

    def _evaluated(self, index, query, metric, call):
        """One series per group, as Datadog answers: points aggregated per timestamp over the series
        the filter selects, within [from, to]; tag_set and scope name the group."""
        groups = {}
        for series in self.data:
            if series["metric"] != metric.metric:
                continue
            tags = [t.lower() for t in series["tags"]]
            if not selects(metric.filter, tags):
                continue
            combos = [[]]
            for k in metric.by:
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
            points = [[t, AGGREGATE[metric.aggregator](vs)] for t, vs in sorted(by_time.items())]
            scope = ",".join(([] if metric.filter == ("all",) else [metric.filter_text])
                             + list(group)) or "*"
            out.append({"metric": metric.metric, "expression": query, "scope": scope,
                        "tag_set": list(group), "query_index": index, "pointlist": points,
                        "interval": 30, "length": len(points), "aggr": metric.aggregator,
                        "unit": None})
        return out

    def _replayed(self, index, query, metric, now_ms):
        """The recorded answer to a query a recording covers (same metric, `{*}`, avg, no groups;
        the recorded points are served as recorded, whatever the rollup asks), its points moved
        so that the newest is 30 s old."""
        s = json.loads(json.dumps(self.recorded[metric.metric]))
        shift = now_ms - 30000 - s["pointlist"][-1][0]
        s["pointlist"] = [[t + shift, v] for t, v in s["pointlist"]]
        s["query_index"] = index
        s["expression"] = query
        return [s]

    def _series(self, index, query, now_ms, call=None):
        parsed = parse_query(query)  # the call was refused (400) if this raises
        metric = parsed.metrics[0]
        name = metric.metric
        if parsed.single and call and any(s["metric"] == name for s in self.data):
            return self._evaluated(index, query, metric, call)
        if (parsed.single and name in self.recorded and metric.filter == ("all",)
                and metric.aggregator == "avg" and not metric.by):
            return self._replayed(index, query, metric, now_ms)
        # The shorthand: a number per metric name (or exact query), one series whatever the filter.
        value = self.values.get(query, self.values.get(name, "absent"))
        if value == "absent":
            return []
        at = now_ms + self.clock_offset_ms
        points = [[at - 90000, value], [at - 60000, value], [at - 30000, value], [at, None]]
        # A grouped query (`k IN (a,b)` by {k}, as xmetrics coalesces) gets one series per value
        # wanted, each with the metric's value, as a query per value would.
        groups = [[]]
        if parsed.single and metric.by:
            key = metric.by[0]
            groups = [[f"{key}:{v}"] for v in sorted(wanted_values(metric.filter, key))]
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
                # Datadog refuses the whole call when one of its queries does not parse.
                for q in queries:
                    try:
                        parse_query(q)
                    except QueryError as error:
                        call["status"], call["error"] = 400, str(error)
                        return self.send(400, json.dumps({"errors": [str(error)]}), rate)
                return rate

        return Handler
