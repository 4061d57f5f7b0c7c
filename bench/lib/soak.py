#!/usr/bin/env python3
"""The client side of bench/soak: a steady request rate with metrics churning, for an hour.

Every second it
  - starts --churn new metrics (DogStatsD gauges bench.soak.m<i>, fed every second from then on),
  - retires as many of the oldest, which are neither fed nor requested again: the catalog drops them
    after the server's --inactive-after, and the embedded store their series after its retention,
  - sends --rate GETs spread over the active metrics on one keep-alive connection,
and every --sample-every seconds it reads the server's VmRSS, VmHWM, open file descriptors and threads
(/proc) and its registered metrics and stored series (/xmetrics/v1/status), printing one table row.

The verdict compares the last --window seconds of samples with the --window before them: flat means
VmRSS grew by at most --rss-slack-percent and the open descriptors by at most --fd-slack. Churn reaches
its steady state only when the first retired series leave the store (retention, 15 min by default),
so an hour gives two 20-minute windows after it. Standard library only; everything on 127.0.0.1.
"""

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from client import Api, StatsD, metric_path, read_proc_status  # noqa: E402

PREFIX = "bench.soak.m"


def proc_counts(pid):
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    threads = len(os.listdir(f"/proc/{pid}/task"))
    return fds, threads


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--udp-port", type=int, required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--token", default="benchtoken")
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--seconds", type=int, default=3600)
    p.add_argument("--rate", type=int, default=200, help="GETs per second")
    p.add_argument("--active", type=int, default=500, help="metrics fed and requested at any time")
    p.add_argument("--churn", type=int, default=5, help="metrics started (and retired) each second")
    p.add_argument("--sample-every", type=int, default=60)
    p.add_argument("--window", type=int, default=1200, help="seconds compared at the end")
    p.add_argument("--rss-slack-percent", type=float, default=5.0)
    p.add_argument("--fd-slack", type=int, default=2)
    args = p.parse_args()

    api = Api(args.port, args.ca, args.token)
    statsd = StatsD(args.udp_port)
    first, nxt = 0, args.active  # the active metrics are first .. nxt-1
    codes, failures = {}, []
    samples = []
    start = time.monotonic()
    print(f"soak: {args.seconds} s, {args.rate} GETs/s over {args.active} active metrics, {args.churn} new and "
          f"{args.churn} retired each second; a sample every {args.sample_every} s", flush=True)
    print(f"{'elapsed':>8} | {'VmRSS MB':>8} | {'VmHWM MB':>8} | {'fds':>4} | {'threads':>7} | {'registered':>10} | "
          f"{'series':>7} | {'GETs':>8} | {'non-200':>7} | metrics started", flush=True)
    requested = 0
    second = 0
    while True:
        now = time.monotonic()
        if now - start >= args.seconds:
            break
        statsd.send_lines(f"{PREFIX}{i}:{(i + second) % 1000}|g|#env:soak" for i in range(first, nxt))
        # The GETs of this second, spread evenly over it.
        span = nxt - first
        for k in range(args.rate):
            i = first + (requested + k) % span
            try:
                code, body = api.get(metric_path(f"{PREFIX}{i}", "env=soak"))
            except OSError as e:
                code, body = -1, str(e).encode()
            codes[code] = codes.get(code, 0) + 1
            # A metric's first GET can precede its first datagram's arrival: 404 then is expected;
            # anything else is reported.
            if code not in (200, 404) and len(failures) < 5:
                failures.append(f"{code} {body[:160]!r}")
            due = start + second + (k + 1) / args.rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        requested += args.rate
        first += args.churn
        nxt += args.churn
        second += 1
        if second % args.sample_every == 0:
            st = read_proc_status(args.pid)
            fds, threads = proc_counts(args.pid)
            status = api.status()
            sample = {"elapsed": int(time.monotonic() - start), "rss_kb": st["VmRSS"], "hwm_kb": st["VmHWM"],
                      "fds": fds, "threads": threads, "registered": len(status.get("metrics", [])),
                      "series": status.get("embedded", {}).get("series", 0), "gets": sum(codes.values()),
                      "non200": sum(v for c, v in codes.items() if c != 200), "started": nxt}
            samples.append(sample)
            print(f"{sample['elapsed']:>7}s | {st['VmRSS'] / 1024:8.1f} | {st['VmHWM'] / 1024:8.1f} | {fds:>4} | "
                  f"{threads:>7} | {sample['registered']:>10} | {sample['series']:>7} | {sample['gets']:>8} | "
                  f"{sample['non200']:>7} | {nxt}", flush=True)

    per = max(1, args.window // args.sample_every)
    odd = []
    if len(samples) < 2 * per:
        print(f"verdict: not enough samples for two {args.window} s windows ({len(samples)} samples)")
        verdict = "did not run long enough"
    else:
        before, last = samples[-2 * per:-per], samples[-per:]
        rss0 = statistics.mean(s["rss_kb"] for s in before)
        rss1 = statistics.mean(s["rss_kb"] for s in last)
        fd0 = max(s["fds"] for s in before)
        fd1 = max(s["fds"] for s in last)
        growth = 100.0 * (rss1 - rss0) / rss0
        flat_rss = growth <= args.rss_slack_percent
        flat_fds = fd1 <= fd0 + args.fd_slack
        verdict = "flat" if flat_rss and flat_fds else "GROWS"
        print(f"verdict: VmRSS {rss0 / 1024:.1f} MB -> {rss1 / 1024:.1f} MB ({growth:+.1f} %, slack "
              f"{args.rss_slack_percent:g} %), open descriptors at most {fd0} -> {fd1} (slack {args.fd_slack}): "
              f"{verdict}")
    for c, v in sorted(codes.items()):
        if c not in (200, 404):
            odd.append(f"{v} answers {c}")
    if codes.get(404, 0) > 2 * args.churn * (second + 1):
        odd.append(f"{codes[404]} answers 404, more than the first GETs of new metrics explain")
    odd += [f"e.g. {f}" for f in failures]
    print("odd: " + ("; ".join(odd) if odd else "nothing"))
    print("RESULT-JSON " + json.dumps({"verdict": verdict, "samples": samples, "codes": codes}))


if __name__ == "__main__":
    main()
