#!/bin/sh
# Failover time of LoadBalancer IP announcement (internal/lb/announce), on
# throwaway namespaces: a bridge, two node namespaces running announcers and
# a client sending a UDP request to the VIP every 10 ms. Per failure kind
# (crash: the owner's agent stops without goodbye and its node leaves the
# segment; graceful: the agent says goodbye, waits for the acks, then the
# node leaves), it reports the longest gap between replies (last reply
# before -> first reply after) as p50/p99/max in ms over RUNS runs, and the
# requests lost per run. Needs root and nft. Usage: bench/lbfailover/run.sh [RUNS]
set -eu
runs=${1:-20}
cd "$(dirname "$0")/../.."
exec go test ./internal/lb/announce/ -run '^$' -bench '^BenchmarkFailover$' -benchtime "${runs}x" -count 1
