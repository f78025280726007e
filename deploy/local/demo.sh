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

rm -rf "$WORK/checkpoints" "$WORK/ledger.jsonl"
echo "== running the connector with the DP processor for two windows of 1,000 prompts"
echo "   (each: charge the ledger, DP fine-tune LoRA adapters, sample 5,000, DP filter, write)"
DPINSTRUCT_KAFKA_BROKERS="127.0.0.1:$BROKER_PORT" \
DPINSTRUCT_CLICKHOUSE_DSN="clickhouse://default@127.0.0.1:$CH_PORT/$DB" \
DPINSTRUCT_WINDOW_SPILL_DIR="$WORK/spill" \
  "$BIN" run --config deploy/local/demo.yaml --max-windows 2 --progress

export DPINSTRUCT_KAFKA_BROKERS="127.0.0.1:$BROKER_PORT" DPINSTRUCT_CLICKHOUSE_DSN="clickhouse://default@127.0.0.1:$CH_PORT/$DB"
echo
echo "================================ report ================================"
"$BIN" report --config deploy/local/demo.yaml --samples 10

# The demo's data is public, so it may be evaluated: the two windows hold the
# first 2,000 prompts of the single partition.
echo
echo "== evaluation against the demo data (allowed: Dolly is public)"
head -n 2000 "$PROMPTS" > "$WORK/window-prompts.jsonl"
ch -q "SELECT text FROM published_instructions FORMAT JSONEachRow" > "$WORK/synthetic.jsonl"
"$BIN" generate --n 2000 --seed 3 --out "$WORK/base-samples.jsonl" 2>/dev/null
echo "-- the public base generator alone (no DP fine-tuning, no filter):"
"$BIN" eval --real "$WORK/window-prompts.jsonl" --synthetic "$WORK/base-samples.jsonl" --seeds 3 2>/dev/null | grep -E "^(MAUVE|leakage)"
echo "-- the connector's released synthetic instructions (DP fine-tuned + DP filter):"
"$BIN" eval --real "$WORK/window-prompts.jsonl" --synthetic "$WORK/synthetic.jsonl" --seeds 3 --html "$WORK/report.html" 2>/dev/null | grep -Ev "^mauve="
echo
echo "HTML report: $WORK/report.html (open it in a browser). Privacy ledger copy: $WORK/ledger.jsonl"
