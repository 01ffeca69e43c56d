#!/usr/bin/env bash
# Measures the local cluster: `podnet up` wall time to all nodes Ready (2
# nodes, RUNS times, up and down in turn) and pod start latency on the last
# cluster. Run as root from the repository root after `make build tools`.
# Uses its own cluster name and address plan, so a cluster you run with the
# defaults is not touched.
set -euo pipefail
RUNS=${RUNS:-3}
NAME=bench-$$
STATE=$(mktemp -d)/state
PLAN=(--node-network 172.28.99.0/24 --pod-cidr 10.168.0.0/16 --service-cidr 10.169.0.0/16 --world-network 198.19.99.0/24)
podnet() { ./bin/podnet --cluster "$NAME" --state-dir "$STATE" --tools-bin tools/bin "$@"; }
trap 'podnet down >/dev/null 2>&1 || true' EXIT
go build -o bin/podstart ./bench/podstart
times=()
for i in $(seq "$RUNS"); do
  start=$(date +%s.%N)
  podnet up --nodes 2 "${PLAN[@]}" >/dev/null
  end=$(date +%s.%N)
  times+=("$(echo "$end - $start" | bc)")
  if [ "$i" -lt "$RUNS" ]; then podnet down >/dev/null; fi
done
printf 'podnet up to 2 nodes Ready (s): %s\n' "${times[*]}"
printf 'median: %s s\n' "$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')"
./bin/podstart -kubeconfig "$STATE/kubeconfig" -n "${PODS:-20}" -burst "${BURST:-20}"
