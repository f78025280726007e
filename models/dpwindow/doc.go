// Package dpwindow is the method for one window of private instructions,
// end to end: plan the privacy spend, fine-tune LoRA adapters on the
// public base generator with Poisson-sampled DP-Adam, sample a synthetic
// pool, and resample it with the DP histogram filter.
//
// Privacy: the window's (epsilon, delta) target is met by the composition
// of the DP-SGD steps (sampled Gaussian, rate q = ExpectedBatch/n, T
// steps, noise sigma) with one Gaussian histogram of std HistogramSigma
// (sensitivity 1), under the RDP accountant; Plan finds the smallest sigma
// that meets the target with the histogram's share fixed. Everything Run
// returns is post-processing of those two mechanisms and of public data
// (the base model, the public embedding): the adapters, the pool, the
// noisy histogram and the selection. The record count n, which sets q, is
// stream metadata (see the README: it is outside the guarantee).
package dpwindow
