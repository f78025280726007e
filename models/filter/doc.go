// Package filter is the method's DP resampling step: it reshapes a pool of
// synthetic instructions so its distribution over topics matches a private
// window's, paying only a small, accounted epsilon.
//
// Clustering (L2 normalisation, PCA, k-means) touches synthetic embeddings
// only, so it is free. Each private record then votes for its nearest
// centroid; the vote counts have L2 sensitivity 1 under add/remove of one
// record (one record moves one count by one), and Gaussian noise with std
// HistogramSigma per bin makes the histogram a Gaussian mechanism whose
// epsilon the accountant composes with the window's DP-SGD steps
// (privacy.Accountant.ComposeGaussian, or Options.HistogramSigma of
// privacy.NoiseForEpsilon). The noisy histogram is clamped at zero and
// normalised; every output after that (the per-cluster quotas, which
// synthetic samples are drawn) is post-processing of it and of public
// data.
//
// Privacy notes: the private embeddings must be per-record functions (the
// embedding of one record may not depend on another record); the noise
// comes from a ChaCha8 generator seeded from crypto/rand that is never
// logged or returned; private vectors are used only to find their nearest
// centroid and are not kept. The noisy histogram (Result.Histogram) is DP
// and may be published; the raw votes never leave Run.
package filter
