// Package mauve computes MAUVE (Pillutla et al., NeurIPS 2021) and the
// frontier integral (Liu et al., NeurIPS 2021) between feature rows of a
// real set P and a synthetic set Q, following the reference implementation
// (github.com/krishnap25/mauve, compute_mauve.py).
//
// Pipeline ([Compute]): copy and stack P and Q, L2-normalise the rows, fit
// a PCA on the stacked set keeping [Options.VarShare] of the variance,
// project, then for each k-means seed cluster the stacked set into K
// clusters (K = max(2, round(min(n_p, n_q)/10)), capped at 500, unless
// [Options.Clusters] is set) and take the histograms p and q of P's and Q's
// points over the clusters. MAUVE depends on the k-means seed, so the
// result is the mean (and the sample standard deviation) over several
// seeds, with the per-seed values kept.
//
// From two histograms ([FromHistograms]): for w in Points values of
// linspace(1e-6, 1-1e-6), R = w p + (1-w) q gives the point
// (exp(-c KL(q||R)), exp(-c KL(p||R))) with c = Scale; the end points
// (1, 0) and (0, 1) are added. MAUVE is the mean of the trapezoid areas
// under these points sorted by x and, with the axes swapped, sorted by y
// (as the reference does with numpy argsort and sklearn's auc). Where the
// reference's order of tied coordinates is unspecified (numpy's argsort is
// not stable), ties are broken so that the path runs along the decreasing
// frontier (x ascending then y descending; y ascending then x
// descending); this makes MAUVE(p, p) exactly 1. The test value of the
// method doc, p = [.5,.5], q = [.9,.1], gives 0.671096 (0.67109581...).
//
// The frontier integral is the reference's closed form
// (get_fronter_integral with its scaling factor 2): per bin,
// (p_i+q_i)/4 - p_i q_i (log p_i - log q_i) / (2 (p_i - q_i)), or p_i/4 /
// q_i/4 where the other is zero, or 0 where |p_i - q_i| <= 1e-8, summed and
// doubled. It equals 2 ∫_0^1 [λ KL(p||R_λ) + (1-λ) KL(q||R_λ)] dλ with
// R_λ = λp + (1-λ)q (checked numerically in the tests); it lies in [0, 1],
// 0 for identical histograms and 1 for disjoint ones, lower is better.
//
// Differences from the reference: k-means here is this project's
// k-means++ / Lloyd implementation (package cluster) rather than faiss
// (random initialisation, subsampling to 256 points per centroid), with
// Restarts restarts (default 1, the reference uses 5) and MaxIter Lloyd
// iterations (default 100, the reference uses 500); PCA always uses all
// points; P is stacked before Q. Results are deterministic for fixed
// seeds and do not depend on the number of workers.
package mauve
