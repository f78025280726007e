// Package quality holds the experiments behind docs/QUALITY.md: they run
// the real generator, embeddings, DP filter and MAUVE on Dolly (as the
// private stream) and check that each piece earns its place. They are
// tests, so CI reruns them; each logs the numbers QUALITY.md quotes.
package quality
