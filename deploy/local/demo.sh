#!/usr/bin/env bash
# The demo: an embedded broker, the local ClickHouse, the Dolly prompts as the
# private stream, and the connector running two windows. Run via `make demo`.
set -euo pipefail
cd "$(dirname "$0")/../.."

BIN=${BIN:-bin/dpinstruct}
DATA=${DPINSTRUCT_DATA:-$(cd .. && pwd)/shared/data}
PROMPTS="$DATA/dolly/prompts.jsonl"
CH_PORT=${DPINSTRUCT_CH_PORT:-19000}
BROKER_PORT=${DPINSTRUCT_BROKER_PORT:-19092}
WORK=.dpinstruct/demo
DB=${DPINSTRUCT_DEMO_DB:-dpinstruct_demo}

if [[ ! -f "$PROMPTS" ]]; then
  echo "demo: Dolly prompts not found at $PROMPTS; set DPINSTRUCT_DATA to the shared data folder" >&2
  exit 2
fi
[[ -x "$BIN" ]] || go build -o "$BIN" ./cmd/dpinstruct
deploy/local/clickhouse.sh start >/dev/null

mkdir -p "$WORK"
"$BIN" broker --listen "127.0.0.1:$BROKER_PORT" --partitions 1 >"$WORK/broker.log" 2>&1 &
BROKER_PID=$!
trap 'kill $BROKER_PID 2>/dev/null || true' EXIT
for _ in $(seq 50); do grep -q "listening on" "$WORK/broker.log" && break; sleep 0.1; done
grep -q "listening on" "$WORK/broker.log" || { cat "$WORK/broker.log"; exit 1; }
echo "== embedded broker on 127.0.0.1:$BROKER_PORT"

ch() { clickhouse-client --port "$CH_PORT" --database "$DB" "$@"; }
clickhouse-client --port "$CH_PORT" -q "DROP DATABASE IF EXISTS $DB"

echo "== loading the Dolly prompts (the private stream) into topic 'instructions'"
"$BIN" produce --brokers "127.0.0.1:$BROKER_PORT" --topic instructions --file "$PROMPTS" --key user_id

echo "== running the connector for two windows"
DPINSTRUCT_KAFKA_BROKERS="127.0.0.1:$BROKER_PORT" \
DPINSTRUCT_CLICKHOUSE_DSN="clickhouse://default@127.0.0.1:$CH_PORT/$DB" \
DPINSTRUCT_WINDOW_SPILL_DIR="$WORK/spill" \
DPINSTRUCT_OBSERVABILITY_LISTEN="127.0.0.1:0" \
  "$BIN" run --config deploy/local/example.yaml --max-windows 2

echo
echo "== report"
ch -q "SELECT window_id, status, partitions, first_offsets, last_offsets, records, dead_letters, output_rows, processor
       FROM windows FINAL ORDER BY first_offsets FORMAT PrettyCompactMonoBlock"
ch -q "SELECT count() AS synthetic_rows, uniqExact(window_id) AS windows FROM published_instructions FORMAT PrettyCompactMonoBlock"
ch -q "SELECT window_id, seq, text FROM published_instructions ORDER BY window_id, seq LIMIT 5 FORMAT PrettyCompactMonoBlock"
echo
echo "== the public base generator, before any DP fine-tuning (dpinstruct generate --n 5)"
"$BIN" generate --n 5 --seed 7 --max-tokens 40 2>/dev/null
cat <<SQL

What an analyst runs next (clickhouse-client --port $CH_PORT --database $DB):
  SELECT window_id, records, output_rows, epsilon, delta FROM windows FINAL WHERE status = 'written';
  SELECT window_id, count() FROM published_instructions GROUP BY window_id;
SQL
