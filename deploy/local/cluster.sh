#!/usr/bin/env bash
# A private ClickHouse cluster on loopback: one ZooKeeper and
# shards x replicas ClickHouse servers, each started with zookeeper.sh and
# clickhouse.sh (so each is a plain background process with its state under
# DPINSTRUCT_CLUSTER_DIR). For trying cluster mode (clickhouse.cluster in the
# connector's config) and for the tests that run the sink against a cluster.
#
#   deploy/local/cluster.sh {start|stop|status|env}
#
#   start   start ZooKeeper and every server (idempotent); prints one DSN
#           per server, shard by shard
#   stop    stop every server, then ZooKeeper
#   status  each process's status
#   env     shell exports that point the sink tests at the cluster:
#           DPINSTRUCT_CLICKHOUSE_DSN (first server), DPINSTRUCT_CLICKHOUSE_PEER_DSN
#           (the last one, on another shard when there are several) and
#           DPINSTRUCT_CLICKHOUSE_CLUSTER, and DPINSTRUCT_SERVER_DIRS (every
#           server's state directory, where a failing test looks for a crash)
#
# Environment:
#   DPINSTRUCT_CLUSTER_DIR       state directory    (default: $PWD/.dpinstruct/cluster)
#   DPINSTRUCT_CLUSTER_NAME      cluster name       (default: dpinstruct)
#   DPINSTRUCT_CLUSTER_SHARDS    number of shards   (default: 2)
#   DPINSTRUCT_CLUSTER_REPLICAS  replicas per shard (default: 1)
#   DPINSTRUCT_CLUSTER_PORT      ZooKeeper's port; server k (1, 2, ...) uses
#                                PORT+10k (native), +1 (HTTP), +2 (interserver)
#                                (default: 29100)
set -euo pipefail

CL_DIR="${DPINSTRUCT_CLUSTER_DIR:-$PWD/.dpinstruct/cluster}"
CL_NAME="${DPINSTRUCT_CLUSTER_NAME:-dpinstruct}"
CL_SHARDS="${DPINSTRUCT_CLUSTER_SHARDS:-2}"
CL_REPLICAS="${DPINSTRUCT_CLUSTER_REPLICAS:-1}"
CL_PORT="${DPINSTRUCT_CLUSTER_PORT:-29100}"
HERE="$(cd "$(dirname "$0")" && pwd)"

die() {
	printf 'cluster.sh: error: %s\n' "$*" >&2
	exit 1
}

[[ "$CL_SHARDS" =~ ^[1-9][0-9]*$ && "$CL_REPLICAS" =~ ^[1-9][0-9]*$ ]] || die "DPINSTRUCT_CLUSTER_SHARDS and _REPLICAS must be positive numbers"
[[ "$CL_PORT" =~ ^[0-9]+$ ]] && [ $((CL_PORT + 10 * CL_SHARDS * CL_REPLICAS + 2)) -le 65535 ] || die "DPINSTRUCT_CLUSTER_PORT leaves no room for the servers' ports"

zk() {
	DPINSTRUCT_ZK_DIR="$CL_DIR/zookeeper" DPINSTRUCT_ZK_PORT="$CL_PORT" "$HERE/zookeeper.sh" "$@"
}

# server_port prints the native port of server k (1-based).
server_port() { echo $((CL_PORT + 10 * $1)); }

# shards_spec is the DPINSTRUCT_CH_CLUSTER_SHARDS value: replicas of a shard
# separated by ',', shards by ';'. Server k is replica ((k-1) % R)+1 of
# shard ((k-1) / R)+1.
shards_spec() {
	local s r k=1 spec=""
	for ((s = 1; s <= CL_SHARDS; s++)); do
		[ "$s" -gt 1 ] && spec+=";"
		for ((r = 1; r <= CL_REPLICAS; r++)); do
			[ "$r" -gt 1 ] && spec+=","
			spec+="127.0.0.1:$(server_port "$k")"
			k=$((k + 1))
		done
	done
	echo "$spec"
}

# server k runs clickhouse.sh for server k with its own directory, ports and
# macros; TLS and extra users are switched off whatever the caller exported.
server() {
	local k="$1" port
	shift
	port="$(server_port "$k")"
	DPINSTRUCT_CH_DIR="$CL_DIR/clickhouse$k" \
		DPINSTRUCT_CH_PORT="$port" \
		DPINSTRUCT_CH_HTTP_PORT=$((port + 1)) \
		DPINSTRUCT_CH_INTERSERVER_PORT=$((port + 2)) \
		DPINSTRUCT_CH_TLS_PORT="" DPINSTRUCT_CH_USER="" \
		DPINSTRUCT_CH_CLUSTER="$CL_NAME" \
		DPINSTRUCT_CH_CLUSTER_SHARDS="$(shards_spec)" \
		DPINSTRUCT_CH_ZOOKEEPER="127.0.0.1:$CL_PORT" \
		DPINSTRUCT_CH_SHARD=$(((k - 1) / CL_REPLICAS + 1)) \
		DPINSTRUCT_CH_REPLICA="replica$(((k - 1) % CL_REPLICAS + 1))" \
		"$HERE/clickhouse.sh" "$@"
}

servers() { seq 1 $((CL_SHARDS * CL_REPLICAS)); }

dsn() { echo "clickhouse://default@127.0.0.1:$(server_port "$1")/default"; }

case "${1:-}" in
start)
	zk start >/dev/null
	for k in $(servers); do
		server "$k" start
	done
	;;
stop)
	rc=0
	for k in $(servers); do
		server "$k" stop || rc=1
	done
	zk stop || rc=1
	exit "$rc"
	;;
status)
	rc=0
	zk status || rc=1
	for k in $(servers); do
		server "$k" status || rc=1
	done
	exit "$rc"
	;;
env)
	last=$((CL_SHARDS * CL_REPLICAS))
	echo "export DPINSTRUCT_CLICKHOUSE_DSN=$(dsn 1)"
	echo "export DPINSTRUCT_CLICKHOUSE_PEER_DSN=$(dsn "$last")"
	echo "export DPINSTRUCT_CLICKHOUSE_CLUSTER=$CL_NAME"
	dirs="$CL_DIR/zookeeper"
	for k in $(servers); do
		dirs+=":$CL_DIR/clickhouse$k"
	done
	echo "export DPINSTRUCT_SERVER_DIRS=$dirs"
	;;
*)
	echo "usage: $0 {start|stop|status|env}" >&2
	exit 2
	;;
esac
