# Shared by the bench scripts (sourced, not run). Everything here talks to 127.0.0.1 only and every wait
# is bounded, so a broken server makes a bench fail fast instead of hanging.

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REPO_DIR="$(cd "$BENCH_DIR/.." && pwd)"
# A build directory of its own: the benches want Release, the developers' build/ is Debug.
BUILD_DIR="${XMETRICS_BENCH_BUILD:-$REPO_DIR/build-bench}"
XMETRICS="$BUILD_DIR/xmetrics"
CLIENT="$BENCH_DIR/lib/client.py"
TOKEN="benchtoken"

die() {
  echo "$(basename "$0"): $*" >&2
  exit 2
}

# Configures and builds only the xmetrics target, in Release. Ninja is incremental, so calling this when
# nothing changed costs well under a second.
build_xmetrics() {
  command -v cmake >/dev/null && command -v ninja >/dev/null || die "cmake and ninja are needed (scripts/setup)"
  mkdir -p "$BUILD_DIR"
  if [[ ! -f "$BUILD_DIR/build.ninja" ]]; then
    cmake -S "$REPO_DIR" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release >"$BUILD_DIR/bench-cmake.log" 2>&1 ||
      die "cmake failed, see $BUILD_DIR/bench-cmake.log"
  fi
  ninja -C "$BUILD_DIR" xmetrics >"$BUILD_DIR/bench-build.log" 2>&1 || die "build failed, see $BUILD_DIR/bench-build.log"
}

# The individual benches build only when there is no binary at all; run-all always brings it up to date.
ensure_xmetrics() {
  [[ -x "$XMETRICS" ]] || build_xmetrics
}

# A port nothing listens on right now (the kernel picks it). There is a small window before the server
# binds it; on a bench machine that is good enough.
free_port() { python3 "$CLIENT" free-port "${1:-tcp}"; }

# Scratch directory removed on exit; world-readable because nginx's worker runs as nobody when started
# by root and must read the body file in it.
make_workdir() {
  WORKDIR="$(mktemp -d "${TMPDIR:-/tmp}/xmetrics-bench.XXXXXX")"
  chmod 755 "$WORKDIR"
  [[ -z "${BENCH_KEEP:-}" ]] || echo "  scratch directory (kept): $WORKDIR"
}

# Processes this script started, stopped by pid on exit, whatever the way out.
STARTED_PIDS=()
stop_pid() {
  local pid="$1" i
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  echo "warning: pid $pid ignored SIGTERM for 5 s, killing it" >&2
  kill -KILL "$pid" 2>/dev/null || true
}
cleanup() {
  local pid
  for pid in "${STARTED_PIDS[@]}"; do stop_pid "$pid"; done
  wait 2>/dev/null || true
  if [[ -n "${WORKDIR:-}" && -z "${BENCH_KEEP:-}" ]]; then rm -rf "$WORKDIR"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# start_xmetrics DIR [extra serve flags...]
# Starts the server with its certificates, token file and log in DIR and waits (≤ 10 s) for the
# kubeconfig, which the server writes once it listens. Sets XM_PID, XM_PORT, XM_UDP_PORT, XM_BASE.
start_xmetrics() {
  local dir="$1"
  shift
  mkdir -p "$dir"
  echo "$TOKEN,bench,1,\"g\"" >"$dir/tokens.csv"
  rm -f "$dir/kubeconfig"
  XM_PORT="$(free_port tcp)"
  XM_UDP_PORT="$(free_port udp)"
  "$XMETRICS" serve --secure-port "$XM_PORT" --dogstatsd-address "127.0.0.1:$XM_UDP_PORT" \
    --cert-dir "$dir" --write-kubeconfig "$dir/kubeconfig" --token-auth-file "$dir/tokens.csv" \
    "$@" >>"$dir/xmetrics.log" 2>&1 &
  XM_PID=$!
  STARTED_PIDS+=("$XM_PID")
  XM_BASE="https://127.0.0.1:$XM_PORT"
  local i
  for ((i = 0; i < 100; i++)); do
    [[ -s "$dir/kubeconfig" ]] && return 0
    kill -0 "$XM_PID" 2>/dev/null || die "xmetrics exited at start: $(tail -n 5 "$dir/xmetrics.log")"
    sleep 0.1
  done
  die "xmetrics did not listen within 10 s: $(tail -n 5 "$dir/xmetrics.log")"
}

# Lines of the server log that are warnings or errors, for the "anything odd" report.
log_problems() {
  grep -Ei ' (warn|warning|error|critical) ' "$1" 2>/dev/null | head -n "${2:-10}" || true
}

# Busy and total CPU ticks of the whole machine, from /proc/stat ("busy total").
machine_ticks() {
  awk '$1 == "cpu" { busy = $2 + $3 + $4 + $7 + $8 + $9; print busy, busy + $5 + $6; exit }' /proc/stat
}

# wait_for_quiet MAX_SECONDS
# Other work on this small machine (a compiler, a test suite) would land in the numbers. Waits, boundedly,
# for a second in which the machine is at least 80 % idle, and says so when it never is.
wait_for_quiet() {
  local max="${1:-30}" i b0 t0 b1 t1 busy
  for ((i = 0; i < max; i++)); do
    read -r b0 t0 < <(machine_ticks)
    sleep 1
    read -r b1 t1 < <(machine_ticks)
    busy=$(((b1 - b0) * 100 / (t1 - t0 > 0 ? t1 - t0 : 1)))
    if ((busy <= 20)); then
      ((i == 0)) || echo "  (waited ${i} s for the machine to be quiet)"
      return 0
    fi
  done
  echo "  WARNING: the machine stayed busy (${busy}% CPU used by other processes); numbers will be noisy"
  ps -eo pcpu,comm --sort=-pcpu | sed -n '2,4p' | sed 's/^/    /'
}

# result MEASUREMENT XMETRICS REFERENCE TARGET VERDICT
# Appends one row to the summary file run-all prints as a table (a no-op when run alone).
result() {
  [[ -n "${BENCH_RESULTS:-}" ]] || return 0
  local IFS=$'\t'
  echo "$*" >>"$BENCH_RESULTS"
}

# verdict VALUE OP LIMIT → "meets" or "MISSES" (OP is <= or >=; values may be decimals).
verdict() {
  awk -v v="$1" -v op="$2" -v l="$3" 'BEGIN {
    ok = (op == "<=") ? (v + 0 <= l + 0) : (v + 0 >= l + 0)
    print (ok ? "meets" : "MISSES") }'
}
