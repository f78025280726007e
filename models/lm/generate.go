package lm

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
)

// SampleOptions configures Generate. Zero values mean the defaults.
type SampleOptions struct {
	// Temperature divides the logits (default 1.0).
	Temperature float64
	// TopP: nucleus sampling mass (default 0.95); 1 disables it.
	TopP float64
	// TopK: keep only the K most likely tokens; 0 (default) disables it.
	TopK int
	// Greedy takes the argmax (ignores Temperature, TopP, TopK).
	Greedy bool
	// MaxTokens: most tokens generated per sequence, EOS included (default
	// and maximum: Config.Context).
	MaxTokens int
	// Seed makes the draw deterministic: the same model, n and options give
	// the same sequences.
	Seed uint64
	// BatchSize: sequences decoded together (default 64). The last batch is
	// padded to this size, so one compiled executable serves every batch.
	BatchSize int
}

func (o SampleOptions) withDefaults(cfg Config) (SampleOptions, error) {
	if o.Temperature == 0 {
		o.Temperature = 1
	}
	if o.TopP == 0 {
		o.TopP = 0.95
	}
	if o.MaxTokens == 0 {
		o.MaxTokens = cfg.Context
	}
	if o.BatchSize == 0 {
		o.BatchSize = 64
	}
	switch {
	case o.Temperature < 0:
		return o, errors.New("lm: negative temperature")
	case o.TopP < 0 || o.TopP > 1:
		return o, errors.New("lm: top_p must be in (0, 1]")
	case o.TopK < 0:
		return o, errors.New("lm: negative top_k")
	case o.MaxTokens < 1 || o.MaxTokens > cfg.Context:
		return o, fmt.Errorf("lm: max_tokens %d outside [1, context %d]", o.MaxTokens, cfg.Context)
	case o.BatchSize < 1:
		return o, errors.New("lm: batch size must be >= 1")
	}
	return o, nil
}

// Generate samples n sequences from an empty prompt: each starts from BOS
// (= EOS id, as in GPT-2) and stops at EOS or after MaxTokens tokens. The
// returned sequences exclude BOS and the final EOS. Decoding uses a KV cache
// of MaxTokens positions: one compiled step graph per (BatchSize,
// MaxTokens), fed one token per step; the categorical draw (temperature,
// top-k, top-p) runs in Go on the step's logits.
func (m *Model) Generate(ctx context.Context, n int, opts SampleOptions) ([][]int32, error) {
	opts, err := opts.withDefaults(m.cfg)
	if err != nil {
		return nil, err
	}
	if n < 0 {
		return nil, errors.New("lm: negative n")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.ensureSampleExecLocked(); err != nil {
		return nil, err
	}
	out := make([][]int32, 0, n)
	workers := max(1, min(runtime.GOMAXPROCS(0), opts.BatchSize))
	samplers := make([]*sampler, workers)
	for i := range samplers {
		samplers[i] = newSampler(m.cfg.VocabSize)
	}
	for len(out) < n {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		rows := min(opts.BatchSize, n-len(out))
		seqs, err := m.decodeBatchLocked(ctx, rows, len(out), opts, samplers)
		if err != nil {
			return out, err
		}
		out = append(out, seqs...)
	}
	return out, nil
}

// DecodeStep is the KV-cache step, exported for tests and custom decoders:
// token int32 [B] at position pos (int32 scalar), caches [2*Layers] of
// float32 [B, Heads, Tmax, HeadDim] (K then V per layer). It returns logits
// [B, VocabSize] and the updated caches. Only positions <= pos are
// attended. The new key/value is ADDED into slot pos (ScatterSum: the Go
// backend has no DynamicUpdateSlice), so caches must start at zero and each
// position be written once, which is how Generate uses it.
func (m *Model) DecodeStep(g *Graph, token, pos *Node, caches []*Node) (*Node, []*Node) {
	c := m.cfg
	f := &fwd{m: m, g: g}
	B := token.Shape().Dimensions[0]
	d, H, Dh := c.Width, c.Heads, c.HeadDim()
	Tmax := caches[0].Shape().Dimensions[2]
	pos = ConvertDType(pos, dtypes.Int32)

	tokE := Gather(f.v(pathTokEmb), InsertAxes(token, -1)) // [B,d]
	posE := Gather(f.v(pathPosEmb), Reshape(pos, 1))       // [d]
	x := Add(tokE, BroadcastToDims(InsertAxes(posE, 0), B, d))

	iota := Iota(g, shapes.Make(dtypes.Int32, Tmax), 0)
	valid := LessOrEqual(iota, BroadcastToDims(pos, Tmax))
	maskBias := Where(valid, BroadcastToDims(ScalarZero(g, dtypes.Float32), Tmax), BroadcastToDims(Scalar(g, dtypes.Float32, -1e9), Tmax))
	maskBias = BroadcastToDims(Reshape(maskBias, 1, 1, Tmax), B, H, Tmax)
	// Scatter coordinates (b, h, pos) into the [B, H, Tmax, Dh] caches.
	bhShape := shapes.Make(dtypes.Int32, B, H)
	slot := Stack([]*Node{Iota(g, bhShape, 0), Iota(g, bhShape, 1), BroadcastToDims(pos, B, H)}, -1) // [B,H,3]
	scale := 1 / math.Sqrt(float64(Dh))

	newCaches := make([]*Node, len(caches))
	for i := range c.Layers {
		lp := LayerPath(i)
		h := f.layerNorm("", lp+"/ln1", x)
		q := Reshape(f.projection(i, "q", h), B, H, Dh)
		k := Reshape(f.projection(i, "k", h), B, H, Dh)
		v := Reshape(f.projection(i, "v", h), B, H, Dh)
		// Slot pos is still zero, so adding writes it exactly (no
		// DynamicUpdateSlice in the Go backend; ScatterSum touches one row).
		K := ScatterSum(caches[2*i], slot, k, true, true)
		V := ScatterSum(caches[2*i+1], slot, v, true, true)
		newCaches[2*i], newCaches[2*i+1] = K, V
		scores := Add(MulScalar(Einsum("bhd,bhtd->bht", q, K), scale), maskBias)
		probs := Softmax(scores, -1)
		ctxv := Einsum("bht,bhtd->bhd", probs, V)
		x = Add(x, f.projection(i, "o", Reshape(ctxv, B, d)))
		h2 := f.layerNorm("", lp+"/ln2", x)
		x = Add(x, f.mlp(i, h2))
	}
	x = f.layerNorm("", pathLNf, x)
	return f.head(x), newCaches
}

// ensureSampleExecLocked compiles the sampling step: DecodeStep, then the
// next-token probabilities softmax(logits/temperature) (the temperature is
// an input, so one executable serves every temperature), so the draw in Go
// needs no exponentials. Inputs: token [B], pos, temperature (float32
// scalars), caches; outputs: probabilities [B, V], caches.
func (m *Model) ensureSampleExecLocked() error {
	if m.sampleExec != nil {
		return nil
	}
	e, err := model.NewExec(m.backend, m.store, func(scope *model.Scope, inputs []*Node) []*Node {
		logits, caches := m.DecodeStep(inputs[0].Graph(), inputs[0], inputs[1], inputs[3:])
		probs := Softmax(Div(logits, BroadcastToShape(inputs[2], logits.Shape())), -1)
		return append([]*Node{probs}, caches...)
	})
	if err != nil {
		return err
	}
	m.sampleExec = e
	return nil
}

func (m *Model) ensureDecodeExecLocked() error {
	if m.decodeExec != nil {
		return nil
	}
	e, err := model.NewExec(m.backend, m.store, func(scope *model.Scope, inputs []*Node) []*Node {
		logits, caches := m.DecodeStep(inputs[0].Graph(), inputs[0], inputs[1], inputs[2:])
		return append([]*Node{logits}, caches...)
	})
	if err != nil {
		return err
	}
	m.decodeExec = e
	return nil
}

// decodeBatchLocked decodes one batch; sequence first+b draws from its own
// random stream (seed, first+b), so results do not depend on how rows are
// spread over the sampling goroutines.
func (m *Model) decodeBatchLocked(ctx context.Context, rows, first int, opts SampleOptions, samplers []*sampler) ([][]int32, error) {
	c := m.cfg
	B, Tmax, V := opts.BatchSize, opts.MaxTokens, c.VocabSize
	caches := make([]any, 2*c.Layers)
	for i := range caches {
		caches[i] = tensors.FromShape(shapes.Make(dtypes.Float32, B, c.Heads, Tmax, c.HeadDim()))
	}
	tok := make([]int32, B)
	for i := range tok {
		tok[i] = c.EOS
	}
	seqs := make([][]int32, rows)
	done := make([]bool, rows)
	rngs := make([]*rand.Rand, rows)
	for b := range rngs {
		rngs[b] = rand.New(rand.NewPCG(opts.Seed, uint64(first+b)))
	}
	temperature := float32(opts.Temperature)
	if opts.Greedy {
		temperature = 1 // the argmax of the probabilities is the argmax of the logits
	}
	left := rows
	for pos := 0; pos < Tmax && left > 0; pos++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		args := append([]any{tensors.FromFlatDataAndDimensions(append([]int32(nil), tok...), B), int32(pos), temperature}, caches...)
		outs, err := m.sampleExec.Call(args...)
		if err != nil {
			return nil, fmt.Errorf("lm: decode step: %w", err)
		}
		// The caches go back in as donated buffers: the step writes one
		// slot of each in place instead of copying all of them.
		for i := range caches {
			if caches[i], err = DonateTensorBuffer(outs[1+i], m.backend, 0); err != nil {
				return nil, fmt.Errorf("lm: decode step: %w", err)
			}
		}
		probs, err := tensors.CopyFlatData[float32](outs[0])
		if err != nil {
			return nil, err
		}
		outs[0].FinalizeAll()
		var wg sync.WaitGroup
		for w, smp := range samplers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for b := w; b < rows; b += len(samplers) {
					if done[b] {
						continue
					}
					next := smp.sample(probs[b*V:(b+1)*V], opts, rngs[b])
					if next == c.EOS {
						done[b] = true
						continue
					}
					seqs[b] = append(seqs[b], next)
					tok[b] = next
				}
			}()
		}
		wg.Wait()
		left = 0
		for _, d := range done {
			if !d {
				left++
			}
		}
	}
	for b := range seqs {
		if seqs[b] == nil {
			seqs[b] = []int32{}
		}
	}
	return seqs, nil
}

// sampler holds scratch buffers for the categorical draw.
type sampler struct {
	idx  []int
	keys []uint64
}

func newSampler(v int) *sampler {
	return &sampler{idx: make([]int, v), keys: make([]uint64, v)}
}

// sample draws one token id from probs, the step's next-token
// probabilities (softmax of logits/temperature), under opts' top-k and
// top-p. No exponential and no sort of the whole vocabulary: candidates are
// the tokens with p >= tau, tau halving then quartering from the top until
// they hold the top K or top-p's mass; only they are sorted.
func (s *sampler) sample(probs []float32, opts SampleOptions, rng *rand.Rand) int32 {
	if opts.Greedy {
		best := 0
		for i, p := range probs {
			if p > probs[best] {
				best = i
			}
		}
		return int32(best)
	}
	n := len(probs)
	total, maxP := 0.0, float32(0)
	for _, p := range probs {
		total += float64(p)
		maxP = max(maxP, p)
	}
	restrict := opts.TopK > 0 && opts.TopK < n || opts.TopP < 1
	if !restrict {
		return drawFrom(probs, nil, total, rng)
	}
	k := 0
	if opts.TopK > 0 && opts.TopK < n {
		k = opts.TopK
	}
	keys := s.keys[:0]
	for tau := maxP / 2; ; tau /= 4 {
		if tau < 1e-38 {
			tau = 0
		}
		keys = keys[:0]
		mass := 0.0
		for i, p := range probs {
			if p >= tau {
				// Descending probability, ties by id: inverted float bits above the id.
				keys = append(keys, uint64(^math.Float32bits(p))<<32|uint64(i))
				mass += float64(p)
			}
		}
		if tau == 0 || (k > 0 && len(keys) >= k) || (k == 0 && mass >= opts.TopP*total) {
			break
		}
	}
	slices.Sort(keys)
	idx := s.idx[:len(keys)]
	for i, key := range keys {
		idx[i] = int(uint32(key))
	}
	keep := len(idx)
	if k > 0 && k < keep {
		keep = k
	}
	if opts.TopP < 1 {
		// As in Hugging Face's warpers: top-p mass is relative to what top-k kept.
		base := total
		if k > 0 {
			base = 0
			for _, i := range idx[:keep] {
				base += float64(probs[i])
			}
		}
		mass := 0.0
		for j := range keep {
			mass += float64(probs[idx[j]])
			if mass >= opts.TopP*base {
				keep = j + 1
				break
			}
		}
	}
	kept := 0.0
	for _, i := range idx[:keep] {
		kept += float64(probs[i])
	}
	return drawFrom(probs, idx[:keep], kept, rng)
}

func drawFrom(probs []float32, idx []int, total float64, rng *rand.Rand) int32 {
	u := rng.Float64() * total
	acc := 0.0
	if idx == nil {
		for i, p := range probs {
			acc += float64(p)
			if u < acc {
				return int32(i)
			}
		}
		return int32(len(probs) - 1)
	}
	for _, i := range idx {
		acc += float64(probs[i])
		if u < acc {
			return int32(i)
		}
	}
	return int32(idx[len(idx)-1])
}
