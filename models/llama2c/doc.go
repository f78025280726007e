// Package llama2c reads the two file formats of Andrej Karpathy's llama2.c
// (the legacy version-0 model checkpoint and the tokenizer export,
// tokenizer.bin / tok512.bin) and runs a plain-Go float32 forward pass that
// follows run.c's algorithm line by line.
//
// The forward is a reference, not a product path: it is slow (no batching,
// no SIMD, one token at a time) and exists as an independent test oracle
// for the GoMLX Llama implementation and for the llama2.c converter. Its
// result on the real stories260K weights (../shared/models/stories260K) is
// pinned by TestStories260KGreedy against the sentence that model's README
// gives.
//
// Conventions follow run.c: a weight matrix W stored as (d, n) row-major
// maps x (n) to W @ x (d); the tokenizer's byte-fallback tokens "<0xNN>"
// sit at ids 3..258 (byte + 3); BOS is 1 and EOS is 2.
//
// For a converter to Hugging Face's Llama layout: the matrices are already
// (out, in) like HF's *_proj.weight, but run.c's RoPE rotates adjacent
// pairs (i, i+1) of each head while HF's rotate_half pairs i with
// i+head_size/2, so the rows of wq and wk must be permuted within each
// head (the inverse of llama2.c export.py's permute_reverse). The legacy
// freq_cis tables are redundant and can be dropped.
package llama2c
