package lm

import (
	"errors"
	"fmt"
	"strings"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
	"github.com/gomlx/gomlx/ml/train/optimizer"
)

// TrainSet selects which weights a Trainer updates.
type TrainSet int

const (
	// TrainAll updates base weights and adapters.
	TrainAll TrainSet = iota
	// TrainBase updates base weights only (pre-training; adapters, if any,
	// stay as they are).
	TrainBase
	// TrainAdapters updates the LoRA adapters only (fine-tuning).
	TrainAdapters
)

func (s TrainSet) String() string {
	switch s {
	case TrainAll:
		return "all"
	case TrainBase:
		return "base"
	case TrainAdapters:
		return "adapters"
	}
	return fmt.Sprintf("TrainSet(%d)", int(s))
}

// includes reports whether the variable path is trained under s.
func (s TrainSet) includes(path string) bool {
	switch s {
	case TrainBase:
		return strings.HasPrefix(path, BaseScope+"/")
	case TrainAdapters:
		return strings.HasPrefix(path, LoRAScope+"/")
	default:
		return IsWeight(path)
	}
}

// TrainerOptions configures a Trainer.
type TrainerOptions struct {
	// LearningRate for Adam (default 1e-3).
	LearningRate float64
	// Trainable: which weights are updated (default TrainAll).
	Trainable TrainSet
	// BatchSize: rows of the compiled batch. Step pads shorter batches with
	// empty rows (masked out) so one executable serves every step; 0 means
	// "the size of the first batch".
	BatchSize int
	// SeqLen: positions per row (default and maximum: Config.Context).
	SeqLen int
	// WeightDecay (AdamW-style, default 0).
	WeightDecay float64
}

// Trainer runs Adam steps on a model. The training graph is compiled once,
// on the first Step, for the shape [BatchSize, SeqLen] and reused.
// Optimizer state (Adam moments, step counter) lives in the model's Store
// under "/adam_<set>" (the learning rate under "/optimizers"), so Save/Load carry it and a Trainer created after
// Load resumes where the saved one stopped.
type Trainer struct {
	m    *Model
	opts TrainerOptions
	exec *model.Exec
	lr   *model.Variable
}

// NewTrainer creates a trainer. Create it after AddLoRA (the graph includes
// the adapters present when it is first compiled).
func (m *Model) NewTrainer(opts TrainerOptions) (*Trainer, error) {
	if opts.LearningRate == 0 {
		opts.LearningRate = 1e-3
	}
	if opts.LearningRate < 0 {
		return nil, errors.New("lm: negative learning rate")
	}
	if opts.SeqLen == 0 {
		opts.SeqLen = m.cfg.Context
	}
	if opts.SeqLen < 1 || opts.SeqLen > m.cfg.Context {
		return nil, fmt.Errorf("lm: SeqLen %d outside [1, context %d]", opts.SeqLen, m.cfg.Context)
	}
	if opts.Trainable == TrainAdapters && m.cfg.LoRA.Rank == 0 {
		return nil, errors.New("lm: TrainAdapters on a model without LoRA adapters (call AddLoRA)")
	}
	t := &Trainer{m: m, opts: opts}
	adamScope := "adam_" + opts.Trainable.String()
	adam := optimizer.Adam().Scope(adamScope).LearningRate(opts.LearningRate).Epsilon(1e-8).
		WeightDecay(opts.WeightDecay).Done()
	t.lr = optimizer.LearningRateVarWithValue(m.store.RootScope(), dtypes.Float32, opts.LearningRate)
	set := opts.Trainable
	fn := func(scope *model.Scope, tokens, targets, mask *graph.Node) *graph.Node {
		for v := range m.store.IterVariables() {
			if IsWeight(v.Path()) {
				v.Trainable = set.includes(v.Path())
			} else {
				v.Trainable = false
			}
		}
		g := tokens.Graph()
		logits := m.Logits(g, tokens, nil)
		loss := MeanTokenLoss(logits, targets, mask)
		adam.UpdateGraph(scope, g, loss)
		return loss
	}
	exec, err := model.NewExec(m.backend, m.store, fn)
	if err != nil {
		return nil, err
	}
	t.exec = exec
	return t, nil
}

// Options returns the trainer's effective options.
func (t *Trainer) Options() TrainerOptions { return t.opts }

// Step runs one Adam step on a batch of sequences and returns the mean
// next-token loss over non-pad positions (before the update). Each sequence
// is the text's token ids followed by EOS (EOS is appended if missing); see
// PackBatch for the exact layout. An empty sequence still trains
// p(EOS | BOS).
func (t *Trainer) Step(seqs [][]int32) (float32, error) {
	if len(seqs) == 0 {
		return 0, errors.New("lm: empty batch")
	}
	t.m.mu.Lock()
	defer t.m.mu.Unlock()
	if t.m.activeLR != t {
		// The learning-rate variable ("/optimizers/learning_rate") is shared by
		// all trainers of the model and keeps its first value: set ours.
		if err := t.lr.SetValue(tensors.FromScalar(float32(t.opts.LearningRate))); err != nil {
			return 0, err
		}
		t.m.activeLR = t
	}
	if t.opts.BatchSize == 0 {
		t.opts.BatchSize = len(seqs)
	}
	if len(seqs) > t.opts.BatchSize {
		return 0, fmt.Errorf("lm: batch of %d sequences exceeds the trainer's BatchSize %d", len(seqs), t.opts.BatchSize)
	}
	in, tg, mk, err := PackBatch(seqs, t.opts.BatchSize, t.opts.SeqLen, t.m.cfg)
	if err != nil {
		return 0, err
	}
	outs, err := t.exec.Call(in, tg, mk)
	if err != nil {
		return 0, fmt.Errorf("lm: train step: %w", err)
	}
	return tensors.ToScalar[float32](outs[0]), nil
}

// Steps returns the number of Adam steps taken by this trainer's optimizer
// state (including steps restored from a checkpoint).
func (t *Trainer) Steps() int64 {
	t.m.mu.Lock()
	defer t.m.mu.Unlock()
	v := t.m.store.GetVariable("/adam_" + t.opts.Trainable.String() + "/step")
	if v == nil {
		return 0
	}
	val, err := v.Value()
	if err != nil {
		return 0
	}
	switch x := val.Value().(type) {
	case float32:
		return int64(x)
	case float64:
		return int64(x)
	case int64:
		return x
	}
	return 0
}

// PackBatch lays out sequences as fixed-shape model inputs:
//
//	inputs[b]  = BOS, s_0, s_1, ..., s_{n-1}      (BOS = cfg.EOS)
//	targets[b] = s_0, s_1, ..., s_{n-1}, EOS
//	mask[b,t]  = 1 for the len(s)+1 real targets, 0 after (padding)
//
// where s is the sequence without a trailing EOS. Rows are truncated to T
// positions (the final EOS target is then lost) and padded with EOS ids;
// rows beyond len(seqs) up to B are all padding (mask 0). Token ids must be
// in [0, VocabSize).
func PackBatch(seqs [][]int32, B, T int, cfg Config) (inputs, targets *tensors.Tensor, mask *tensors.Tensor, err error) {
	if len(seqs) > B {
		return nil, nil, nil, fmt.Errorf("lm: %d sequences for %d rows", len(seqs), B)
	}
	in := make([]int32, B*T)
	tg := make([]int32, B*T)
	mk := make([]float32, B*T)
	for i := range in {
		in[i], tg[i] = cfg.EOS, cfg.EOS
	}
	for b, s := range seqs {
		if n := len(s); n > 0 && s[n-1] == cfg.EOS {
			s = s[:n-1]
		}
		for _, id := range s {
			if id < 0 || int(id) >= cfg.VocabSize {
				return nil, nil, nil, fmt.Errorf("lm: token id %d outside vocab [0,%d)", id, cfg.VocabSize)
			}
		}
		row := b * T
		for t := 0; t < T && t <= len(s); t++ {
			if t > 0 {
				in[row+t] = s[t-1]
			}
			if t < len(s) {
				tg[row+t] = s[t]
			} else {
				tg[row+t] = cfg.EOS
			}
			mk[row+t] = 1
		}
	}
	return tensors.FromFlatDataAndDimensions(in, B, T),
		tensors.FromFlatDataAndDimensions(tg, B, T),
		tensors.FromFlatDataAndDimensions(mk, B, T), nil
}

// LogitsFor runs the forward pass on a batch of token rows (all the same
// length, <= Context, no BOS added) and returns logits [B][T][VocabSize].
// It compiles once per input shape. Mainly for tests and evaluation.
func (m *Model) LogitsFor(tokens [][]int32) ([][][]float32, error) {
	if len(tokens) == 0 || len(tokens[0]) == 0 {
		return nil, errors.New("lm: empty input")
	}
	B, T := len(tokens), len(tokens[0])
	flat := make([]int32, 0, B*T)
	for _, r := range tokens {
		if len(r) != T {
			return nil, errors.New("lm: LogitsFor rows differ in length")
		}
		flat = append(flat, r...)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.logitsExec == nil {
		e, err := model.NewExec(m.backend, m.store, func(scope *model.Scope, toks *graph.Node) *graph.Node {
			return m.Logits(toks.Graph(), toks, nil)
		})
		if err != nil {
			return nil, err
		}
		m.logitsExec = e
	}
	outs, err := m.logitsExec.Call(tensors.FromFlatDataAndDimensions(flat, B, T))
	if err != nil {
		return nil, err
	}
	data, err := tensors.CopyFlatData[float32](outs[0])
	if err != nil {
		return nil, err
	}
	V := m.cfg.VocabSize
	res := make([][][]float32, B)
	for b := range res {
		res[b] = make([][]float32, T)
		for t := range res[b] {
			off := (b*T + t) * V
			res[b][t] = data[off : off+V : off+V]
		}
	}
	return res, nil
}
