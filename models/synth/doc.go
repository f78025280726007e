// Package synth draws distinct synthetic instructions from a generator:
// sampling from an empty prompt, decoding, dropping broken bytes, empty
// samples and exact duplicates, until enough distinct texts are found.
// Sampling is post-processing of the model, so it costs no privacy.
package synth
