#!/usr/bin/env bash
# Checks every statement the sink sends against a current ClickHouse engine.
#
#   deploy/local/modern-clickhouse-check.sh [extra go test flags, e.g. -v]
#
# The sink's integration tests use the local 18.16 server (clickhouse.sh).
# Current ClickHouse runs here in process as chDB: the npm package
# @chdb/lib-linux-x64-gnu ships libchdb.so (~566 MB), installed once into
# $DPINSTRUCT_CHDB_DIR (git-ignored). The tests behind the `chdb` build tag
# (sink/modern_test.go) load it through github.com/chdb-io/chdb-go, which
# finds it through CHDB_LIB_PATH.
#
# Environment:
#   DPINSTRUCT_CHDB_DIR  install directory (default: $PWD/.dpinstruct/chdb)
#   CHDB_LIB_PATH        use this libchdb.so instead of installing one
set -euo pipefail

cd "$(dirname "$0")/../.."

log() { printf 'modern-clickhouse-check.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

CHDB_DIR="${DPINSTRUCT_CHDB_DIR:-$PWD/.dpinstruct/chdb}"
PKG="@chdb/lib-linux-x64-gnu"

if [ -z "${CHDB_LIB_PATH:-}" ]; then
	CHDB_LIB_PATH="$CHDB_DIR/node_modules/$PKG/libchdb.so"
	if [ ! -f "$CHDB_LIB_PATH" ]; then
		command -v npm >/dev/null 2>&1 || die "npm is needed to install $PKG (or set CHDB_LIB_PATH)"
		log "installing $PKG into $CHDB_DIR (about 566 MB)"
		mkdir -p "$CHDB_DIR"
		# --ignore-scripts: only the prebuilt library is needed.
		(cd "$CHDB_DIR" && npm install --ignore-scripts --no-audit --no-fund "$PKG") >&2
		[ -f "$CHDB_LIB_PATH" ] || die "$PKG installed but $CHDB_LIB_PATH is missing"
	fi
fi
[ -f "$CHDB_LIB_PATH" ] || die "CHDB_LIB_PATH=$CHDB_LIB_PATH: no such file"
export CHDB_LIB_PATH
log "using $CHDB_LIB_PATH"

exec go test -tags chdb -run Modern -count=1 "$@" ./sink/
