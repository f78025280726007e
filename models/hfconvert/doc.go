// Package hfconvert turns a llama2.c model (models/llama2c: a legacy
// checkpoint and its tokenizer export) into a Hugging Face folder in the
// LlamaForCausalLM layout, so that a Llama-family loader reads it like any
// HF model. FromLlama2c writes four files:
//
//   - config.json: architectures ["LlamaForCausalLM"], model_type "llama",
//     the sizes from the llama2.c header (hidden_size = dim,
//     intermediate_size = hidden_dim, num_key_value_heads = n_kv_heads,
//     head_dim = dim / n_heads), and the constants run.c hard-codes:
//     rms_norm_eps 1e-05 and rope_theta 10000.0 (written as HF's Python
//     writes them), hidden_act "silu" (run.c's SwiGLU), no biases,
//     max_position_embeddings = seq_len (the positions the model was
//     trained for and run.c's KV cache holds), bos_token_id 1 and
//     eos_token_id 2 (SentencePiece's ids, which llama2.c keeps), and
//     tie_word_embeddings true exactly when the header's vocab_size is
//     positive (the classifier is the embedding table). torch_dtype is
//     "float32": the weights are copied without rounding.
//
//   - model.safetensors: every tensor F32, under HF's names:
//     model.embed_tokens.weight [vocab, dim]; per layer i
//     model.layers.i.input_layernorm.weight (rms_att),
//     self_attn.{q,k,v,o}_proj.weight (wq, wk, wv, wo),
//     post_attention_layernorm.weight (rms_ffn), mlp.gate_proj.weight (w1),
//     mlp.up_proj.weight (w3), mlp.down_proj.weight (w2);
//     model.norm.weight; and lm_head.weight only when the classifier is
//     not shared (a tied model has none, as HF saves it). run.c stores a
//     matrix (out, in) row-major, which is already PyTorch's Linear weight
//     layout, so the only change is the RoPE permutation below. The legacy
//     freq_cis tables are dropped: HF recomputes them from rope_theta.
//     __metadata__ is {"format": "pt"}, which transformers' loader expects.
//
//   - tokenizer.json: what transformers' LlamaConverter (the legacy,
//     pre-Metaspace form) builds from a SentencePiece BPE model: a BPE
//     model with byte_fallback (when all 256 "<0xNN>" pieces exist),
//     fuse_unk and unk "<unk>"; the vocabulary in id order with llama2.c's
//     " " turned back into SentencePiece's "▁" and ids 0, 1, 2 named
//     "<unk>", "<s>", "</s>" (llama2.c's export wrote BOS and EOS as
//     "\n<s>\n" and "\n</s>\n"); merges derived from the vocabulary as
//     HF's SentencePieceExtractor does (every split of a piece into two
//     vocabulary pieces, ordered by the piece's score, highest first, ties
//     in id order; newer transformers break score ties by piece lengths
//     instead, which only reorders merges of equal score); the normalizer
//     Prepend "▁" + Replace " " -> "▁", no pre-tokenizer, a post-processor
//     adding <s>, and the decoder Replace "▁" -> " ", ByteFallback, Fuse,
//     Strip one leading space. The three specials are added tokens.
//
//   - tokenizer_config.json: LlamaTokenizer with bos "<s>", eos "</s>",
//     unk "<unk>", add_bos_token true, add_eos_token false, no pad token.
//
// # RoPE
//
// run.c rotates neighbouring pairs (2i, 2i+1) of each head; HF's
// rotate_half pairs i with i + head_size/2. The rows of wq and wk are
// therefore permuted within each head: HF row j takes run.c row 2j for
// j < head_size/2 and row 2(j-head_size/2)+1 after (the permute of HF's
// convert_llama_weights_to_hf.py, the inverse of llama2.c's
// export.py permute_reverse). q·k is unchanged because both sides move
// the same way, and v, o are untouched.
//
// # Checks
//
// The tests read the written folder back and compare it with llama2c:
// an independent HF-convention float32 forward (hfforward_test.go) over
// the safetensors file gives llama2c.Forward's logits to 1e-4 on
// stories260K and on random checkpoints (tied and untied, MHA, GQA, MQA);
// models/tokenizer.LoadHF on tokenizer.json gives run.c's ids on a few
// hundred texts, byte fallback included. The one known difference: HF
// splits an added token written in the text ("<s>") into its id and
// prepends "▁" to the text after it; run.c spells it out with pieces.
package hfconvert
