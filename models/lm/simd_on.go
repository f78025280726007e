//go:build goexperiment.simd

package lm

// SIMDBuild reports whether this binary was built with GOEXPERIMENT=simd,
// which the pure-Go backend needs for its AVX2/AVX-512 matmul kernels
// (~15x faster on amd64). Build and test with GOEXPERIMENT=simd exported.
const SIMDBuild = true
