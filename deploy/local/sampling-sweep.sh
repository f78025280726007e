#!/usr/bin/env bash
# sampling-sweep.sh: the temperature / top-p curve behind the generator's
# sampling defaults (docs/MODELS.md). For each setting it samples N
# instructions from MODEL and scores them against the public held-out prompts
# (FastChat questions, oasst1 validation prompts; never trained on): MAUVE
# (lexical embedding, the trade of fluency against diversity), distinct-2,
# the spelling share and the harmful-request share.
#
# Usage: deploy/local/sampling-sweep.sh [MODEL]   (default: the shipped base model)
# Env: N (500), TEMPERATURES ("0.7 0.8 0.9 1.0"), TOP_PS ("0.9 0.95 1.0"),
#      WORK (.dpinstruct/sampling-sweep), DPINSTRUCT_DATA (../shared/data).
# Output: one tab-separated line per setting on stdout and in $WORK/results.tsv.
set -euo pipefail
cd "$(dirname "$0")/../.."

BIN=${BIN:-bin/dpinstruct}
MODEL=${1:-}
P=${DPINSTRUCT_DATA:-../shared/data}/public
WORK=${WORK:-.dpinstruct/sampling-sweep}
N=${N:-500}
TEMPERATURES=${TEMPERATURES:-"0.7 0.8 0.9 1.0"}
TOP_PS=${TOP_PS:-"0.9 0.95 1.0"}
mkdir -p "$WORK"
heldout=$WORK/heldout.jsonl
cat "$P/fastchat/prompts.jsonl" "$P/oasst1-turkunlp/prompts.jsonl" > "$heldout"
model_args=()
[ -z "$MODEL" ] || model_args=(--model "$MODEL")

printf 'temperature\ttop_p\tmauve\tdistinct-2\tspelling_clean\tharmful\n' | tee "$WORK/results.tsv"
for t in $TEMPERATURES; do
	for p in $TOP_PS; do
		out=$WORK/t$t-p$p
		"$BIN" generate "${model_args[@]}" --n "$N" --seed 1 --temperature "$t" --top-p "$p" --out "$out.jsonl" 2>/dev/null
		"$BIN" eval "${model_args[@]}" --real "$heldout" --synthetic "$out.jsonl" --embedding lexical > "$out.eval.txt" 2>/dev/null
		mauve=$(sed -n 's/^mauve=\(.*\)/\1/p' "$out.eval.txt")
		distinct=$(sed -n 's/.*synthetic \([0-9.]*\) \/ \([0-9.]*\) .*/\2/p' "$out.eval.txt" | head -1)
		spell=$(sed -n 's/^spelling: texts with every word.*synthetic \([0-9.]*%\).*/\1/p' "$out.eval.txt")
		harm=$(sed -n 's/^harmful-request screen.*synthetic \([0-9.]*%\).*/\1/p' "$out.eval.txt")
		printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "$p" "$mauve" "$distinct" "$spell" "$harm" | tee -a "$WORK/results.tsv"
	done
done
