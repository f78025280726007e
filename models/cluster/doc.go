// Package cluster holds the small numerical building blocks that the DP
// filter and the MAUVE evaluation share: row L2 normalisation, PCA and
// k-means over feature rows ([][]float32, one row per text).
//
//   - [Normalize] scales every row to unit L2 norm in place.
//   - [FitPCA] fits a PCA on the rows (float64 covariance, built by a
//     parallel pass over the rows, eigen-decomposed with gonum's SymEigen)
//     and keeps the fewest leading components that reach a requested share
//     of the total variance; [PCA.Transform] projects rows onto them.
//   - [FitKMeans] runs k-means++ seeding and Lloyd iterations, with several
//     restarts (best inertia kept), parallel over a number of workers;
//     [KMeans.Assign] maps rows to their nearest centroid.
//
// Everything is deterministic: PCA sums partial covariances in a fixed
// order, and k-means draws all randomness from a math/rand/v2 PCG seeded
// from [KMeansOptions.Seed] while every reduction over points runs in point
// order, so the result for a given seed does not depend on the number of
// workers (or on GOMAXPROCS). Built with GOEXPERIMENT=simd on amd64 with
// AVX2/FMA, the point-to-centroid distances use an archsimd kernel (about
// 3x faster than the portable one); its round-off differs from the
// portable kernel's, so results are reproducible per CPU family rather
// than bit-identical across machines with and without AVX2.
//
// Inputs are validated (no empty input, no ragged rows, no NaN or Inf);
// the errors wrap [ErrEmpty], [ErrRagged], [ErrNonFinite] or [ErrClusters]
// so callers can test for them with errors.Is.
package cluster
