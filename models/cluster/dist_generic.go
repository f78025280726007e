//go:build !(goexperiment.simd && amd64)

package cluster

// sqDist is the squared Euclidean distance between a and b (len(b) >=
// len(a)).
func sqDist(a, b []float32) float32 { return sqDistScalar(a, b) }
