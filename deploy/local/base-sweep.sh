#!/usr/bin/env bash
# base-sweep.sh: the base-generator sweep behind docs/MODELS.md's table.
#
# Every setting gets the same compute: STAGE1 of training on all public text
# (the language stage), then STAGE2 on the question and request sets (the
# instruction stage), both with the documented caps (red-team prompts <= 5%,
# role-play templates <= 10% of a stage's tokens). Each is then scored on
# the public held-out prompts (FastChat questions, oasst1 validation
# prompts; never trained on): bits per character (comparable across
# tokenizers), perplexity per token, and, on N samples at the reference
# sampling settings, the spelling share, the harmful-request share and MAUVE
# against the held-out prompts (lexical embedding).
#
# Usage: deploy/local/base-sweep.sh [NAME ...]   (default: every setting)
# Env: STAGE1 (default 6m), STAGE2 (2m), N (500), WORK (.dpinstruct/sweep),
#      DPINSTRUCT_DATA (../shared/data). Results: $WORK/results.tsv, one line a
# setting (appended; rerunning a setting resumes its training).
set -euo pipefail
cd "$(dirname "$0")/../.."

BIN=${BIN:-bin/dpinstruct}
DATA=${DPINSTRUCT_DATA:-../shared/data}
P=$DATA/public
WORK=${WORK:-.dpinstruct/sweep}
STAGE1=${STAGE1:-6m}
STAGE2=${STAGE2:-2m}
N=${N:-500}
mkdir -p "$WORK"

# name vocab width layers heads context
SETTINGS="
v4k-w192-l4 4096 192 4 4 64
v8k-w192-l4 8192 192 4 4 64
v16k-w192-l4 16384 192 4 4 64
v8k-w256-l4 8192 256 4 4 64
v8k-w192-l6 8192 192 6 4 64
v8k-w192-l4-c96 8192 192 4 4 96
"

INSTRUCTION_SETS=(hh-rlhf awesome-chatgpt-prompts self-instruct open-assistant taskmaster squad-dev
	nq-open gsm8k aqua-rat nl2bash wikitablequestions)
instruction_args=()
for s in "${INSTRUCTION_SETS[@]}"; do instruction_args+=(--corpus "$P/$s"); done
caps=(--cap "$P/hh-rlhf=0.05" --cap "$P/awesome-chatgpt-prompts=0.10")
held=(--held-out "$P/fastchat" --held-out "$P/oasst1-turkunlp/prompts.jsonl")

heldout_jsonl=$WORK/heldout.jsonl
cat "$P/fastchat/prompts.jsonl" "$P/oasst1-turkunlp/prompts.jsonl" > "$heldout_jsonl"

run() {
	local name=$1 vocab=$2 width=$3 layers=$4 heads=$5 context=$6
	local out=$WORK/$name
	local shape=(--vocab "$vocab" --width "$width" --layers "$layers" --heads "$heads" --context "$context"
		--steps 1000000 --checkpoint-every 200)
	echo "== $name: stage 1 ($STAGE1)" >&2
	"$BIN" pretrain --out "$out" --corpus "$P/oasst1-turkunlp/train_messages.jsonl.gz" "${instruction_args[@]}" \
		"${caps[@]}" "${held[@]}" "${shape[@]}" --max-time "$STAGE1" > "$out.stage1.txt"
	echo "== $name: stage 2 ($STAGE2)" >&2
	local s1steps
	s1steps=$(sed -n 's/^trained: \([0-9]*\) steps.*/\1/p' "$out.stage1.txt")
	"$BIN" pretrain --out "$out" "${instruction_args[@]}" "${caps[@]}" "${held[@]}" "${shape[@]}" \
		--max-time "$STAGE2" > "$out.stage2.txt"
	local steps bpc ppl
	steps=$(sed -n 's/^trained: \([0-9]*\) steps.*/\1/p' "$out.stage2.txt")
	ppl=$(sed -n 's/^held-out perplexity: \([0-9.]*\) .*/\1/p' "$out.stage2.txt")
	bpc=$(sed -n 's/.*(\([0-9.]*\) bits per character).*/\1/p' "$out.stage2.txt")
	echo "== $name: sampling $N and scoring" >&2
	"$BIN" generate --model "$out" --n "$N" --seed 1 --out "$out.samples.jsonl" 2>/dev/null
	"$BIN" eval --real "$heldout_jsonl" --synthetic "$out.samples.jsonl" --embedding lexical --model "$out" \
		> "$out.eval.txt" 2>/dev/null
	local params spell words harm mauve
	params=$(sed -n 's/^model: .*(\([0-9]*\) parameters.*/\1/p' "$out.stage2.txt")
	spell=$(grep -i 'spelling' "$out.eval.txt" | head -1 | tr -s ' ' | tr '\t' ' ')
	harm=$(grep -i 'harmful' "$out.eval.txt" | head -1 | tr -s ' ' | tr '\t' ' ')
	mauve=$(sed -n 's/^mauve=\(.*\)/\1/p' "$out.eval.txt")
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$params" "$s1steps" "$steps" "$ppl" "$bpc" "$mauve" "$spell" "$harm" \
		| tee -a "$WORK/results.tsv"
}

want=" $* "
while read -r name vocab width layers heads context; do
	[ -n "$name" ] || continue
	if [ $# -gt 0 ] && [[ $want != *" $name "* ]]; then continue; fi
	run "$name" "$vocab" "$width" "$layers" "$heads" "$context"
done <<< "$SETTINGS"
