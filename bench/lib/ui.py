#!/usr/bin/env python3
"""Client side of bench/ui: the status page (/xmetrics/v1/ui) at N metrics, against the JSON status
report (/xmetrics/v1/status) of the same metrics on the same server in the same run.

Standard library only. Every call goes to 127.0.0.1 with a timeout; every loop has a bound.

1. Sends a DogStatsD gauge for one metric in five (those are valid; the others have no series and are
   errors, as metrics with a typo or a silent exporter are), spread over --namespaces namespaces and
   ten "services", and keeps resending them every 10 s so they stay valid.
2. GETs every metric once over one keep-alive connection (registers it; a 404 for the ones without a
   series is expected) with the client certificate the server wrote (client-admin).
3. Waits --history-wait seconds so the history (--ui-history-interval 1s) has sampled every metric a few
   times; with --full-history, until the last registered metric's ring is full.
4. For each view (page 1, the last page, one namespace, validity=invalid and valid, backend=embedded,
   q=<service>, per_page=500) and for the status report before and after them: 2 unmeasured requests,
   then --repeat measured ones on one warm keep-alive connection. Per view: p50/p99 of the wall time
   from writing the request to having read the whole body, the body size, what the page says it shows,
   and the server's CPU per request, from /proc/PID/stat (utime+stime, 10 ms ticks) and from the
   process's CPU clock (nanoseconds), all threads, with the share of the xm-https threads (which parse
   the request, build the report, render and encrypt: schedstat, nanoseconds). Beside it, how much of
   a core the rest of the machine used meanwhile.

Prints a human report, then one line `RESULT-JSON {...}` for bench/ui.
"""

import argparse
import json
import math
import os
import re
import statistics
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from client import Api, StatsD, mb, read_proc_status  # noqa: E402

SERVICES = ["checkout", "search", "payments", "ingest", "queue", "frontend", "auth", "billing",
            "catalog", "mailer"]
VALID_EVERY = 5  # one metric in five has a series
FEED_EVERY = 10.0  # seconds between resends of the valid metrics' values
FOOTER = re.compile(r"History: (\d+) samples per metric, one every ([\d.]+) s \(([\d,]+) metrics, "
                    r"about ([\d.]+) MB\)")
COUNT = re.compile(r'<p class="count">metrics ([\d,]+)–([\d,]+) of ([\d,]+)')
PAGES = re.compile(r"<span>page ([\d,]+) of ([\d,]+)</span>")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def workload(n, namespaces):
    """Metric i: (namespace, name, selector, service, has a series). Validity does not follow the
    namespace or the service: each namespace and each service has one valid metric in five."""
    out = []
    for i in range(n):
        k = i // namespaces
        svc = SERVICES[k % len(SERVICES)]
        out.append((f"team-{i % namespaces:02d}", f"bench.ui.{svc}.requests.m{i}",
                    f"env=prod,app={svc}", svc, (k // len(SERVICES)) % VALID_EVERY == 0))
    return out


def metric_path(ns, name, selector):
    return (f"/apis/external.metrics.k8s.io/v1beta1/namespaces/{ns}/" + urllib.parse.quote(name, safe="")
            + "?labelSelector=" + urllib.parse.quote(selector, safe=""))


# --------------------------------------------------------------------------------------------------
# CPU and machine load


def proc_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def cpu_clock(pid):
    """The process's CPU clock (all threads, user+system) in seconds, to the nanosecond: the clock id
    clock_getcpuclockid(3) gives."""
    return time.clock_gettime(((~pid) << 3) | 2)


def threads_cpu(pid, name):
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/comm") as f:
                if f.read().strip() != name:
                    continue
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total / 1e9


def machine_busy():
    """Seconds the whole machine was busy (all cores), from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / CLK_TCK


def own_cpu():
    t = os.times()
    return t.user + t.system  # this process only: the feeder thread is in it, no children


class Meter:
    """Server CPU, machine load and wall time over a span."""

    def __init__(self, pid):
        self.pid = pid

    def read(self):
        return (time.monotonic(), proc_ticks(self.pid), cpu_clock(self.pid),
                threads_cpu(self.pid, "xm-https"), machine_busy(), own_cpu())

    @staticmethod
    def diff(a, b):
        wall = b[0] - a[0]
        server = b[2] - a[2]
        others = (b[4] - a[4]) - server - (b[5] - a[5])
        return {"wall": wall, "ticks": b[1] - a[1], "cpu": server, "https": b[3] - a[3],
                "others_pct": max(0.0, 100 * others / wall) if wall > 0 else 0.0}


def wait_for_quiet(meter, max_seconds):
    """Up to max_seconds for a second in which the rest of the machine (not the server, not this
    client) used at most 20 % of a core. Returns the last second's figure."""
    pct = 0.0
    for i in range(max_seconds):
        a = meter.read()
        time.sleep(1)
        pct = Meter.diff(a, meter.read())["others_pct"]
        if pct <= 20:
            if i:
                print(f"  (waited {i} s for the machine to be quiet)")
            return pct
    print(f"  WARNING: the machine stayed busy (others used {pct:.0f} % of a core); numbers will be noisy")
    return pct


# --------------------------------------------------------------------------------------------------


def feed_lines(metrics, tick):
    for i, (_, name, _, svc, valid) in enumerate(metrics):
        if valid:
            yield f"{name}:{(i + tick * 7) % 100}|g|#env:prod,app:{svc}"


class Feeder(threading.Thread):
    """Resends every valid metric's value every FEED_EVERY s, so none passes max-age (120 s) while the
    bench runs, and the sparklines move."""

    def __init__(self, statsd, metrics):
        super().__init__(daemon=True)
        self.statsd, self.metrics = statsd, metrics
        self.stop = threading.Event()
        self.tick = 1

    def run(self):
        while not self.stop.wait(FEED_EVERY):
            self.statsd.send_lines(feed_lines(self.metrics, self.tick))
            self.tick += 1


def percentile(sorted_values, q):
    """Nearest rank: of 30 samples, p99 is the largest."""
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


def describe_page(body):
    text = body.decode("utf-8", "replace")
    out = {"rows": text.count('<tr class="metric"')}
    m = COUNT.search(text)
    if m:
        out["first"], out["last"], out["matched"] = (int(x.replace(",", "")) for x in m.groups())
    else:
        out["matched"] = 0
    m = PAGES.search(text)
    out["page"], out["pages"] = (int(x.replace(",", "")) for x in m.groups()) if m else (1, 1)
    m = FOOTER.search(text)
    if m:
        out["footer"] = m.group(0)
        out["history_points"] = int(m.group(1))
        out["history_interval_s"] = float(m.group(2))
        out["history_metrics"] = int(m.group(3).replace(",", ""))
        out["history_mb"] = float(m.group(4))
    return out


def measure(conn, meter, label, path, accept, repeat, warmup=2):
    for _ in range(warmup):
        code, body = conn.get(path, accept)
        if code != 200:
            raise SystemExit(f"GET {path} answered {code}: {body[:300]!r}")
    reconnects = conn.reconnects
    times = []
    a = meter.read()
    for _ in range(repeat):
        t0 = time.perf_counter()
        code, body = conn.get(path, accept)
        times.append((time.perf_counter() - t0) * 1000)
        if code != 200:
            raise SystemExit(f"GET {path} answered {code}: {body[:300]!r}")
    d = Meter.diff(a, meter.read())
    times.sort()
    r = {"label": label, "path": path, "repeat": repeat, "bytes": len(body),
         "p50_ms": statistics.median(times), "p99_ms": percentile(times, 0.99),
         "min_ms": times[0], "each_ms": [round(t, 2) for t in times],
         "cpu_ticks_ms": d["ticks"] * 1000 / CLK_TCK / repeat,
         "cpu_clock_ms": d["cpu"] * 1000 / repeat, "https_ms": d["https"] * 1000 / repeat,
         "others_pct": d["others_pct"], "wall_s": d["wall"], "reconnects": conn.reconnects - reconnects}
    if accept == "text/html":
        r.update(describe_page(body))
    else:
        r["matched"] = len(json.loads(body).get("metrics", []))
    return r


def register(conn, metrics):
    codes = {}
    t = time.monotonic()
    examples = []
    for ns, name, selector, _, valid in metrics:
        code, body = conn.get(metric_path(ns, name, selector))
        codes[code] = codes.get(code, 0) + 1
        if (code != 200 if valid else code not in (200, 404)) and len(examples) < 3:
            examples.append(f"{ns}/{name}: {code} {body[:160]!r}")
    return time.monotonic() - t, codes, examples


def history_samples(conn, name):
    """How many samples the history holds for one metric: the rectangles of its validity strip."""
    code, body = conn.get("/xmetrics/v1/ui?q=" + urllib.parse.quote(name, safe=""), "text/html")
    if code != 200:
        return 0
    text = body.decode("utf-8", "replace")
    row = text.find('<tr class="metric"')
    return text.count('class="v-', row) if row >= 0 else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--udp-port", type=int, required=True)
    ap.add_argument("--cert-dir", required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--metrics", type=int, default=10000)
    ap.add_argument("--namespaces", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=30)
    ap.add_argument("--history-wait", type=float, default=5)
    ap.add_argument("--history-points", type=int, default=120)
    ap.add_argument("--full-history", action="store_true",
                    help="after the first pass, wait until the history is full and measure again")
    ap.add_argument("--reference-only", action="store_true",
                    help="a server without history: register, wait, memory, page 1 and per_page=500 only")
    ap.add_argument("--quiet-wait", type=int, default=20)
    args = ap.parse_args()

    n = args.metrics
    metrics = workload(n, args.namespaces)
    n_valid = sum(1 for m in metrics if m[4])
    conn = Api(args.port, os.path.join(args.cert_dir, "ca.crt"), timeout=30.0,
               client_cert=(os.path.join(args.cert_dir, "client-admin.crt"),
                            os.path.join(args.cert_dir, "client-admin.key")))
    meter = Meter(args.pid)
    statsd = StatsD(args.udp_port)
    report = {"metrics": n, "valid_sent": n_valid, "namespaces": args.namespaces}

    statsd.send_lines(feed_lines(metrics, 0))
    series = 0
    for _ in range(100):  # ≤ 10 s for the listener to take them
        series = conn.status().get("embedded", {}).get("series", 0)
        if series >= n_valid:
            break
        time.sleep(0.1)
    feeder = Feeder(statsd, metrics)
    feeder.start()
    rss0 = read_proc_status(args.pid)
    elapsed, codes, examples = register(conn, metrics)
    rss_registered = read_proc_status(args.pid)
    print(f"  {n} metrics in {args.namespaces} namespaces, {n_valid} with a DogStatsD series "
          f"({series} series arrived): registered in {elapsed:.1f} s ({n / elapsed:.0f}/s), "
          f"status codes {dict(sorted(codes.items()))}")
    for e in examples:
        print(f"    unexpected: {e}")
    report.update(register_seconds=elapsed, register_codes={str(k): v for k, v in codes.items()},
                  register_examples=examples)

    time.sleep(args.history_wait)
    last_name = metrics[-1][1]
    samples = history_samples(conn, last_name)
    rss_waited = read_proc_status(args.pid)
    print(f"  VmRSS: {mb(rss0['VmRSS']):.1f} MB before registering, {mb(rss_registered['VmRSS']):.1f} MB "
          f"once registered{'' if args.reference_only else ' (the history samples every second meanwhile)'}, "
          f"{mb(rss_waited['VmRSS']):.1f} MB {args.history_wait:g} s later "
          f"(VmHWM {mb(rss_waited['VmHWM']):.1f} MB); the last metric registered has {samples} "
          f"history samples")
    report.update(rss_before_kb=rss0["VmRSS"], rss_registered_kb=rss_registered["VmRSS"],
                  rss_waited_kb=rss_waited["VmRSS"], hwm_waited_kb=rss_waited["VmHWM"],
                  samples_last_metric=samples)

    st = conn.status()
    valid_now = sum(1 for m in st.get("metrics", []) if m.get("valid"))
    registered = len(st.get("metrics", []))
    report.update(registered=registered, valid=valid_now)

    per_page = 50
    one_ns = "team-07"
    svc = "payments"
    html = "text/html"
    if args.reference_only:
        views = [("ui page 1", "/xmetrics/v1/ui"), ("ui per_page=500", "/xmetrics/v1/ui?per_page=500")]
    else:
        last_page = max(1, math.ceil(registered / per_page))
        views = [
            ("ui page 1", "/xmetrics/v1/ui"),
            (f"ui page={last_page} (last)", f"/xmetrics/v1/ui?page={last_page}"),
            (f"ui ns={one_ns}", f"/xmetrics/v1/ui?ns={one_ns}"),
            ("ui validity=invalid", "/xmetrics/v1/ui?validity=invalid"),
            ("ui validity=valid", "/xmetrics/v1/ui?validity=valid"),
            ("ui backend=embedded", "/xmetrics/v1/ui?backend=embedded"),
            (f"ui q={svc}", f"/xmetrics/v1/ui?q={svc}"),
            ("ui per_page=500", "/xmetrics/v1/ui?per_page=500"),
        ]
    # What each view should match, and how many rows it should show, from the status report just read.
    last_label = f"ui page={max(1, math.ceil(registered / per_page))} (last)"
    expect_rows = {"ui page 1": min(per_page, registered), "ui per_page=500": min(500, registered),
                   last_label: registered - per_page * (max(1, math.ceil(registered / per_page)) - 1)}
    expect = {
        last_label: registered, "ui page 1": registered, "ui per_page=500": registered,
        "ui backend=embedded": registered,  # the only backend: the filter runs and keeps them all
        f"ui ns={one_ns}": sum(1 for m in st["metrics"] if m["namespace"] == one_ns),
        "ui validity=invalid": registered - valid_now, "ui validity=valid": valid_now,
        f"ui q={svc}": sum(1 for m in st["metrics"]
                           if any(svc in m.get(k, "") for k in ("metricName", "selector", "query"))),
    }

    def one_pass(tag):
        quiet = wait_for_quiet(meter, args.quiet_wait)
        held = history_samples(conn, last_name)  # the rows drawn now have about this many samples or more
        whole = meter.read()
        rows = [measure(conn, meter, "status (JSON, every metric)", "/xmetrics/v1/status",
                        "application/json", args.repeat)]
        for label, path in views:
            rows.append(measure(conn, meter, label, path, html, args.repeat))
        rows.append(measure(conn, meter, "status again", "/xmetrics/v1/status", "application/json",
                            args.repeat))
        others = Meter.diff(whole, meter.read())["others_pct"]
        rss = read_proc_status(args.pid)  # after rendering them all: malloc keeps some of it
        ref = statistics.median(rows[0]["each_ms"] + rows[-1]["each_ms"])
        ref_cpu = (rows[0]["cpu_clock_ms"] + rows[-1]["cpu_clock_ms"]) / 2
        print(f"  {tag} (the last metric registered has {held} history samples): "
              f"each view {args.repeat} times on one warm keep-alive connection "
              f"(after 2 unmeasured); the rest of the machine used {quiet:.0f} % of a core the second "
              f"before, {others:.0f} % over the whole pass; p99 is the nearest rank"
              + (f" (of {args.repeat}: the largest)" if math.ceil(0.99 * args.repeat) == args.repeat else ""))
        print(f"    {'request':<28} {'matched':>7} {'rows':>4} {'body KB':>8} {'p50 ms':>7} {'p99 ms':>7} "
              f"{'CPU ms/req':>10} {'(clock':>7} {'xm-https)':>9} {'p50/status':>10} {'CPU/status':>10} "
              f"{'others':>6}")
        for r in rows:
            shown = r.get("rows", "-")
            print(f"    {r['label']:<28} {r['matched']:>7} {shown:>4} {r['bytes'] / 1024:>8.1f} "
                  f"{r['p50_ms']:>7.2f} {r['p99_ms']:>7.2f} {r['cpu_ticks_ms']:>10.2f} "
                  f"{r['cpu_clock_ms']:>7.2f} {r['https_ms']:>9.2f} {r['p50_ms'] / ref:>10.3f} "
                  f"{r['cpu_clock_ms'] / ref_cpu:>10.3f} {r['others_pct']:>5.0f}%")
            r["ratio_p50"] = r["p50_ms"] / ref
            r["ratio_cpu"] = r["cpu_clock_ms"] / ref_cpu
        print(f"    VmRSS after this pass {mb(rss['VmRSS']):.1f} MB, VmHWM {mb(rss['VmHWM']):.1f} MB")
        return {"rows": rows, "status_p50_ms": ref, "status_cpu_ms": ref_cpu, "quiet_pct": quiet,
                "others_pct": others, "rss_after_kb": rss["VmRSS"], "hwm_after_kb": rss["VmHWM"],
                "samples": held}

    passes = [one_pass("measured")]
    first_page = passes[0]["rows"][1]
    if "footer" in first_page:
        print(f"  history (page footer): {first_page['footer']}")
    else:
        print("  history (page footer): none on the page (history off)")
    report["footer"] = first_page.get("footer")
    report["history_mb"] = first_page.get("history_mb")

    if args.full_history and not args.reference_only:
        deadline = time.monotonic() + args.history_points * 1.0 * 1.5 + 30
        while time.monotonic() < deadline:
            samples = history_samples(conn, last_name)
            if samples >= args.history_points:
                break
            time.sleep(5)
        rss_full = read_proc_status(args.pid)
        print(f"  waited for a full history: the last metric registered has {samples} samples; "
              f"VmRSS {mb(rss_full['VmRSS']):.1f} MB (VmHWM {mb(rss_full['VmHWM']):.1f} MB)")
        report.update(rss_full_kb=rss_full["VmRSS"], hwm_full_kb=rss_full["VmHWM"], samples_full=samples)
        passes.append(one_pass("full history"))
        full_page = passes[1]["rows"][1]
        if "footer" in full_page:
            print(f"  history (page footer): {full_page['footer']}")
        report["footer_full"] = full_page.get("footer")
    feeder.stop.set()

    odd = []
    if registered != n:
        odd.append(f"the status report lists {registered} metrics, expected {n}")
    if valid_now != n_valid:
        odd.append(f"{valid_now} metrics valid, expected {n_valid}")
    for p in passes:
        if p["others_pct"] >= 25:
            odd.append(f"other processes used {p['others_pct']:.0f} % of a core over a whole pass: compare with care")
    bad_codes = {k: v for k, v in codes.items() if k not in (200, 404)}
    if bad_codes or codes.get(200, 0) != n_valid:
        odd.append(f"registration answered {dict(sorted(codes.items()))}, expected {n_valid} x 200 and "
                   f"{n - n_valid} x 404")
    for i, p in enumerate(passes):
        busy = [r for r in p["rows"] if r["others_pct"] >= 25 and r["wall_s"] >= 0.5]  # shorter: ticks too coarse
        if busy:
            odd.append(f"{'full-history pass' if i else 'measured pass'}: other processes used >= 25 % of a core "
                       f"while {len(busy)} of the {len(p['rows'])} views were measured (up to "
                       f"{max(r['others_pct'] for r in busy):.0f} %: {', '.join(r['label'] for r in busy)})")
        for r in p["rows"]:
            lbl = r["label"]
            if lbl in expect and r["matched"] != expect[lbl]:
                odd.append(f"{lbl} says it shows {r['matched']} metrics, expected {expect[lbl]}")
            if lbl.startswith("ui ") and r.get("rows", 0) == 0:
                odd.append(f"{lbl} shows no rows")
            if lbl in expect_rows and r.get("rows") != expect_rows[lbl]:
                odd.append(f"{lbl} shows {r.get('rows')} rows, expected {expect_rows[lbl]}")
            if r["reconnects"]:
                odd.append(f"{lbl}: the connection was reopened {r['reconnects']} time(s) while measured")
    report["passes"] = passes
    report["odd"] = odd
    print("RESULT-JSON " + json.dumps(report))


if __name__ == "__main__":
    main()
