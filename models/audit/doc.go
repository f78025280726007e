// Package audit is the empirical privacy audit (Carlini et al., "The
// Secret Sharer", USENIX Security 2019): plant random secrets (canaries)
// in a window, k = 1, 10 and 100 times, run the window's method, and
// measure for each canary
//
//   - its exposure: how much more likely the trained generator finds the
//     canary than random candidates of the same template (log2 of the
//     candidate space over the canary's rank; about 1.44 bits on average at
//     chance, up to log2 of the sampled candidates + 1 when it ranks first),
//   - whether it appears in the sampled pool or in the released output.
//
// With DP the exposure must stay at chance and nothing may be released;
// the same audit without DP (a setting for tests only) must show exposure,
// or the audit could not fail. The canaries are random strings made for
// the audit: reporting them is safe.
package audit
