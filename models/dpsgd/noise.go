package dpsgd

import (
	crand "crypto/rand"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	"github.com/gomlx/gomlx/core/tensors"
	"golang.org/x/sync/errgroup"
)

// The Gaussian noise of a DP step is drawn on the host, not in the graph,
// for two reasons:
//
//   - Privacy: the noise generator must not be predictable from what an
//     adversary can see. GoMLX's graph RNG (RNGBitGenerator on the Go
//     backend) is a PCG stream, whose state can be recovered from outputs;
//     math/rand/v2's ChaCha8 is a cryptographically strong generator. Each
//     step seeds fresh ChaCha8 streams from crypto/rand, so no generator
//     state outlives a step (nothing to checkpoint, nothing to leak).
//   - Speed: the graph's Box-Muller (two uniform draws, a float64 log and
//     cos per coordinate, a dozen elementwise passes) took ~11% of a DP
//     step of the shipped model; NormFloat64's ziggurat on ChaCha8, split
//     over the cores, takes a few milliseconds for its 2.6M coordinates.
//
// Draws are float64 N(0,1) scaled by std and rounded to float32 once. (As
// with any floating-point Gaussian mechanism, the low-order bits are not
// those of an exact real-valued Gaussian; see Mironov 2012. The sum they are
// added to is itself float32.)

// noiseChunk is the fewest coordinates a goroutine draws: below it the
// goroutine costs more than it saves.
const noiseChunk = 1 << 16

// gaussianTensors returns one float32 tensor per shape, each coordinate an
// independent N(0, std²) draw.
// The seeds come from crypto/rand, or from seeds when it is not nil
// (TrainerOptions.Seeds: evaluations only).
func gaussianTensors(shapesOf [][]int, std float64, seeds io.Reader) ([]*tensors.Tensor, error) {
	out := make([]*tensors.Tensor, len(shapesOf))
	flats := make([][]float32, len(shapesOf))
	for i, dims := range shapesOf {
		out[i] = tensors.FromShape(shapes.Make(dtypes.Float32, dims...))
		// MutableFlatData only lends the slice for the callback; the fill
		// below runs in parallel, so it keeps the slice past the callback.
		// That is safe: the tensor is new, local and not yet on a device.
		if err := tensors.MutableFlatData(out[i], func(f []float32) { flats[i] = f }); err != nil {
			return nil, fmt.Errorf("dpsgd: noise tensor: %w", err)
		}
	}
	if err := fillGaussian(flats, std, seeds); err != nil {
		return nil, err
	}
	return out, nil
}

// fillGaussian fills every slice with N(0, std²) draws, split into chunks
// of at least noiseChunk coordinates drawn at most GOMAXPROCS at a time,
// each chunk from its own ChaCha8 stream seeded from crypto/rand (or from
// seeds, when not nil).
func fillGaussian(dsts [][]float32, std float64, seeds io.Reader) error {
	type chunk struct {
		dst  []float32
		seed [32]byte
	}
	total := 0
	for _, d := range dsts {
		total += len(d)
	}
	workers := max(1, min(runtime.GOMAXPROCS(0), total/noiseChunk))
	per := max(noiseChunk, (total+workers-1)/workers)
	var chunks []chunk
	for _, d := range dsts {
		for len(d) > 0 {
			n := min(per, len(d))
			chunks = append(chunks, chunk{dst: d[:n]})
			d = d[n:]
		}
	}
	if seeds == nil {
		seeds = crand.Reader
	}
	for i := range chunks {
		// crypto/rand never fails on supported platforms (Go 1.24+
		// crashes the program instead), but the error is checked anyway.
		if _, err := io.ReadFull(seeds, chunks[i].seed[:]); err != nil {
			return fmt.Errorf("dpsgd: seeding the noise generator: %w", err)
		}
	}
	var g errgroup.Group
	g.SetLimit(workers)
	for _, c := range chunks {
		g.Go(func() error {
			r := rand.New(rand.NewChaCha8(c.seed))
			for j := range c.dst {
				c.dst[j] = float32(r.NormFloat64() * std)
			}
			return nil
		})
	}
	_ = g.Wait() // the draws cannot fail
	return nil
}
