package dpsgd

import (
	"errors"
	"fmt"
	"io"
	"math"
	"sort"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/train/optimizer"
	"github.com/gomlx/gomlx/support/exceptions"

	"github.com/dpinstruct/dpinstruct/models/lm"
)

// TrainerOptions configures a DP-SGD Trainer.
type TrainerOptions struct {
	// Clip is the per-example L2 clipping bound C (> 0).
	Clip float64
	// NoiseMultiplier sigma (>= 0): Gaussian noise of std sigma*C is added
	// to every coordinate of the clipped summed gradient.
	NoiseMultiplier float64
	// ExpectedBatch is q*n (> 0): the noised sum is divided by it, never by
	// the realised batch size.
	ExpectedBatch float64
	// LearningRate (default 1e-3).
	LearningRate float64
	// Trainable weights; nil means lm.TrainAdapters (use TrainSetOf for
	// another set).
	Trainable *lm.TrainSet
	// Optimizer: "adam" (default; DP-Adam, noise before the moments) or
	// "sgd" (plain, no learning-rate decay).
	Optimizer string
	// Buckets: padded batch sizes, one compiled graph each. Default: powers
	// of two around ExpectedBatch ± 4·sqrt(ExpectedBatch) (DefaultBuckets
	// with the binomial sd bounded by sqrt(E)).
	Buckets []int
	// SeqLen: positions per row (default and maximum Config.Context).
	SeqLen int
	// Method for outer-product norms (default NormAuto).
	Method NormMethod
	// Seeds, when set, supplies the seeds of the noise streams instead of
	// crypto/rand, so that two evaluation runs draw the same noise (say,
	// the same training under two accountants' noise multipliers). Noise
	// whose seed is known protects nothing: the connector never sets it,
	// and nothing trained with it may be released.
	Seeds io.Reader
}

// TrainSetOf returns a pointer to s, for TrainerOptions.Trainable.
func TrainSetOf(s lm.TrainSet) *lm.TrainSet { return &s }

// StepStats describes one step. They are computed from the private batch
// and are NOT differentially private: for monitoring only, never release.
type StepStats struct {
	Records int     // realised (Poisson) batch size
	Chunks  int     // graph calls (more than 1 when the batch exceeded the largest bucket)
	Padded  int     // rows computed, including padding
	Loss    float64 // mean per-example loss (sum of masked token losses) over the records, before the update
	// MeanNorm is the mean per-example gradient norm before clipping.
	MeanNorm float64
	// ClippedFraction: fraction of records whose norm exceeded Clip.
	ClippedFraction float64
}

// Trainer runs DP-SGD / DP-Adam steps on a model. Per step and bucket
// shape one compiled graph computes the clipped summed gradient, adds
// N(0, (sigma*C)^2) noise per coordinate, divides by ExpectedBatch and
// applies the optimizer (via UpdateGraphWithGradients). A batch larger than
// the largest bucket is computed in several calls whose clipped sums are
// added before one noise-and-update call.
//
// Noise is drawn on the host for every step from ChaCha8 streams freshly
// seeded from crypto/rand (see noise.go) and passed to the graph as inputs;
// no generator state is kept between steps, so nothing about it can reach a
// checkpoint, a log or a caller.
//
// Optimizer state (Adam moments under "/dpadam_<set>", step counters, the
// shared learning rate "/optimizers/learning_rate") does live in the Store
// and is saved by Save: it is a function of noised gradients only.
//
// A Trainer must not be used concurrently with other uses of the model.
type Trainer struct {
	m     *lm.Model
	opts  TrainerOptions
	set   lm.TrainSet
	paths []string // trainable weights, sorted
	upd   gradUpdater
	lr    *model.Variable
	dims  [][]int        // shapes of the trainable weights, following paths
	ahead chan noiseDraw // the next step's noise, drawn in the background

	fused *model.Exec // clip + noise + update, one shape per bucket
	grads *model.Exec // clipped sums only (split batches)
	apply *model.Exec // noise + update from given sums (split batches)
}

type gradUpdater interface {
	UpdateGraphWithGradients(scope *model.Scope, grads []*graph.Node, lossDType dtypes.DType)
}

// NewTrainer creates a DP trainer (after AddLoRA, when training adapters).
func NewTrainer(m *lm.Model, opts TrainerOptions) (*Trainer, error) {
	if opts.Clip <= 0 || math.IsNaN(opts.Clip) || math.IsInf(opts.Clip, 0) {
		return nil, fmt.Errorf("dpsgd: clip bound must be finite and > 0, got %g", opts.Clip)
	}
	if opts.NoiseMultiplier < 0 || math.IsNaN(opts.NoiseMultiplier) || math.IsInf(opts.NoiseMultiplier, 0) {
		return nil, fmt.Errorf("dpsgd: noise multiplier must be finite and >= 0, got %g", opts.NoiseMultiplier)
	}
	if !(opts.ExpectedBatch > 0) || math.IsInf(opts.ExpectedBatch, 0) {
		return nil, fmt.Errorf("dpsgd: expected batch size must be > 0, got %g", opts.ExpectedBatch)
	}
	if opts.LearningRate == 0 {
		opts.LearningRate = 1e-3
	}
	if opts.LearningRate < 0 {
		return nil, errors.New("dpsgd: negative learning rate")
	}
	set := lm.TrainAdapters
	if opts.Trainable != nil {
		set = *opts.Trainable
	}
	opts.Trainable = TrainSetOf(set)
	if set == lm.TrainAdapters && m.Config().LoRA.Rank == 0 {
		return nil, errors.New("dpsgd: TrainAdapters on a model without LoRA adapters (call AddLoRA)")
	}
	cfg := m.Config()
	if opts.SeqLen == 0 {
		opts.SeqLen = cfg.Context
	}
	if opts.SeqLen < 1 || opts.SeqLen > cfg.Context {
		return nil, fmt.Errorf("dpsgd: SeqLen %d outside [1, context %d]", opts.SeqLen, cfg.Context)
	}
	if len(opts.Buckets) == 0 {
		e := opts.ExpectedBatch
		opts.Buckets = bucketsFor(e, math.Sqrt(e))
	}
	if err := checkBuckets(opts.Buckets); err != nil {
		return nil, err
	}
	opts.Buckets = append([]int(nil), opts.Buckets...)
	sort.Ints(opts.Buckets)

	t := &Trainer{m: m, opts: opts, set: set}
	for _, p := range m.WeightPaths(false) {
		if Trains(set, p) {
			t.paths = append(t.paths, p)
		}
	}
	if len(t.paths) == 0 {
		return nil, fmt.Errorf("dpsgd: no trainable weights for set %s", set)
	}
	sort.Strings(t.paths)

	var opt optimizer.Interface
	switch opts.Optimizer {
	case "", "adam":
		opts.Optimizer = "adam"
		opt = optimizer.Adam().Scope("dpadam_" + set.String()).LearningRate(opts.LearningRate).Epsilon(1e-8).Done()
	case "sgd":
		opt = optimizer.StochasticGradientDescent().WithDecay(false).WithLearningRate(opts.LearningRate).Done()
	default:
		return nil, fmt.Errorf("dpsgd: unknown optimizer %q (want \"adam\" or \"sgd\")", opts.Optimizer)
	}
	t.opts.Optimizer = opts.Optimizer
	upd, ok := opt.(gradUpdater)
	if !ok {
		return nil, fmt.Errorf("dpsgd: optimizer %q does not accept precomputed gradients", opts.Optimizer)
	}
	t.upd = upd
	t.lr = optimizer.LearningRateVarWithValue(m.Store().RootScope(), dtypes.Float32, opts.LearningRate)
	for _, p := range t.paths {
		t.dims = append(t.dims, m.Store().GetVariable(p).Shape().Dimensions)
	}

	clipOpts := Options{Clip: opts.Clip, Trainable: set, Method: opts.Method}
	var err error
	// fused: tokens, targets, mask, noise (sorted paths; none when sigma
	// is 0)... -> lossSum, normSum, clipped.
	t.fused, err = model.NewExec(m.Backend(), m.Store(), func(scope *model.Scope, in []*graph.Node) []*graph.Node {
		t.markTrainable()
		r := ClippedGradients(m, in[0].Graph(), in[0], in[1], in[2], clipOpts)
		sums := make([]*graph.Node, len(t.paths))
		for i, p := range t.paths {
			sums[i] = r.Grads[p]
		}
		t.noiseAndUpdate(scope, sums, in[3:])
		return stats(r)
	})
	if err != nil {
		return nil, err
	}
	// grads: tokens, targets, mask -> sums (sorted paths)..., lossSum, normSum, clipped.
	t.grads, err = model.NewExec(m.Backend(), m.Store(), func(scope *model.Scope, in []*graph.Node) []*graph.Node {
		r := ClippedGradients(m, in[0].Graph(), in[0], in[1], in[2], clipOpts)
		out := make([]*graph.Node, 0, len(t.paths)+3)
		for _, p := range t.paths {
			out = append(out, r.Grads[p])
		}
		return append(out, stats(r)...)
	})
	if err != nil {
		return nil, err
	}
	// apply: sums (sorted paths)..., noise (sorted paths)... -> nothing
	// but the updated variables.
	t.apply, err = model.NewExec(m.Backend(), m.Store(), func(scope *model.Scope, in []*graph.Node) []*graph.Node {
		t.markTrainable()
		n := len(t.paths)
		t.noiseAndUpdate(scope, in[:n], in[n:])
		return nil
	})
	if err != nil {
		return nil, err
	}
	return t, nil
}

func stats(r *Result) []*graph.Node {
	clipped := graph.ReduceAllSum(graph.ConvertDType(graph.LessThan(r.Factors, graph.OnesLike(r.Factors)), dtypes.Float32))
	return []*graph.Node{graph.ReduceAllSum(r.Loss), graph.ReduceAllSum(r.Norms), clipped}
}

// markTrainable sets the Trainable flag of every store variable: the
// weights of the set, nothing else (as lm.Trainer does).
func (t *Trainer) markTrainable() {
	for v := range t.m.Store().IterVariables() {
		v.Trainable = lm.IsWeight(v.Path()) && Trains(t.set, v.Path())
	}
}

// noiseAndUpdate adds the N(0, (sigma*C)^2) noise tensors (drawn on the
// host by Step, following t.paths; none when sigma*C is 0) to the clipped
// sums (following t.paths), divides by ExpectedBatch, and applies the
// optimizer with the gradients in the order it visits the trainable
// variables.
func (t *Trainer) noiseAndUpdate(scope *model.Scope, sums, noise []*graph.Node) {
	g := sums[0].Graph()
	if want := t.noiseInputs(); len(noise) != want {
		exceptions.Panicf("dpsgd: %d noise inputs, want %d", len(noise), want)
	}
	byPath := make(map[string]*graph.Node, len(t.paths))
	for i, p := range t.paths {
		s := sums[i]
		if len(noise) > 0 {
			s = graph.Add(s, noise[i])
		}
		byPath[p] = graph.DivScalar(s, t.opts.ExpectedBatch)
		t.m.Store().GetVariable(p).NodeValue(g) // mark in use by g
	}
	var ordered []*graph.Node
	for v := range scope.IterVariables() {
		if !v.Trainable || !v.InUseByGraph(g) {
			continue
		}
		gr, ok := byPath[v.Path()]
		if !ok {
			exceptions.Panicf("dpsgd: trainable variable %q has no clipped gradient", v.Path())
		}
		ordered = append(ordered, gr)
	}
	if len(ordered) != len(t.paths) {
		exceptions.Panicf("dpsgd: optimizer visits %d trainable variables, want %d", len(ordered), len(t.paths))
	}
	t.upd.UpdateGraphWithGradients(scope, ordered, dtypes.Float32)
}

// noiseStd is the noise's standard deviation per coordinate, sigma*C.
func (t *Trainer) noiseStd() float64 { return t.opts.NoiseMultiplier * t.opts.Clip }

// noiseInputs is how many noise tensors a step passes to the graph.
func (t *Trainer) noiseInputs() int {
	if t.noiseStd() > 0 {
		return len(t.paths)
	}
	return 0
}

// drawNoise returns a step's noise tensors as graph arguments (none when
// sigma*C is 0). Each draw is used by exactly one step. The noise does not
// depend on the data, so the next step's is drawn in the background while
// this step's graph runs (a step leaves one core idle part of the time;
// drawing in line cost ~3% of a DP step of the shipped model). A draw left
// over when training stops is dropped with the Trainer.
func (t *Trainer) drawNoise() ([]any, error) {
	if t.noiseInputs() == 0 {
		return nil, nil
	}
	if t.ahead == nil {
		t.ahead = make(chan noiseDraw, 1)
		go t.drawAhead()
	}
	d := <-t.ahead
	go t.drawAhead()
	if d.err != nil {
		return nil, d.err
	}
	args := make([]any, len(d.z))
	for i := range d.z {
		args[i] = d.z[i]
	}
	return args, nil
}

// noiseDraw is one step's noise, or why it could not be drawn.
type noiseDraw struct {
	z   []*tensors.Tensor
	err error
}

// drawAhead draws one step's noise into t.ahead (buffered: it never blocks).
func (t *Trainer) drawAhead() {
	z, err := gaussianTensors(t.dims, t.noiseStd(), t.opts.Seeds)
	t.ahead <- noiseDraw{z, err}
}

// Options returns the trainer's effective options.
func (t *Trainer) Options() TrainerOptions { return t.opts }

// TrainablePaths returns the store paths of the trained weights (sorted).
func (t *Trainer) TrainablePaths() []string { return append([]string(nil), t.paths...) }

// Step takes one DP step on a (Poisson-sampled) batch of sequences, laid
// out as lm.PackBatch does; the batch may be empty (the step is then pure
// noise, as the accountant assumes). Rows are padded to a bucket size;
// batches above the largest bucket are split, never truncated.
func (t *Trainer) Step(records [][]int32) (StepStats, error) {
	st := StepStats{Records: len(records)}
	chunks, err := PlanChunks(len(records), t.opts.Buckets)
	if err != nil {
		return st, err
	}
	st.Chunks = len(chunks)
	// The learning-rate variable is shared by all trainers of the model.
	if err := t.lr.SetValue(tensors.FromScalar(float32(t.opts.LearningRate))); err != nil {
		return st, err
	}
	cfg := t.m.Config()
	var lossSum, normSum, clipped float64
	addStats := func(outs []*tensors.Tensor) {
		lossSum += float64(tensors.ToScalar[float32](outs[0]))
		normSum += float64(tensors.ToScalar[float32](outs[1]))
		clipped += float64(tensors.ToScalar[float32](outs[2]))
	}
	if len(chunks) == 1 {
		c := chunks[0]
		in, tg, mk, err := lm.PackBatch(records, c.Padded, t.opts.SeqLen, cfg)
		if err != nil {
			return st, err
		}
		st.Padded = c.Padded
		noise, err := t.drawNoise()
		if err != nil {
			return st, err
		}
		outs, err := t.fused.Call(append([]any{in, tg, mk}, noise...)...)
		if err != nil {
			return st, fmt.Errorf("dpsgd: step: %w", err)
		}
		addStats(outs)
	} else {
		n := len(t.paths)
		sums := make([][]float32, n)
		dims := make([][]int, n)
		for _, c := range chunks {
			in, tg, mk, err := lm.PackBatch(records[c.Start:c.Start+c.Rows], c.Padded, t.opts.SeqLen, cfg)
			if err != nil {
				return st, err
			}
			st.Padded += c.Padded
			outs, err := t.grads.Call(in, tg, mk)
			if err != nil {
				return st, fmt.Errorf("dpsgd: step: %w", err)
			}
			for i := range n {
				d, err := tensors.CopyFlatData[float32](outs[i])
				if err != nil {
					return st, err
				}
				if sums[i] == nil {
					sums[i], dims[i] = d, outs[i].Shape().Dimensions
					continue
				}
				for j, v := range d {
					sums[i][j] += v
				}
			}
			addStats(outs[n:])
		}
		args := make([]any, 0, 2*n)
		for i := range n {
			args = append(args, tensors.FromFlatDataAndDimensions(sums[i], dims[i]...))
		}
		noise, err := t.drawNoise()
		if err != nil {
			return st, err
		}
		if _, err := t.apply.Call(append(args, noise...)...); err != nil {
			return st, fmt.Errorf("dpsgd: step: %w", err)
		}
	}
	if k := float64(len(records)); k > 0 {
		st.Loss, st.MeanNorm, st.ClippedFraction = lossSum/k, normSum/k, clipped/k
	}
	return st, nil
}
