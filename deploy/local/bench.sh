#!/usr/bin/env bash
# The data-plane benchmarks behind docs/BENCHMARKS.md (`make bench`).
#
#   deploy/local/bench.sh
#
# Runs, each next to the raw client's own rate measured in the same run:
#   * stream: BenchmarkIngest, Kafka -> decode -> Arrow window buffer, vs the
#     raw kafka-go group reader, on the Dolly prompts repeated to
#     DPINSTRUCT_BENCH_RECORDS records (default 1,000,000) in an in-process
#     kfake broker;
#   * sink: BenchmarkWriteWindow, 100k rows of Dolly texts into ClickHouse
#     through WriteWindow vs a raw clickhouse-go batch, on the local server
#     and then in cluster mode on a two-shard cluster on loopback
#     (deploy/local/cluster.sh, started and stopped here), where both go
#     through the Distributed table.
# Takes under a minute on a 2-core machine (most of it compiling). Needs the local ClickHouse
# (deploy/local/clickhouse.sh start) and ../shared/data/dolly/prompts.jsonl.
#
# Environment:
#   DPINSTRUCT_BENCH_RECORDS   records in the ingest topic   (default 1000000)
#   DPINSTRUCT_BENCH_ITERS     iterations per benchmark, each runs both
#                              phases, alternating order     (default 6)
#   DPINSTRUCT_CLICKHOUSE_DSN  ClickHouse for the sink bench (default: the local one)
#   DPINSTRUCT_DATA            shared data directory         (default: <repo>/../shared/data)
set -euo pipefail

cd "$(dirname "$0")/../.."
export GOEXPERIMENT=simd
export DPINSTRUCT_BENCH_RECORDS="${DPINSTRUCT_BENCH_RECORDS:-1000000}"
export DPINSTRUCT_CLICKHOUSE_DSN="${DPINSTRUCT_CLICKHOUSE_DSN:-clickhouse://default@127.0.0.1:${DPINSTRUCT_CH_PORT:-19000}/default}"
export DPINSTRUCT_DATA="${DPINSTRUCT_DATA:-$(cd .. && pwd)/shared/data}"
iters="${DPINSTRUCT_BENCH_ITERS:-6}"

echo "# $(date -u +%Y-%m-%dT%H:%M:%SZ)  $(go version)"
echo "# cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores;" \
	"memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg) (benchmarks share the CPUs with anything else running)"
echo "# records=$DPINSTRUCT_BENCH_RECORDS iterations=$iters"

set -x
go test -run '^$' -bench '^BenchmarkIngest$' -benchtime "${iters}x" -timeout 15m ./stream/
# One window of 100k rows (a large realistic window) and one of 1M rows (the
# whole 1M-record run as one write): the ledger row is a fixed cost per window.
DPINSTRUCT_BENCH_WINDOW_ROWS=100000 go test -run '^$' -bench '^BenchmarkWriteWindow$' -benchtime "${iters}x" -timeout 10m ./sink/
DPINSTRUCT_BENCH_WINDOW_ROWS=1000000 go test -run '^$' -bench '^BenchmarkWriteWindow$' -benchtime "${iters}x" -timeout 10m ./sink/
# Cluster mode: ZooKeeper + two shards on this machine (the same cores), so
# the ratio to the single-server rows/s shows the cost of the Distributed
# layer and the synchronous per-shard inserts, not of a network.
deploy/local/cluster.sh start >/dev/null
trap 'deploy/local/cluster.sh stop >/dev/null 2>&1' EXIT
(
	eval "$(deploy/local/cluster.sh env)"
	DPINSTRUCT_BENCH_WINDOW_ROWS=100000 go test -run '^$' -bench '^BenchmarkWriteWindow$' -benchtime "${iters}x" -timeout 10m ./sink/
)
