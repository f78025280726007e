// dpinstruct patch: no vector path without the simd experiment.

//go:build !(amd64 && goexperiment.simd)

package fastmath

func expSliceSIMD(in, out []float32) bool  { return false }
func tanhSliceSIMD(in, out []float32) bool { return false }

func softmaxRowSIMD(in, out []float32) bool { return false }
