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

// The sampling defaults for the shipped base generator, chosen by MAUVE
// against public held-out prompts (docs/MODELS.md, "Sampling defaults"):
// the trade of fluency (lower temperature, smaller nucleus) against
// diversity. Generate, the DP window and `dpinstruct generate` all use them.
const (
	DefaultTemperature = 0.9
	DefaultTopP        = 0.95
)

// SampleOptions configures Generate. Zero values mean the defaults.
type SampleOptions struct {
	// Temperature divides the logits (default DefaultTemperature).
	Temperature float64
	// TopP: nucleus sampling mass (default DefaultTopP); 1 disables it.
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
	// Progress, when set, is called after each decoding step that
	// finished sequences, with how many it finished.
	Progress func(finished int)
	// BatchSize: sequences decoded together (default 64). The last batch is
	// padded to this size, so one compiled executable serves every batch.
	BatchSize int
}

func (o SampleOptions) withDefaults(cfg Config) (SampleOptions, error) {
	if o.Temperature == 0 {
		o.Temperature = DefaultTemperature
	}
	if o.TopP == 0 {
		o.TopP = DefaultTopP
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
// returned sequences exclude BOS and the final EOS.
//
// Decoding keeps BatchSize rows busy (continuous batching): a row whose
// sequence ended takes the next sequence at the following step, so a batch
// never waits for its longest sequence. Each row has its own position in
// a KV cache of MaxTokens slots, compiled once per (BatchSize, MaxTokens)
// and reused by every call; the step returns next-token probabilities
// (softmax of logits/temperature, in the graph) and the draw (top-k,
// top-p) runs in Go. Sequence i draws from its own random stream (Seed, i),
// so the output depends on the seed only, not on which row or step a
// sequence ran in.
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
	if n == 0 {
		return [][]int32{}, nil
	}
	return m.decodeLocked(ctx, n, opts)
}

// DecodeStep is the KV-cache step, exported for tests and custom decoders:
// token int32 [B] at positions pos (int32 [B], one per row, or a scalar for
// all rows), caches [2*Layers] of float32 [B*Heads, Tmax, HeadDim] (K then
// V per layer; row b's head h is b*Heads+h). It returns logits [B, VocabSize] and the updated caches,
// with each row's key and value stored in its slot pos[b]. Row b attends
// to its slots 0..pos[b] only, so whatever a row's later slots hold (a
// previous sequence's values, under continuous batching) is never read.
func (m *Model) DecodeStep(g *Graph, token, pos *Node, caches []*Node) (*Node, []*Node) {
	c := m.cfg
	f := &fwd{m: m, g: g}
	B := token.Shape().Dimensions[0]
	d, H, Dh := c.Width, c.Heads, c.HeadDim()
	Tmax := caches[0].Shape().Dimensions[1]
	pos = ConvertDType(pos, dtypes.Int32)
	if pos.Rank() == 0 {
		pos = BroadcastToDims(pos, B)
	}

	tokE := Gather(f.v(pathTokEmb), InsertAxes(token, -1)) // [B,d]
	posE := Gather(f.v(pathPosEmb), InsertAxes(pos, -1))   // [B,d]
	x := Add(tokE, posE)

	// Caches are [B*H, Tmax, Dh], (row, head) pairs first, so the
	// attention products are plain batched matmuls over them (a [B, H, ...]
	// layout would be reshaped, which copies, on every step).
	BH := B * H
	rowPos := Reshape(BroadcastToDims(InsertAxes(pos, -1), B, H), BH) // pos of each (row, head)
	// Row b attends to its slots 0..pos[b].
	slots := Iota(g, shapes.Make(dtypes.Int32, BH, 1, Tmax), 2)
	valid := LessOrEqual(slots, BroadcastToDims(Reshape(rowPos, BH, 1, 1), BH, 1, Tmax))
	maskBias := Where(valid, BroadcastToDims(ScalarZero(g, dtypes.Float32), BH, 1, Tmax), BroadcastToDims(Scalar(g, dtypes.Float32, -1e9), BH, 1, Tmax))
	// Scatter coordinates (b*H+h, pos[b]) into the caches.
	slot := Stack([]*Node{Iota(g, shapes.Make(dtypes.Int32, BH), 0), rowPos}, -1) // [BH, 2]
	scale := 1 / math.Sqrt(float64(Dh))

	// write stores kv in slot pos[b] of each row: the Go backend has no
	// DynamicUpdateSlice, so it adds kv minus what the slot holds (a row
	// reused by continuous batching holds its previous sequence's values
	// there; a fresh cache holds zeros, and then the write is exact).
	write := func(cache, kv *Node) *Node {
		return ScatterSum(cache, slot, Sub(kv, Gather(cache, slot)), true, true)
	}
	newCaches := make([]*Node, len(caches))
	for i := range c.Layers {
		lp := LayerPath(i)
		h := f.layerNorm("", lp+"/ln1", x)
		q := Reshape(f.projection(i, "q", h), BH, 1, Dh)
		k := Reshape(f.projection(i, "k", h), BH, Dh)
		v := Reshape(f.projection(i, "v", h), BH, Dh)
		K := write(caches[2*i], k)
		V := write(caches[2*i+1], v)
		newCaches[2*i], newCaches[2*i+1] = K, V
		scores := Add(MulScalar(Einsum("nqd,ntd->nqt", q, K), scale), maskBias)
		probs := Softmax(scores, -1)
		ctxv := Einsum("nqt,ntd->nqd", probs, V)
		x = Add(x, f.projection(i, "o", Reshape(ctxv, B, d)))
		h2 := f.layerNorm("", lp+"/ln2", x)
		x = Add(x, f.mlp(i, h2))
	}
	x = f.layerNorm("", pathLNf, x)
	return f.head(x), newCaches
}

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

// decodeRow is one row of the decoding batch: the sequence it is
// generating (-1: idle), its position and its random stream.
type decodeRow struct {
	seq int
	pos int32
	rng *rand.Rand
}

// decodeLocked generates n sequences with continuous batching.
func (m *Model) decodeLocked(ctx context.Context, n int, opts SampleOptions) ([][]int32, error) {
	c := m.cfg
	B, Tmax, V := opts.BatchSize, opts.MaxTokens, c.VocabSize
	caches := make([]any, 2*c.Layers)
	for i := range caches {
		caches[i] = tensors.FromShape(shapes.Make(dtypes.Float32, B*c.Heads, Tmax, c.HeadDim()))
	}
	out := make([][]int32, n)
	rows := make([]decodeRow, B)
	tok, pos := make([]int32, B), make([]int32, B)
	next, active := 0, 0
	start := func(b int) {
		rows[b], tok[b], pos[b] = decodeRow{seq: -1}, c.EOS, 0
		if next < n {
			rows[b] = decodeRow{seq: next, rng: rand.New(rand.NewPCG(opts.Seed, uint64(next)))}
			out[next] = []int32{}
			next++
			active++
		}
	}
	for b := range rows {
		start(b)
	}
	temperature := float32(opts.Temperature)
	if opts.Greedy {
		temperature = 1 // the argmax of the probabilities is the argmax of the logits
	}
	workers := max(1, min(runtime.GOMAXPROCS(0), B))
	samplers := make([]*sampler, workers)
	for i := range samplers {
		samplers[i] = newSampler(V)
	}
	drawn := make([]int32, B)
	for active > 0 {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		args := append([]any{tensors.FromFlatDataAndDimensions(slices.Clone(tok), B),
			tensors.FromFlatDataAndDimensions(slices.Clone(pos), B), temperature}, caches...)
		outs, err := m.sampleExec.Call(args...)
		if err != nil {
			return nil, fmt.Errorf("lm: decode step: %w", err)
		}
		// The caches go back in as donated buffers: the step writes one
		// slot of each row in place instead of copying them.
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
				for b := w; b < B; b += len(samplers) {
					if rows[b].seq >= 0 {
						drawn[b] = smp.sample(probs[b*V:(b+1)*V], opts, rows[b].rng)
					}
				}
			}()
		}
		wg.Wait()
		finished := 0
		for b := range rows {
			r := &rows[b]
			if r.seq < 0 {
				continue
			}
			if drawn[b] != c.EOS {
				out[r.seq] = append(out[r.seq], drawn[b])
			}
			if drawn[b] == c.EOS || int(r.pos)+1 >= Tmax {
				active--
				finished++
				start(b)
				continue
			}
			r.pos++
			tok[b], pos[b] = drawn[b], r.pos
		}
		if finished > 0 && opts.Progress != nil {
			opts.Progress(finished)
		}
	}
	return out, nil
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
// top-p. No exponential and no sort: one pass buckets the vocabulary by
// binary exponent below the top probability (mass and count per bucket),
// which gives the fewest leading buckets that hold the top K or top-p's
// mass; a second pass collects those candidates, and a selection
// (selectSmallest, selectTopMass) finds exactly the top-K / nucleus
// tokens among them, in expected linear time. With a 16k vocabulary and a
// flat distribution the nucleus holds thousands of tokens, where sorting
// them per token per row was a fifth of sampling's time.
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
	idx, kept := s.nucleus(probs, opts, total, maxP)
	return drawFrom(probs, idx, kept, rng)
}

// nucleus returns the ids that top-k and top-p keep (in no particular
// order) and their probability mass; total and maxP are probs' sum and
// maximum.
func (s *sampler) nucleus(probs []float32, opts SampleOptions, total float64, maxP float32) ([]int, float64) {
	n := len(probs)
	k := 0
	if opts.TopK > 0 && opts.TopK < n {
		k = opts.TopK
	}
	// Bucket b holds the tokens whose exponent is b below the top one's;
	// every token of bucket b is more probable than every token of b+1, so
	// a run of leading buckets is a superset of the top tokens it covers.
	var mass [expBuckets]float64
	var count [expBuckets]int
	top := exponent(maxP)
	for _, p := range probs {
		b := min(top-exponent(p), expBuckets-1)
		mass[b] += float64(p)
		count[b]++
	}
	last, cumMass, cumCount := expBuckets-1, 0.0, 0
	for b := range expBuckets {
		cumMass += mass[b]
		cumCount += count[b]
		if (k > 0 && cumCount >= k) || (k == 0 && cumMass >= opts.TopP*total) {
			last = b
			break
		}
	}
	keys := s.keys[:0]
	for i, p := range probs {
		if min(top-exponent(p), expBuckets-1) <= last {
			// Descending probability, ties by id: inverted float bits above the id.
			keys = append(keys, uint64(^math.Float32bits(p))<<32|uint64(i))
		}
	}
	keep := len(keys)
	if k > 0 && k < keep {
		selectSmallest(keys, k)
		keep = k
	}
	if opts.TopP < 1 {
		// As in Hugging Face's warpers: top-p mass is relative to what top-k kept.
		base := total
		if k > 0 {
			base = 0
			for _, key := range keys[:keep] {
				base += float64(probs[uint32(key)])
			}
		}
		keep = selectTopMass(keys[:keep], probs, opts.TopP*base)
	}
	idx := s.idx[:keep]
	kept := 0.0
	for i, key := range keys[:keep] {
		idx[i] = int(uint32(key))
		kept += float64(probs[idx[i]])
	}
	return idx, kept
}

// expBuckets bounds the exponent buckets: probabilities more than 2^-62
// below the top one share the last bucket.
const expBuckets = 64

// exponent is p's biased binary exponent (0 for zero and subnormals).
func exponent(p float32) int { return int(math.Float32bits(p) >> 23 & 0xff) }

// selectSmallest reorders keys so that keys[:k] are its k smallest, in no
// particular order (Hoare's quickselect; keys are distinct).
func selectSmallest(keys []uint64, k int) {
	lo, hi := 0, len(keys)
	for hi-lo > 1 {
		p := partitionKeys(keys, lo, hi)
		switch {
		case p == k || p+1 == k:
			return
		case p > k:
			hi = p
		default:
			lo = p + 1
		}
	}
}

// selectTopMass reorders keys (distinct; a smaller key is a more probable
// token) and returns m so that keys[:m] are the m smallest keys, for the
// least m whose probability mass reaches target: the nucleus that sorting
// and scanning would give, without the sort. If the whole set falls short
// of target (rounding), it returns len(keys).
func selectTopMass(keys []uint64, probs []float32, target float64) int {
	lo, hi, acc := 0, len(keys), 0.0 // keys[:lo] are in, with mass acc
	for hi-lo > 16 {
		p := partitionKeys(keys, lo, hi)
		below := 0.0
		for _, key := range keys[lo:p] {
			below += float64(probs[uint32(key)])
		}
		switch {
		case acc+below >= target:
			hi = p
		case acc+below+float64(probs[uint32(keys[p])]) >= target:
			return p + 1
		default:
			acc += below + float64(probs[uint32(keys[p])])
			lo = p + 1
		}
	}
	slices.Sort(keys[lo:hi])
	for j := lo; j < hi; j++ {
		acc += float64(probs[uint32(keys[j])])
		if acc >= target {
			return j + 1
		}
	}
	return hi
}

// partitionKeys partitions keys[lo:hi] around a median-of-three pivot and
// returns its final index p: keys[lo:p] < keys[p] < keys[p+1:hi].
func partitionKeys(keys []uint64, lo, hi int) int {
	mid := lo + (hi-lo)/2
	a, b, c := keys[lo], keys[mid], keys[hi-1]
	pi := mid
	switch {
	case (a <= b) == (b <= c):
		pi = mid
	case (b <= a) == (a <= c):
		pi = lo
	default:
		pi = hi - 1
	}
	keys[pi], keys[hi-1] = keys[hi-1], keys[pi]
	pivot, p := keys[hi-1], lo
	for i := lo; i < hi-1; i++ {
		if keys[i] < pivot {
			keys[i], keys[p] = keys[p], keys[i]
			p++
		}
	}
	keys[p], keys[hi-1] = keys[hi-1], keys[p]
	return p
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
