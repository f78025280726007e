package lm

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"

	"github.com/gomlx/compute"
	"github.com/gomlx/compute/gobackend"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
)

// Variable scopes. Everything under BaseScope is the pre-trained model,
// everything under LoRAScope the adapters; other variables in the Store
// (Adam moments, step counters, learning rates) are optimizer state.
const (
	BaseScope = "/base"
	LoRAScope = "/lora"
)

// Variable paths (relative to BaseScope / LoRAScope). Layer i lives in
// "layerNN" (two digits).
const (
	pathTokEmb = BaseScope + "/tok_emb/embeddings" // [VocabSize, Width]
	pathPosEmb = BaseScope + "/pos_emb/embeddings" // [Context, Width]
	pathHead   = BaseScope + "/head/weights"       // [Width, VocabSize], only when untied
	pathLNf    = BaseScope + "/ln_f"               // gain, bias [Width]
)

// LayerPath returns the scope of transformer block i, e.g. "/base/layer03".
func LayerPath(i int) string { return fmt.Sprintf("%s/layer%02d", BaseScope, i) }

// LoRAPath returns the scope of the adapter on projection p ("q", "k", "v",
// "o") of block i, e.g. "/lora/layer03/q"; it holds variables "A" [Width,
// Rank] and "B" [Rank, Width].
func LoRAPath(i int, p string) string { return fmt.Sprintf("%s/layer%02d/%s", LoRAScope, i, p) }

// Model is a decoder-only transformer whose weights live in a GoMLX
// model.Store. It is safe for use by one goroutine at a time (Generate,
// Trainer.Step and Save/Logits serialise on an internal mutex).
type Model struct {
	cfg     Config
	backend compute.Backend
	store   *model.Store

	mu         sync.Mutex
	logitsExec *model.Exec
	decodeExec *model.Exec
	sampleExec *model.Exec
	embedExec  *model.Exec
	llExec     *model.Exec
	activeLR   *Trainer // trainer whose learning rate is currently in the store
}

// Option configures New and Load.
type Option func(*options)

type options struct {
	backend compute.Backend
}

// WithBackend selects the compute backend (default: see DefaultBackend).
func WithBackend(b compute.Backend) Option { return func(o *options) { o.backend = b } }

var (
	defaultBackendOnce sync.Once
	defaultBackend     compute.Backend
	defaultBackendErr  error
)

// DefaultBackendConfig is the configuration of the shared pure-Go backend:
// "ops_sequential" runs the graph's ops one at a time (each matmul still
// uses every core). The default parallel mode deadlocked on the DP-SGD
// graph (docs/verified.md) and is only ~17% faster.
const DefaultBackendConfig = "ops_parallel"

// DefaultBackend returns the process-wide pure-Go backend
// (gobackend.New(DefaultBackendConfig)), created on first use.
func DefaultBackend() (compute.Backend, error) {
	defaultBackendOnce.Do(func() {
		defaultBackend, defaultBackendErr = gobackend.New(DefaultBackendConfig)
	})
	return defaultBackend, defaultBackendErr
}

func newModelShell(cfg Config, opts []Option) (*Model, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var o options
	for _, f := range opts {
		f(&o)
	}
	if o.backend == nil {
		b, err := DefaultBackend()
		if err != nil {
			return nil, fmt.Errorf("lm: backend: %w", err)
		}
		o.backend = b
	}
	return &Model{cfg: cfg, backend: o.backend, store: model.NewStore()}, nil
}

// New creates a model with freshly initialised weights, deterministic for a
// given seed: GPT-2 style N(0, 0.02) for embeddings and projections,
// N(0, 0.02/sqrt(2*Layers)) for the residual output projections (attention
// "o" and MLP "down"), zero biases, LayerNorm gain 1. If cfg.LoRA.Rank > 0 the
// adapters are created too (see AddLoRA).
func New(cfg Config, seed uint64, opts ...Option) (*Model, error) {
	m, err := newModelShell(cfg, opts)
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(seed, 0x6c6d2d696e6974))
	c := m.cfg
	d, f := c.Width, c.MLPRatio*c.Width
	std := 0.02
	resid := 0.02 / math.Sqrt(2*float64(c.Layers))
	m.mustCreate(pathTokEmb, normal(rng, std, c.VocabSize, d))
	m.mustCreate(pathPosEmb, normal(rng, std, c.Context, d))
	for i := range c.Layers {
		lp := LayerPath(i)
		m.createLN(lp + "/ln1")
		for _, p := range []string{"q", "k", "v", "o"} {
			s := std
			if p == "o" {
				s = resid
			}
			m.mustCreate(lp+"/attn/"+p+"/weights", normal(rng, s, d, d))
			m.mustCreate(lp+"/attn/"+p+"/biases", filled(0, d))
		}
		m.createLN(lp + "/ln2")
		m.mustCreate(lp+"/mlp/up/weights", normal(rng, std, d, f))
		m.mustCreate(lp+"/mlp/up/biases", filled(0, f))
		m.mustCreate(lp+"/mlp/down/weights", normal(rng, resid, f, d))
		m.mustCreate(lp+"/mlp/down/biases", filled(0, d))
	}
	m.createLN(pathLNf)
	if !c.TiedEmbeddings {
		m.mustCreate(pathHead, normal(rng, std, d, c.VocabSize))
	}
	if c.LoRA.Rank > 0 {
		m.createLoRA(rng)
	}
	return m, nil
}

// AddLoRA adds adapters with the given configuration to a model that has
// none (typically a pre-trained base before DP fine-tuning). A is drawn
// uniformly from ±1/sqrt(Width) (PEFT's kaiming-uniform bound), B is zero, so
// the adapted model starts equal to the base. Compiled executables are
// dropped (the graph changes).
func (m *Model) AddLoRA(l LoRAConfig, seed uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cfg.LoRA.Rank > 0 {
		return fmt.Errorf("lm: model already has LoRA adapters (rank %d)", m.cfg.LoRA.Rank)
	}
	c := m.cfg
	c.LoRA = l
	c = c.withDefaults()
	if err := c.Validate(); err != nil {
		return err
	}
	if c.LoRA.Rank == 0 {
		return fmt.Errorf("lm: AddLoRA with rank 0")
	}
	m.cfg = c
	m.createLoRA(rand.New(rand.NewPCG(seed, 0x6c6f7261)))
	m.resetExecsLocked()
	return nil
}

func (m *Model) createLoRA(rng *rand.Rand) {
	m.initLoRA(rng, m.mustCreate)
}

// initLoRA hands set every adapter's initial value: A uniform in
// ±1/sqrt(Width), B zero.
func (m *Model) initLoRA(rng *rand.Rand, set func(path string, t *tensors.Tensor)) {
	c := m.cfg
	bound := 1 / math.Sqrt(float64(c.Width))
	for i := range c.Layers {
		for _, p := range []string{"q", "k", "v", "o"} {
			if !c.LoRA.Has(p) {
				continue
			}
			a := make([]float32, c.Width*c.LoRA.Rank)
			for j := range a {
				a[j] = float32((2*rng.Float64() - 1) * bound)
			}
			set(LoRAPath(i, p)+"/A", tensors.FromFlatDataAndDimensions(a, c.Width, c.LoRA.Rank))
			set(LoRAPath(i, p)+"/B", filled(0, c.LoRA.Rank, c.Width))
		}
	}
}

// optimizerStatePrefixes are the scopes of the optimizers' moments and step
// counters (lm's Trainer: "/adam_<set>", dpsgd's: "/dpadam_<set>").
var optimizerStatePrefixes = []string{"/adam_", "/dpadam_"}

// ResetLoRA starts the adapters afresh, as AddLoRA with this seed would
// (A uniform, B zero), and zeroes the optimizers' moments and step
// counters, keeping every compiled graph: a model reused window after
// window (the dp processor does) trains each window's adapters from the
// same starting point without compiling again. The base weights, the
// learning rate and any random-number state are left alone.
func (m *Model) ResetLoRA(seed uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cfg.LoRA.Rank == 0 {
		return errors.New("lm: ResetLoRA on a model without adapters (call AddLoRA)")
	}
	var err error
	m.initLoRA(rand.New(rand.NewPCG(seed, 0x6c6f7261)), func(path string, t *tensors.Tensor) {
		if v := m.store.GetVariable(path); v == nil {
			err = errors.Join(err, fmt.Errorf("lm: adapter %q missing", path))
		} else {
			err = errors.Join(err, v.SetValue(t))
		}
	})
	for v := range m.store.IterVariables() {
		for _, prefix := range optimizerStatePrefixes {
			if strings.HasPrefix(v.Path(), prefix) {
				err = errors.Join(err, v.SetValue(tensors.FromShape(v.Shape())))
			}
		}
	}
	return err
}

func (m *Model) createLN(scope string) {
	m.mustCreate(scope+"/gain", filled(1, m.cfg.Width))
	m.mustCreate(scope+"/bias", filled(0, m.cfg.Width))
}

func (m *Model) mustCreate(path string, t *tensors.Tensor) {
	if _, err := m.store.CreateVariable(path, t); err != nil {
		panic(err) // only on programming errors (duplicate path with another shape)
	}
}

func normal(rng *rand.Rand, std float64, dims ...int) *tensors.Tensor {
	n := 1
	for _, d := range dims {
		n *= d
	}
	data := make([]float32, n)
	for i := range data {
		data[i] = float32(rng.NormFloat64() * std)
	}
	return tensors.FromFlatDataAndDimensions(data, dims...)
}

func filled(v float32, dims ...int) *tensors.Tensor {
	n := 1
	for _, d := range dims {
		n *= d
	}
	data := make([]float32, n)
	for i := range data {
		data[i] = v
	}
	return tensors.FromFlatDataAndDimensions(data, dims...)
}

// Config returns the model's configuration.
func (m *Model) Config() Config { return m.cfg }

// Store returns the GoMLX store holding the weights (under BaseScope and
// LoRAScope) and any optimizer state. Graphs that use the model (Logits)
// must be built by a model.Exec created on this store.
func (m *Model) Store() *model.Store { return m.store }

// Backend returns the compute backend the model runs on.
func (m *Model) Backend() compute.Backend { return m.backend }

// IsWeight reports whether a variable path belongs to the model (base or
// adapters) rather than to optimizer state.
func IsWeight(path string) bool {
	return strings.HasPrefix(path, BaseScope+"/") || strings.HasPrefix(path, LoRAScope+"/")
}

// WeightPaths lists the model's variable paths in sorted order; with
// adaptersOnly, only the LoRA ones.
func (m *Model) WeightPaths(adaptersOnly bool) []string {
	var out []string
	for v := range m.store.IterVariables() {
		p := v.Path()
		if adaptersOnly && !strings.HasPrefix(p, LoRAScope+"/") {
			continue
		}
		if IsWeight(p) {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

// NumParams counts the model's parameters: base and adapters.
func (m *Model) NumParams() (base, adapters int) {
	for v := range m.store.IterVariables() {
		p := v.Path()
		switch {
		case strings.HasPrefix(p, BaseScope+"/"):
			base += v.Shape().Size()
		case strings.HasPrefix(p, LoRAScope+"/"):
			adapters += v.Shape().Size()
		}
	}
	return
}

// Weight returns a copy of a weight's values (flattened, row-major) and its
// dimensions.
func (m *Model) Weight(path string) ([]float32, []int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v := m.store.GetVariable(path)
	if v == nil {
		return nil, nil, fmt.Errorf("lm: no variable %q", path)
	}
	t, err := v.Value()
	if err != nil {
		return nil, nil, err
	}
	data, err := tensors.CopyFlatData[float32](t)
	if err != nil {
		return nil, nil, err
	}
	return data, t.Shape().Dimensions, nil
}

// SetWeight overwrites a weight's values (same size as before).
func (m *Model) SetWeight(path string, data []float32) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	v := m.store.GetVariable(path)
	if v == nil {
		return fmt.Errorf("lm: no variable %q", path)
	}
	if v.Shape().Size() != len(data) {
		return fmt.Errorf("lm: SetWeight %q: %d values for shape %s", path, len(data), v.Shape())
	}
	return v.SetValue(tensors.FromFlatDataAndDimensions(append([]float32(nil), data...), v.Shape().Dimensions...))
}

func (m *Model) resetExecsLocked() {
	if m.logitsExec != nil {
		m.logitsExec.Finalize()
		m.logitsExec = nil
	}
	if m.decodeExec != nil {
		m.decodeExec.Finalize()
		m.decodeExec = nil
	}
	if m.sampleExec != nil {
		m.sampleExec.Finalize()
		m.sampleExec = nil
	}
	if m.embedExec != nil {
		m.embedExec.Finalize()
		m.embedExec = nil
	}
	if m.llExec != nil {
		m.llExec.Finalize()
		m.llExec = nil
	}
}
