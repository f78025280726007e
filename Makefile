# dpinstruct: `make demo` runs the connector end to end on this machine,
# `make test` runs every test (starting a local ClickHouse first).

SHELL := /bin/bash
# GoMLX's pure-Go backend gets its SIMD matmul kernels only with this
# experiment; every build of the project sets it so binaries match.
export GOEXPERIMENT := simd
export DPINSTRUCT_CH_PORT ?= 19000
export DPINSTRUCT_CLICKHOUSE_DSN ?= clickhouse://default@127.0.0.1:$(DPINSTRUCT_CH_PORT)/dpinstruct
export DPINSTRUCT_DATA ?= $(abspath ../shared/data)
# The local server's state directory (clickhouse.sh), and the servers a
# failing test checks for a crash (internal/serverwatch).
export DPINSTRUCT_CH_DIR ?= $(CURDIR)/.dpinstruct/clickhouse
export DPINSTRUCT_SERVER_DIRS ?= $(DPINSTRUCT_CH_DIR)

BIN := bin/dpinstruct
# -race turns on checkptr, which GoMLX's own matmul kernels (compute v0.1.2)
# fail; the race detector stays on, checkptr is off for that module only.
GO_TEST_FLAGS ?= -race -count=1 -timeout 30m -gcflags='github.com/gomlx/compute/...=-d=checkptr=0'
# gotestsum runs `go test` and ends with a one-line summary (tests, skips,
# failures); its exit status is go test's.
GOTESTSUM := go run gotest.tools/gotestsum@v1.13.0

.PHONY: wordlist all build vet test test-short test-cluster demo clickhouse clickhouse-stop cluster cluster-stop bench bench-generator base-model clean

all: build

build:
	go build -o $(BIN) ./cmd/dpinstruct

vet:
	go vet ./...

clickhouse:
	deploy/local/clickhouse.sh start

clickhouse-stop:
	deploy/local/clickhouse.sh stop

## cluster: ZooKeeper + a two-shard ClickHouse cluster on loopback
## (deploy/local/cluster.sh; `deploy/local/cluster.sh env` prints the DSNs).
cluster:
	deploy/local/cluster.sh start

cluster-stop:
	deploy/local/cluster.sh stop

## test: vet, start the local ClickHouse, run every test with -race, then the
## ClickHouse-facing ones again against a two-shard cluster (test-cluster).
test: vet clickhouse wordlist
	@# DP fine-tuning on Dolly, the filter experiment (sampling 5,000
	@# instructions), the privacy audits and the million-record soak take
	@# minutes each, and the accountants' published values and million-step
	@# grid half a minute, and would take far longer under the race
	@# detector, so those tests skip there: run them first without -race,
	@# then everything with it.
	$(GOTESTSUM) --format pkgname -- -count=1 -timeout 45m -run 'TestDollyLossFallsAtEpsilon4|TestFilterRaisesMAUVEOnDolly|TestAudit|TestSoakMillionRecords|TestPublishedEpsilons|TestPublishedNoise|TestPRVAgreesWithPLD|TestAccountantsSurviveTinyNoise' ./models/dpsgd/ ./models/quality/ ./models/audit/ ./models/privacy/ ./cmd/dpinstruct/
	$(GOTESTSUM) --format pkgname --hide-summary=skipped -- $(GO_TEST_FLAGS) ./...
	@# The carried GoMLX compute patch's own tests (docs/GOMLX_PATCH.md):
	@# a separate module, so ./... above does not reach it.
	cd third_party/gomlx-compute && $(GOTESTSUM) --format pkgname -- -count=1 ./internal/...
	$(MAKE) test-cluster

## wordlist: Debian's large American English word list, the default of
## `dpinstruct eval --wordlist` (its spelling measure); installed with apt-get
## as deploy/local/clickhouse.sh installs ClickHouse.
WORDLIST := /usr/share/dict/american-english-large
wordlist: $(WORDLIST)
$(WORDLIST):
	@command -v apt-get >/dev/null || { echo "apt-get unavailable: install a word list and pass dpinstruct eval --wordlist FILE" >&2; exit 1; }
	sudo=; [ "$$(id -u)" -eq 0 ] || sudo=sudo; \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q wamerican-large

## test-cluster: the sink and connector packages' tests, and dpinstruct's scale-out,
## DP, crash, output-topic, queue and budget tests again, in cluster mode
## against a two-shard ClickHouse cluster (Distributed tables; the second
## process of a test talks to the other shard's server). Stops the cluster
## afterwards, pass or fail.
CLUSTER_TESTS := TestThreeReplicas|TestDPProcessorWritesTwoWindows|TestCrashAndRestartWritesEachWindowExactlyOnce|TestOutputTopicGetsEachWindowExactlyOnce|TestQueueClaimProcessesExportImport|TestLifetimeCap
test-cluster: cluster
	eval "$$(deploy/local/cluster.sh env)"; \
	$(GOTESTSUM) --format pkgname --hide-summary=skipped -- $(GO_TEST_FLAGS) ./sink/ ./connector/ && \
	$(GOTESTSUM) --format pkgname --hide-summary=skipped -- $(GO_TEST_FLAGS) -run '$(CLUSTER_TESTS)' ./cmd/dpinstruct/; \
	rc=$$?; deploy/local/cluster.sh stop; exit $$rc

## test-short: unit tests only (no ClickHouse, no process kills).
test-short:
	go test -short -count=1 ./...

## demo: local ClickHouse + embedded broker + Dolly prompts -> two windows.
demo: build clickhouse wordlist
	deploy/local/demo.sh

## bench-generator: the generator's benchmarks behind docs/BENCHMARKS.md, in
## one run: training and sampling next to the matmul rate, the DP step,
## embedding and a demo window's stage times (about 5 minutes on 2 cores).
GENERATOR_BENCH := go test -run '^$$' -benchtime 2x -bench 'ShippedSpeed|ModelEmbed' ./models/base/ ./models/embed/ && \
	go test -run '^$$' -benchtime 9x -bench DPStep ./models/dpsgd/ && \
	go test -run '^$$' -benchtime 1x -bench DemoWindow ./models/dpwindow/
bench-generator:
	$(GENERATOR_BENCH)

## bench: the data-plane benchmarks behind docs/BENCHMARKS.md.
bench: clickhouse
	deploy/local/bench.sh

## base-model: re-create the shipped base model (models/base/model) from public
## data only (docs/MODELS.md, "The shipped base generator"): a 16k-token
## tokenizer and a 4.9M-parameter transformer (width 192, 4 layers, context 64),
## trained in six stages that alternate a language mix (oasst1 messages and
## every question set) with an instruction mix (the question sets alone, which
## steers samples towards instructions). They are the model's real history:
## stages 1-2 are its run in the shape sweep (deploy/local/base-sweep.sh),
## 3-4 the 45-minute candidate that continued it, 5-6 the continuation that
## was shipped; the last one caps the narrow-domain sets and runs at a lower
## learning rate (a cool-down). Red-team prompts (hh-rlhf) and role-play
## templates (awesome-chatgpt-prompts) are capped in every stage. About
## 1 h 55 min on 2 cores. It trains in .dpinstruct/base-model (resumable: rerun
## after an interruption; --steps counts all steps, so a finished stage is
## skipped), then copies what is shipped into models/base/model.
PUBLIC := $(DPINSTRUCT_DATA)/public
PROMPT_SETS := $(foreach s,hh-rlhf awesome-chatgpt-prompts self-instruct open-assistant \
	taskmaster squad-dev nq-open gsm8k aqua-rat nl2bash wikitablequestions,--corpus $(PUBLIC)/$(s))
LANGUAGE_MIX := --corpus $(PUBLIC)/oasst1-turkunlp/train_messages.jsonl.gz $(PROMPT_SETS) \
	--cap $(PUBLIC)/hh-rlhf=0.05 --cap $(PUBLIC)/awesome-chatgpt-prompts=0.10
INSTRUCTION_MIX := $(PROMPT_SETS) \
	--cap $(PUBLIC)/hh-rlhf=0.05 --cap $(PUBLIC)/awesome-chatgpt-prompts=0.10
INSTRUCTION_MIX_CAPPED := $(PROMPT_SETS) \
	--cap $(PUBLIC)/hh-rlhf=0.03 --cap $(PUBLIC)/awesome-chatgpt-prompts=0.08 \
	--cap $(PUBLIC)/gsm8k=0.10 --cap $(PUBLIC)/wikitablequestions=0.10 \
	--cap $(PUBLIC)/nl2bash=0.08 --cap $(PUBLIC)/squad-dev=0.12
## The public held-out prompts (never trained on): perplexity and bits per
## character here, MAUVE in deploy/local/sampling-sweep.sh.
HELD_OUT := --held-out $(PUBLIC)/fastchat --held-out $(PUBLIC)/oasst1-turkunlp/prompts.jsonl
BASE_SHAPE := --vocab 16384 --width 192 --layers 4 --heads 4 --context 64 --checkpoint-every 200
BASE_WORK := .dpinstruct/base-model
base-model: build
	$(BIN) pretrain --out $(BASE_WORK) $(BASE_SHAPE) $(LANGUAGE_MIX) $(HELD_OUT) --steps 320
	$(BIN) pretrain --out $(BASE_WORK) $(BASE_SHAPE) $(INSTRUCTION_MIX) $(HELD_OUT) --steps 438
	$(BIN) pretrain --out $(BASE_WORK) $(BASE_SHAPE) $(LANGUAGE_MIX) $(HELD_OUT) --steps 2874
	$(BIN) pretrain --out $(BASE_WORK) $(BASE_SHAPE) $(INSTRUCTION_MIX) $(HELD_OUT) --steps 3690
	$(BIN) pretrain --out $(BASE_WORK) $(BASE_SHAPE) $(LANGUAGE_MIX) $(HELD_OUT) --steps 8000
	$(BIN) pretrain --out $(BASE_WORK) $(BASE_SHAPE) $(INSTRUCTION_MIX_CAPPED) $(HELD_OUT) \
	  --lr 3e-4 --steps 8800
	cp $(BASE_WORK)/config.json $(BASE_WORK)/model.safetensors $(BASE_WORK)/tokenizer.json \
	  $(BASE_WORK)/pretrain.json models/base/model/

clean:
	rm -rf bin .dpinstruct/spill
