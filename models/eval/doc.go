// Package eval measures how close a synthetic instruction set is to a real
// one and whether it leaked any of it: MAUVE (mean and std over k-means
// seeds) and the frontier integral, cluster histograms, length statistics,
// distinct-n, the spelling share against a word list and the
// harmful-request screen's share (models/textstats), and a leakage report
// (exact copies and long shared token runs); optionally it also runs the DP
// filter on the synthetic set against the real one and measures again.
//
// It reads the real texts in full, so it is only for data the user is
// allowed to see (public sets, the demo's data, a consented sample): the
// connector never runs it on a private window. Its reports quote texts
// (leaks and samples) escaped for HTML by html/template.
package eval
