// Package lm is the generator language model: a small decoder-only
// transformer, written with GoMLX v0.28.2 on its pure-Go backend, that is
// pre-trained on public text, fine-tuned on private instructions with
// LoRA adapters (DP-SGD lives in another package and builds on the hooks
// described below), and sampled with a KV cache.
//
// Build and test with GOEXPERIMENT=simd exported: the Go backend's AVX2 /
// AVX-512 matmul kernels exist only then (~15x faster). SIMDBuild reports it,
// and TestBuiltWithSIMD fails without it on amd64.
//
// # Architecture
//
//	tokens [B,T] int32
//	x = tok_emb[tokens] + pos_emb[0:T]            learned positions
//	repeat Layers times (pre-norm):
//	    h = LN1(x)
//	    q,k,v = h·Wq+bq (+ s·(h·A_q)·B_q), ...    LoRA on the chosen projections
//	    a = softmax(q·kᵀ/sqrt(Dh) + causal) · v   per head, Einsum
//	    x = x + (a·Wo+bo (+ s·(a·A_o)·B_o))
//	    x = x + W_down·gelu(W_up·LN2(x))          GELU (tanh form), MLPRatio*Width hidden
//	logits = LN_f(x) · tok_embᵀ                   tied head (default), or LN_f(x)·W_head
//
// Matrices are stored [in, out]. LayerNorm is written out (mean, variance,
// x̂ = (x-mean)·1/sqrt(var+eps), x̂·gain+bias) with Inverse(Sqrt(.)) because
// Rsqrt has no gradient in GoMLX. The sequence layout is GPT-2's: BOS (the
// EOS id) then the text's tokens, targets shifted by one and ending with EOS;
// padding is masked out of the loss (PackBatch). With right padding and a
// causal mask no real position attends to a pad, so no key mask is needed.
//
// Tied vs untied head: Config.TiedEmbeddings (default true) reuses the token
// table as the output projection, saving VocabSize*Width parameters (vocab
// 4096, width 256, 4 layers: 4.2M tied vs 5.3M untied). The table then gets gradient from two
// places (the lookup and the head); DP-SGD must add both per-example
// contributions before clipping (see KindTiedHead).
//
// # Why Einsum/Dense and not the library's attention layer
//
// DP-SGD needs per-example gradient norms. The cheap way (ghost norms) needs,
// for every parameterised layer, its input activations and the gradient of
// the loss w.r.t. its output; per-example gradients are then outer products
// summed over time (Einsum("bti,bto->bio")) and their norms follow from Gram
// matrices without forming them. GoMLX's MultiHeadAttention and LayerNorm
// layers compute those intermediates internally and do not expose them, so
// every layer here is written from MatMul/Einsum and records its nodes.
//
// # Per-layer hooks for DP-SGD
//
// Inside a graph built by a model.Exec on Model.Store(), call
//
//	taps := &lm.Taps{}
//	logits := m.Logits(g, tokens, taps)
//	perEx := lm.PerExampleLoss(logits, targets, mask)          // [B]
//	grads := graph.Gradient(graph.ReduceAllSum(perEx), taps.Outputs()...)
//
// Each Tap holds Name ("layer01/attn/q", "layer01/attn/q/lora_A", "tok_emb",
// "head", ...), Kind (how output follows from input), Weight and Bias (store
// paths) and the Input/Output nodes, always with the example axis first.
// Since examples do not interact, grads[i][b] is example b's gradient w.r.t.
// that layer's output. LayerKind documents the per-example weight-gradient
// formula for each kind; TestTapsGivePerExampleGradients checks that they sum
// to the batch gradient. For LoRA fine-tuning, taps.Adapters() lists just the
// A and B layers. Adam accepts precomputed (clipped, noised) gradients via
// optimizer.Adam()...Done().(interface{ UpdateGraphWithGradients(...) }).
//
// # Variables
//
// Base weights live under BaseScope ("/base/..."), adapters under LoRAScope
// ("/lora/layerNN/{q,k,v,o}/{A,B}"), so "adapters only" vs "all" is a choice
// of scope (TrainSet). A is uniform ±1/sqrt(Width), B is zero, so adding
// adapters does not change the model's output. The adapter output is scaled
// by Alpha/Rank. Adam state lives in "/adam_<set>/..." and the learning rate
// in "/optimizers/learning_rate".
//
// # Model folder
//
//	config.json            Config, with format_version (FormatVersion)
//	model.safetensors      /base and /lora variables, names without the leading "/"
//	optimizer.safetensors  Adam moments and step counters (resume training)
//	tokenizer.json         written by the tokenizer package; Save leaves it alone
//
// safetensors was chosen over GoMLX's checkpoint format because it is one
// file per purpose with a fixed name (GoMLX's checkpoints are timestamped
// files with retention rules that delete old ones), and it can be read by
// any other tool. Load refuses a folder with a newer format_version
// (ErrNewerFormat).
//
// # Sampling
//
// Generate decodes BatchSize rows at once from BOS with a per-step graph
// (DecodeStep) over a fixed-size KV cache [B*Heads, MaxTokens, Dh] per
// layer, compiled once per (BatchSize, MaxTokens) and kept by the model
// for every later call. Rows are refilled as their sequences end
// (continuous batching), each row at its own position. The Go backend has
// no DynamicUpdateSlice, so a row's new key/value is written by adding the
// difference to what its slot holds (ScatterSum); the cache buffers are
// donated back to each step, so the write is in place. The step ends with
// softmax(logits/temperature) in the graph; top-k and top-p (default
// DefaultTopP, relative to the top-k mass when both are set, as in Hugging
// Face) and the categorical draw run in Go on those probabilities, in
// parallel over rows, with no sort: exponent buckets narrow the
// candidates and a selection finds the nucleus among them. Each sequence
// has its own random stream derived from (Seed, index), so output is
// deterministic for a seed whatever the batch size.
//
// # What is not implemented
//
//   - LoRA dropout: Config.LoRA.Dropout is stored and validated but not
//     applied. It would need a per-step random mask in the training graph;
//     the paper's 0.05 matters little and DP noise already regularises.
//   - Prompts: Generate always starts from BOS (the method's prompt is empty).
//   - The training graph is one compiled executable per Trainer and shape;
//     AddLoRA after creating a Trainer leaves that Trainer on the old graph.
//
// # Testing under -race
//
// -race turns on Go's checkptr, and GoMLX's matmul kernels (compute v0.1.2,
// SIMD and plain alike) do pointer arithmetic it rejects with a fatal error.
// Run the race tests with -gcflags='github.com/gomlx/compute/...=-d=checkptr=0';
// without it the tests that execute graphs skip with that message instead
// of crashing the package (see checkptr_race_test.go).
//
// # GPT-2 checkpoints and backends
//
// LoadGPT2 reads a Hugging Face GPT-2 folder (config.json plus
// model.safetensors or a sharded index; F32, F16 or BF16; names optionally
// prefixed "transformer.") from local disk; the naming map is in its doc
// comment, and the folder's tokenizer.json is loaded with
// models/tokenizer.Load. The result is an ordinary Model (Save writes it in
// this package's format), so fine-tuning and sampling work the same way.
//
// BackendFromName picks the compute backend: "go" (the default, pure Go,
// SIMD kernels with GOEXPERIMENT=simd), "go:<config>", or "xla:<plugin>"
// in builds with -tags xla (locally installed PJRT plugins only, such as
// jax's CUDA plugin on a GPU machine; automatic download is disabled). The
// CLI takes it from --backend or DPINSTRUCT_BACKEND.
package lm
