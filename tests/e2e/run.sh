#!/usr/bin/env bash
# Runs the e2e tests: a real kube-apiserver + kube-controller-manager (built from the
# k8s.io/kubernetes module pinned in go.mod) and embedded etcd, all on 127.0.0.1.
#   tests/e2e/run.sh                 every test
#   tests/e2e/run.sh -run TestX -v   extra arguments go to `go test`
# Env: XMETRICS_BINARY (default build/xmetrics), KUBECTL, HELM, XMETRICS_E2E_BIN_DIR,
#      XMETRICS_E2E_KEEP=1 keeps each cluster's files (logs, kubeconfigs) in $TMPDIR.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$here"

if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
  export PATH="/usr/local/go/bin:$PATH"
fi
export XMETRICS_BINARY="${XMETRICS_BINARY:-$repo/build/xmetrics}"
if [[ -z "${KUBECTL:-}" ]] && ! command -v kubectl >/dev/null && [[ -x "$repo/build/bin/kubectl" ]]; then
  export KUBECTL="$repo/build/bin/kubectl"
fi
if [[ -z "${HELM:-}" ]] && ! command -v helm >/dev/null && [[ -x "$repo/build/bin/helm" ]]; then
  export HELM="$repo/build/bin/helm"
fi

# Build kube-apiserver and kube-controller-manager first (cached by go.mod/go.sum/Go
# version, a no-op when warm) so a cold build does not count against the test timeout.
start=$(date +%s)
bindir="$(go run ./cmd/e2e-bins)"
echo "e2e: control-plane binaries in $bindir ($(( $(date +%s) - start ))s)"
export XMETRICS_E2E_BIN_DIR="$bindir"

exec go test -count=1 -timeout 20m "$@" ./...
