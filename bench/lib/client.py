#!/usr/bin/env python3
"""Client side of the xmetrics benches: DogStatsD sender, keep-alive HTTPS reader, /proc sampler.

Standard library only, so the benches need nothing beyond python3. Every network call goes to
127.0.0.1 and has a timeout; every loop has a bound.

Subcommands (see each function): free-port, get, feed, memory-load, startup.
"""

import argparse
import http.client
import json
import os
import socket
import ssl
import statistics
import subprocess
import sys
import time
import urllib.parse

HOST = "127.0.0.1"
API = "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/"
# A DogStatsD datagram stays below a typical loopback-safe payload; several lines share one.
MAX_DATAGRAM = 1400


def tls_context(ca_file):
    """Verifies the serving certificate against the local CA, as kubectl and the HPA would."""
    ctx = ssl.create_default_context(cafile=ca_file)
    ctx.check_hostname = True
    return ctx


class Api:
    """One keep-alive HTTPS connection with a bearer token or a client certificate (a
    (cert, key) pair); reconnects once if the server closed it, and counts it. The handshake
    happens before a request is sent, so a timed request never includes it after a reconnect."""

    def __init__(self, port, ca_file, token=None, timeout=10.0, client_cert=None):
        self.port, self.ctx, self.timeout = port, tls_context(ca_file), timeout
        if client_cert:
            self.ctx.load_cert_chain(*client_cert)
        self.headers = {"Accept": "application/json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"
        self.conn = None
        self.last_status_bytes = 0
        self.reconnects = 0

    def get(self, path, accept=None):
        headers = self.headers if accept is None else {**self.headers, "Accept": accept}
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPSConnection(HOST, self.port, context=self.ctx, timeout=self.timeout)
                self.conn.connect()
            try:
                self.conn.request("GET", path, headers=headers)
                resp = self.conn.getresponse()
                return resp.status, resp.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()
                self.conn = None
                self.reconnects += 1
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def status(self):
        code, body = self.get("/xmetrics/v1/status")
        if code != 200:
            raise RuntimeError(f"/xmetrics/v1/status answered {code}: {body[:200]!r}")
        self.last_status_bytes = len(body)
        return json.loads(body)


def metric_path(name, selector):
    return API + urllib.parse.quote(name, safe="") + "?labelSelector=" + urllib.parse.quote(selector, safe="")


def read_proc_status(pid):
    """VmRSS, VmHWM, RssAnon and RssFile of pid, in kB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                out[key] = int(value.split()[0])
    return out


def mb(kb):
    return kb / 1024.0


# ---------------------------------------------------------------------------------------------------------
# DogStatsD


class StatsD:
    def __init__(self, port):
        self.addr = (HOST, port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.datagrams = 0

    def send_lines(self, lines, pace_every=200, pace_seconds=0.002):
        """Packs lines into datagrams. Pacing keeps a burst of thousands of datagrams from overrunning
        the receiver's socket buffer, which would measure UDP loss rather than xmetrics."""
        buf = bytearray()
        for line in lines:
            data = line.encode()
            if buf and len(buf) + 1 + len(data) > MAX_DATAGRAM:
                self._send(bytes(buf), pace_every, pace_seconds)
                buf.clear()
            if buf:
                buf += b"\n"
            buf += data
        if buf:
            self._send(bytes(buf), pace_every, pace_seconds)

    def _send(self, data, pace_every, pace_seconds):
        self.sock.sendto(data, self.addr)
        self.datagrams += 1
        if pace_every and self.datagrams % pace_every == 0:
            time.sleep(pace_seconds)


def series_lines(prefix, count, tick):
    """count distinct metrics, one series each: even ones gauges, odd ones counters, so both kinds of
    DogStatsD state are in the measured memory."""
    for i in range(count):
        if i % 2 == 0:
            yield f"{prefix}{i}:{(i + tick) % 1000}|g|#env:prod"
        else:
            yield f"{prefix}{i}:1|c|#env:prod"


# ---------------------------------------------------------------------------------------------------------
# Subcommands


def free_port_value(kind):
    """A port nothing is bound to right now; the server binds it a moment later."""
    sock_kind = socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, sock_kind) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def cmd_free_port(args):
    print(free_port_value(args.kind))


def cmd_get(args):
    """GET one path; writes the exact body bytes to --out, fails unless the answer is 200."""
    code, body = Api(args.port, args.ca, args.token).get(args.path)
    if code != 200:
        sys.exit(f"GET {args.path} answered {code}: {body[:300]!r}")
    if args.out:
        with open(args.out, "wb") as f:
            f.write(body)
    else:
        sys.stdout.buffer.write(body)


def cmd_feed(args):
    """Sends one gauge every --interval seconds for at most --seconds, so a value never ages out while a
    bench reads it. Stopped early by SIGTERM from the caller."""
    statsd = StatsD(args.udp_port)
    deadline = time.monotonic() + args.seconds
    tick = 0
    while time.monotonic() < deadline:
        statsd.send_lines([f"{args.metric}:{42 + tick % 2}|g|#env:prod"], pace_every=0)
        tick += 1
        time.sleep(args.interval)


def cmd_memory_load(args):
    """Drives xmetrics (already running, pid --pid) to --count active metrics and reports its memory.

    1. Sends --count distinct series over DogStatsD and waits until the listener has them all.
    2. GETs every metric once, so each is registered and polled every refresh period from then on.
    3. Keeps feeding every series each second for --feed-seconds (several refresh periods and at least
       one 10 s counter flush), sampling VmRSS each second to show whether memory settles or grows.
    Prints a human report, then one JSON line (prefixed RESULT-JSON) for the calling script.
    """
    api = Api(args.port, args.ca, args.token)
    statsd = StatsD(args.udp_port)
    prefix = args.prefix
    report = {"count": args.count}

    t = time.monotonic()
    statsd.send_lines(series_lines(prefix, args.count, 0))
    series = 0
    for _ in range(100):  # ≤ 10 s for the listener to drain its socket
        st = api.status()
        series = st.get("embedded", {}).get("series", 0)
        if series >= args.count:
            break
        time.sleep(0.1)
    report["send_seconds"] = time.monotonic() - t
    report["series_after_send"] = series
    print(f"  sent {args.count} series in {statsd.datagrams} datagrams; store holds {series} series")
    if series < args.count:
        print(f"  NOTE: only {series} of {args.count} series arrived (UDP loss or refused series); "
              f"the resend while feeding below fills the gap")

    # Every metric once, on one keep-alive connection. A first GET waits for its synchronous first fetch,
    # so this also measures how fast registration is.
    codes = {}
    t = time.monotonic()
    first_errors = []
    # Registration rate per tenth of the metrics: a rate that falls as the catalog grows means each
    # registration costs time proportional to the metrics already there.
    chunk = max(1, args.count // 10)
    chunk_rates = []
    t_chunk = t
    for i in range(args.count):
        code, body = api.get(metric_path(f"{prefix}{i}", "env=prod"))
        codes[code] = codes.get(code, 0) + 1
        if code != 200 and len(first_errors) < 3:
            first_errors.append(f"{prefix}{i}: {code} {body[:160]!r}")
        if (i + 1) % chunk == 0:
            now = time.monotonic()
            chunk_rates.append(chunk / (now - t_chunk))
            t_chunk = now
    elapsed = time.monotonic() - t
    report["register_seconds"] = elapsed
    report["register_codes"] = codes
    print(f"  first GET of {args.count} metrics: {elapsed:.1f} s ({args.count / elapsed:.0f}/s), "
          f"status codes {dict(sorted(codes.items()))}")
    print(f"    registrations/s for each successive {chunk}: " + " ".join(f"{r:.0f}" for r in chunk_rates))
    report["register_rates"] = chunk_rates
    for e in first_errors:
        print(f"    e.g. {e}")

    samples = []
    t0 = time.monotonic()
    for tick in range(1, int(args.feed_seconds) + 1):
        statsd.send_lines(series_lines(prefix, args.count, tick))
        sleep_until = t0 + tick
        time.sleep(max(0.0, sleep_until - time.monotonic()))
        samples.append(read_proc_status(args.pid)["VmRSS"])
    print("  VmRSS while feeding, one sample a second (MB): " + " ".join(f"{mb(s):.1f}" for s in samples))

    # A second round of GETs: by now every metric should be served from memory, all 200.
    codes2 = {}
    t = time.monotonic()
    for i in range(args.count):
        code, _ = api.get(metric_path(f"{prefix}{i}", "env=prod"))
        codes2[code] = codes2.get(code, 0) + 1
    elapsed2 = time.monotonic() - t
    report["served_codes"] = codes2
    after_gets = read_proc_status(args.pid)
    print(f"  second GET of every metric (from memory): {elapsed2:.1f} s ({args.count / elapsed2:.0f}/s), "
          f"status codes {dict(sorted(codes2.items()))}; VmRSS now {mb(after_gets['VmRSS']):.1f} MB, "
          f"VmHWM {mb(after_gets['VmHWM']):.1f} MB")

    # The steady state, measured before the status call below, which renders a report of every metric
    # and is a diagnostic, not part of serving.
    print(f"  of which RssAnon {mb(after_gets['RssAnon']):.1f} MB, RssFile {mb(after_gets['RssFile']):.1f} MB")
    st = api.status()
    after_status = read_proc_status(args.pid)
    metrics = st.get("metrics", [])
    valid = sum(1 for m in metrics if m.get("valid"))
    report.update({
        "registered": len(metrics),
        "valid": valid,
        "embedded": st.get("embedded", {}),
        "dogstatsd": st.get("dogstatsd", {}),
        "poller": st.get("poller", {}),
        "rss_samples_kb": samples,
        "rss_kb": after_gets["VmRSS"],
        "hwm_kb": after_gets["VmHWM"],
        "status_rss_kb": after_status["VmRSS"],
        "status_hwm_kb": after_status["VmHWM"],
    })
    emb, dsd, pol = report["embedded"], report["dogstatsd"], report["poller"]
    print(f"  status: {len(metrics)} metrics registered, {valid} valid; embedded.series={emb.get('series')} "
          f"points={emb.get('points')} refusedSeries={emb.get('refusedSeries')} "
          f"approxBytes={emb.get('approxBytes')}")
    print(f"          dogstatsd.metrics={dsd.get('metrics')} packets={dsd.get('packets')} "
          f"malformed={dsd.get('malformed')} dropped={dsd.get('dropped')}; poller cycles={pol.get('cycles')} "
          f"lastCycleDuration={pol.get('lastCycleDurationMicroseconds')} µs backendCalls={pol.get('backendCalls')}")
    print(f"  after that status call ({api.last_status_bytes} bytes of JSON): VmRSS {mb(after_status['VmRSS']):.1f} MB, "
          f"VmHWM {mb(after_status['VmHWM']):.1f} MB")
    print("RESULT-JSON " + json.dumps(report))


def cmd_idle_connections(args):
    """Opens --count TLS connections to xmetrics (pid --pid), handshake done and then idle, as
    keep-alive clients between requests; reports VmRSS per connection, and after they all close
    (and the server's 5 s heap trim ran), how much of it came back."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, args.count + 256)), hard))
    ctx = tls_context(args.ca)
    ctx.check_hostname = False
    time.sleep(1)
    before = read_proc_status(args.pid)["VmRSS"]
    conns = []
    for _ in range(args.count):
        s = socket.create_connection((HOST, args.port), timeout=10)
        conns.append(ctx.wrap_socket(s, server_hostname="localhost"))
    time.sleep(1)
    held = read_proc_status(args.pid)["VmRSS"]
    for c in conns:
        c.close()
    time.sleep(6.5)
    after = read_proc_status(args.pid)["VmRSS"]
    per = (held - before) / args.count
    print(f"  {args.count} idle TLS connections: VmRSS {before / 1024:.1f} -> {held / 1024:.1f} MB "
          f"({per:.1f} KB each); {after / 1024:.1f} MB once they closed")
    print("RESULT-JSON " + json.dumps({"before_kb": before, "held_kb": held, "after_kb": after,
                                        "per_connection_kb": per}))


def raise_nofile(count):
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, count + 256)), hard))


def cmd_slowloris(args):
    """--count TLS connections that each send a request head one byte a second for --seconds, and
    reconnect when the server cuts them (as a slowloris does). Prints how many were open each
    second, and `READY` once --count are open (the prober starts then)."""
    import asyncio
    raise_nofile(args.count)
    ctx = tls_context(args.ca)
    ctx.check_hostname = False
    head = b"GET /apis HTTP/1.1\r\nHost: localhost\r\nX-Slow: " + b"a" * 4000
    state = {"open": 0, "cuts": 0, "connects": 0}
    deadline = time.monotonic() + args.seconds

    async def one(delay):
        await asyncio.sleep(delay)
        while time.monotonic() < deadline:
            try:
                _, writer = await asyncio.wait_for(
                    asyncio.open_connection(HOST, args.port, ssl=ctx, server_hostname="localhost"),
                    timeout=30)
            except (OSError, asyncio.TimeoutError, ssl.SSLError):
                await asyncio.sleep(0.5)
                continue
            state["open"] += 1
            state["connects"] += 1
            try:
                for i in range(len(head)):
                    if time.monotonic() >= deadline:
                        break
                    writer.write(head[i:i + 1])
                    await writer.drain()
                    await asyncio.sleep(1)
            except (OSError, ssl.SSLError, ConnectionError):
                state["cuts"] += 1
            finally:
                state["open"] -= 1
                writer.close()

    async def report():
        ready = False
        while time.monotonic() < deadline:
            await asyncio.sleep(1)
            if not ready and state["open"] >= min(args.count, args.ready_at):
                ready = True
                print("READY", flush=True)
            print(f"  attack: {state['open']} open, {state['connects']} connects, "
                  f"{state['cuts']} cut so far", flush=True)

    async def main():
        # Spread the handshakes over the first seconds, as a real flood would arrive.
        tasks = [one(i * args.ramp / args.count) for i in range(args.count)]
        await asyncio.gather(report(), *tasks)

    asyncio.run(main())
    print("RESULT-JSON " + json.dumps(state))


def cmd_probe(args):
    """--count new clients, one after another every --interval s: connect, handshake, one GET of
    /apis, close. Prints p50/p99/max latency and failures."""
    ctx = tls_context(args.ca)
    ctx.check_hostname = False
    latencies, failures = [], 0
    for _ in range(args.count):
        t = time.monotonic()
        try:
            with socket.create_connection((HOST, args.port), timeout=10) as raw:
                with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                    s.sendall(b"GET /apis HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
                              b"Authorization: Bearer " + args.token.encode() + b"\r\n\r\n")
                    if not s.recv(16).startswith(b"HTTP/1.1 200"):
                        failures += 1
        except OSError:
            failures += 1
        latencies.append((time.monotonic() - t) * 1000)
        time.sleep(args.interval)
    latencies.sort()
    p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))]
    print(f"  {args.label}: {args.count} new clients, p50 {p(0.5):.1f} ms, p99 {p(0.99):.1f} ms, "
          f"max {latencies[-1]:.1f} ms, {failures} failed")
    print("RESULT-JSON " + json.dumps({"p50_ms": p(0.5), "p99_ms": p(0.99),
                                        "max_ms": latencies[-1], "failures": failures}))


def cmd_startup(args):
    """Time from spawning xmetrics to its first 200 on /healthz, measured here so the client's own
    start-up (Python, TLS context, CA loading) is paid before the clock starts."""
    if args.no_verify:
        # Only for a first start in an empty cert dir: there is no CA to trust before the server makes it.
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx = tls_context(os.path.join(args.cert_dir, "ca.crt"))
    request = f"GET /healthz HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode()

    connected = []  # when each probe's TCP connect succeeded

    def probe(port):
        """One attempt: None while nothing listens, else the HTTP status code."""
        try:
            sock = socket.create_connection((HOST, port), timeout=1.0)
        except (ConnectionRefusedError, ConnectionResetError):
            return None
        connected.append(time.perf_counter())
        try:
            with ctx.wrap_socket(sock, server_hostname=HOST) as tls:
                tls.sendall(request)
                head = b""
                while b"\r\n" not in head and len(head) < 4096:
                    chunk = tls.recv(4096)
                    if not chunk:
                        break
                    head += chunk
                parts = head.split(b" ", 2)
                return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else -1
        except (ssl.SSLError, OSError):
            return -1  # listening but not yet able to finish a handshake or an answer
        finally:
            sock.close()

    def one_run(log):
        port = free_port_value("tcp")
        udp = free_port_value("udp")
        argv = [args.binary, "serve", "--secure-port", str(port), "--dogstatsd-address", f"{HOST}:{udp}",
                "--cert-dir", args.cert_dir] + args.extra
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = t0 + args.timeout
        connected.clear()
        odd = []
        code = None
        while time.perf_counter() < deadline:
            code = probe(port)
            if code == 200:
                break
            if code is not None and code != 200 and len(odd) < 3:
                odd.append(code)
            if proc.poll() is not None:
                break
        t1 = time.perf_counter()
        t_stop = time.perf_counter()
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
            odd.append("ignored SIGTERM for 5 s")
        stop_ms = (time.perf_counter() - t_stop) * 1000
        if code != 200:
            return None, None, stop_ms, odd + [f"no 200 within {args.timeout} s (last {code}, exit {proc.returncode})"]
        return (t1 - t0) * 1000, (connected[0] - t0) * 1000, stop_ms, odd

    with open(args.log, "ab") as log:
        # Throw-away runs warm the page cache so the measured ones are the steady "restart" case.
        for _ in range(args.warmup):
            one_run(log)
        times, listens, stops, problems = [], [], [], []
        for i in range(args.runs):
            ms, listen_ms, stop_ms, odd = one_run(log)
            stops.append(stop_ms)
            if odd:
                problems.append(f"run {i + 1}: {odd}")
            if ms is not None:
                times.append(ms)
                listens.append(listen_ms)
    print("  per run (ms): " + " ".join(f"{t:.1f}" for t in times))
    for p in problems:
        print(f"  odd: {p}")
    report = {
        "runs": args.runs,
        "ok": len(times),
        "median_ms": statistics.median(times) if times else None,
        "min_ms": min(times) if times else None,
        "max_ms": max(times) if times else None,
        "listen_median_ms": statistics.median(listens) if listens else None,
        "stop_median_ms": statistics.median(stops) if stops else None,
        "stop_max_ms": max(stops) if stops else None,
        "problems": problems,
    }
    print("RESULT-JSON " + json.dumps(report))


def main():
    p = argparse.ArgumentParser(description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("free-port")
    s.add_argument("kind", choices=["tcp", "udp"], nargs="?", default="tcp")
    s.set_defaults(fn=cmd_free_port)

    def api_args(s):
        s.add_argument("--port", type=int, required=True)
        s.add_argument("--ca", required=True)
        s.add_argument("--token", default="benchtoken")

    s = sub.add_parser("get")
    api_args(s)
    s.add_argument("--path", required=True)
    s.add_argument("--out")
    s.set_defaults(fn=cmd_get)

    s = sub.add_parser("feed")
    s.add_argument("--udp-port", type=int, required=True)
    s.add_argument("--metric", required=True)
    s.add_argument("--interval", type=float, default=1.0)
    s.add_argument("--seconds", type=float, default=300)
    s.set_defaults(fn=cmd_feed)

    s = sub.add_parser("memory-load")
    api_args(s)
    s.add_argument("--udp-port", type=int, required=True)
    s.add_argument("--pid", type=int, required=True)
    s.add_argument("--count", type=int, default=10000)
    s.add_argument("--prefix", default="bench.mem.m")
    s.add_argument("--feed-seconds", type=float, default=12)
    s.set_defaults(fn=cmd_memory_load)

    s = sub.add_parser("idle-connections")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--ca", required=True)
    s.add_argument("--pid", type=int, required=True)
    s.add_argument("--count", type=int, default=2000)
    s.set_defaults(fn=cmd_idle_connections)

    s = sub.add_parser("slowloris")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--ca", required=True)
    s.add_argument("--count", type=int, default=4200)
    s.add_argument("--seconds", type=float, default=30)
    s.add_argument("--ramp", type=float, default=10, help="seconds over which the flood connects")
    s.add_argument("--ready-at", type=int, default=4000, help="open connections that mean READY")
    s.set_defaults(fn=cmd_slowloris)

    s = sub.add_parser("probe")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--ca", required=True)
    s.add_argument("--token", required=True)
    s.add_argument("--count", type=int, default=200)
    s.add_argument("--interval", type=float, default=0.05)
    s.add_argument("--label", default="probe")
    s.set_defaults(fn=cmd_probe)

    s = sub.add_parser("startup")
    s.add_argument("--binary", required=True)
    s.add_argument("--cert-dir", required=True)
    s.add_argument("--runs", type=int, default=20)
    s.add_argument("--warmup", type=int, default=2)
    s.add_argument("--timeout", type=float, default=5.0)
    s.add_argument("--log", required=True)
    s.add_argument("--no-verify", action="store_true", help="do not verify the serving certificate")
    s.add_argument("extra", nargs="*", help="more serve flags (after --)")
    s.set_defaults(fn=cmd_startup)

    args = p.parse_args()
    args.fn(args)


if __name__ == "__main__":
    main()
