package lm

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
)

const tinyEOS = 0

// tinyConfig is small enough for -race on 2 cores.
func tinyConfig() Config {
	return Config{
		VocabSize: 64, Context: 16, Layers: 2, Width: 32, Heads: 4, MLPRatio: 4,
		EOS: tinyEOS, TiedEmbeddings: true,
	}
}

func newTiny(t *testing.T, cfg Config, seed uint64) *Model {
	t.Helper()
	m, err := New(cfg, seed)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return m
}

// toyCorpus: three short "sentences" as byte ids folded into [1, 64).
func toyCorpus() [][]int32 {
	var out [][]int32
	for _, s := range []string{"the cat sat", "a dog ran far", "we eat rice"} {
		var ids []int32
		for _, c := range []byte(s) {
			ids = append(ids, int32(c%63)+1)
		}
		out = append(out, append(ids, tinyEOS))
	}
	return out
}

func logitsOf(t *testing.T, m *Model, rows [][]int32) [][][]float32 {
	t.Helper()
	l, err := m.LogitsFor(rows)
	if err != nil {
		t.Fatalf("LogitsFor: %v", err)
	}
	return l
}

func maxAbsDiff(t *testing.T, a, b [][][]float32) float64 {
	t.Helper()
	d := 0.0
	for i := range a {
		for j := range a[i] {
			for k := range a[i][j] {
				d = math.Max(d, math.Abs(float64(a[i][j][k]-b[i][j][k])))
			}
		}
	}
	return d
}

func TestBuiltWithSIMD(t *testing.T) {
	if runtime.GOARCH == "amd64" && !SIMDBuild {
		t.Fatal("built without GOEXPERIMENT=simd: the Go backend's AVX matmul kernels are missing (~15x slower); export GOEXPERIMENT=simd")
	}
}

func TestConfigValidate(t *testing.T) {
	good := tinyConfig().withDefaults()
	tests := []struct {
		name   string
		mutate func(*Config)
		errSub string
	}{
		{"ok", func(*Config) {}, ""},
		{"newer format", func(c *Config) { c.FormatVersion = FormatVersion + 1 }, "newer"},
		{"heads do not divide width", func(c *Config) { c.Heads = 5 }, "multiple of heads"},
		{"eos outside vocab", func(c *Config) { c.EOS = 64 }, "eos"},
		{"bad lora target", func(c *Config) { c.LoRA = LoRAConfig{Rank: 4, Alpha: 8, Targets: []string{"x"}} }, "unknown projection"},
		{"lora defaults ok", func(c *Config) { c.LoRA = DefaultLoRA() }, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.mutate(&c)
			err := c.Validate()
			if tc.errSub == "" && err != nil {
				t.Fatalf("unexpected error %v", err)
			}
			if tc.errSub != "" && (err == nil || !strings.Contains(err.Error(), tc.errSub)) {
				t.Fatalf("error %v, want one containing %q", err, tc.errSub)
			}
		})
	}
}

func TestPackBatch(t *testing.T) {
	cfg := tinyConfig()
	tests := []struct {
		name           string
		seqs           [][]int32
		B, T           int
		wantIn, wantTg []int32
		wantMask       []float32
	}{
		{"appends EOS and pads", [][]int32{{5, 6}}, 1, 5,
			[]int32{0, 5, 6, 0, 0}, []int32{5, 6, 0, 0, 0}, []float32{1, 1, 1, 0, 0}},
		{"keeps given EOS", [][]int32{{5, 6, 0}}, 1, 4,
			[]int32{0, 5, 6, 0}, []int32{5, 6, 0, 0}, []float32{1, 1, 1, 0}},
		{"truncates", [][]int32{{1, 2, 3, 4}}, 1, 3,
			[]int32{0, 1, 2}, []int32{1, 2, 3}, []float32{1, 1, 1}},
		{"empty row padding", [][]int32{{7}}, 2, 2,
			[]int32{0, 7, 0, 0}, []int32{7, 0, 0, 0}, []float32{1, 1, 0, 0}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in, tg, mk, err := PackBatch(tc.seqs, tc.B, tc.T, cfg)
			if err != nil {
				t.Fatal(err)
			}
			gotIn, gotTg, gotMk := tensors.MustCopyFlatData[int32](in), tensors.MustCopyFlatData[int32](tg), tensors.MustCopyFlatData[float32](mk)
			if !slices.Equal(gotIn, tc.wantIn) || !slices.Equal(gotTg, tc.wantTg) || !slices.Equal(gotMk, tc.wantMask) {
				t.Fatalf("got in=%v tg=%v mask=%v, want %v %v %v", gotIn, gotTg, gotMk, tc.wantIn, tc.wantTg, tc.wantMask)
			}
		})
	}
	if _, _, _, err := PackBatch([][]int32{{99}}, 1, 4, cfg); err == nil {
		t.Fatal("out-of-vocab id accepted")
	}
}

func TestOverfitToyCorpus(t *testing.T) {
	requireBackend(t)
	m := newTiny(t, tinyConfig(), 1)
	tr, err := m.NewTrainer(TrainerOptions{LearningRate: 1e-2, Trainable: TrainBase})
	if err != nil {
		t.Fatal(err)
	}
	corpus := toyCorpus()
	first, last := float32(0), float32(0)
	for step := range 80 {
		loss, err := tr.Step(corpus)
		if err != nil {
			t.Fatal(err)
		}
		if step == 0 {
			first = loss
		}
		last = loss
	}
	t.Logf("loss %.3f -> %.3f", first, last)
	if first < 3.5 || last > 0.3 {
		t.Fatalf("loss %.3f -> %.3f: want ~ln(64)=4.16 -> < 0.3", first, last)
	}
	if got := tr.Steps(); got != 80 {
		t.Fatalf("Steps() = %d, want 80", got)
	}
	// The memorised corpus: greedy decoding reproduces one of the sentences.
	out, err := m.Generate(context.Background(), 1, SampleOptions{Greedy: true, BatchSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range corpus {
		if slices.Equal(append(append([]int32(nil), out[0]...), tinyEOS), s) {
			found = true
		}
	}
	if !found {
		t.Fatalf("greedy sample %v is not a corpus sentence", out[0])
	}
}

func TestCausalMasking(t *testing.T) {
	requireBackend(t)
	m := newTiny(t, tinyConfig(), 2)
	a := []int32{0, 5, 9, 13, 2, 40, 41, 7}
	b := append([]int32(nil), a...)
	b[5], b[7] = 33, 21 // change future tokens
	la := logitsOf(t, m, [][]int32{a})[0]
	lb := logitsOf(t, m, [][]int32{b})[0]
	for pos := range a {
		d := 0.0
		for k := range la[pos] {
			d = math.Max(d, math.Abs(float64(la[pos][k]-lb[pos][k])))
		}
		switch {
		case pos < 5 && d != 0:
			t.Fatalf("position %d changed by %g after changing a later token", pos, d)
		case pos >= 5 && d == 0:
			t.Fatalf("position %d unchanged although its own input changed", pos)
		}
	}
}

// decodeLogits feeds rows token by token through the KV-cache step.
func decodeLogits(t *testing.T, m *Model, rows [][]int32, tmax int) [][][]float32 {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.ensureDecodeExecLocked(); err != nil {
		t.Fatal(err)
	}
	c := m.cfg
	B, T, V := len(rows), len(rows[0]), c.VocabSize
	caches := make([]any, 2*c.Layers)
	for i := range caches {
		caches[i] = tensors.FromFlatDataAndDimensions(make([]float32, B*c.Heads*tmax*c.HeadDim()), B*c.Heads, tmax, c.HeadDim())
	}
	out := make([][][]float32, B)
	for b := range out {
		out[b] = make([][]float32, T)
	}
	for pos := range T {
		tok := make([]int32, B)
		for b := range rows {
			tok[b] = rows[b][pos]
		}
		outs, err := m.decodeExec.Call(append([]any{tok, int32(pos)}, caches...)...)
		if err != nil {
			t.Fatal(err)
		}
		copy(caches, anySlice(outs[1:]))
		l := tensors.MustCopyFlatData[float32](outs[0])
		for b := range B {
			out[b][pos] = l[b*V : (b+1)*V]
		}
	}
	return out
}

func anySlice(ts []*tensors.Tensor) []any {
	out := make([]any, len(ts))
	for i, t := range ts {
		out[i] = t
	}
	return out
}

func TestKVCacheMatchesFullForward(t *testing.T) {
	requireBackend(t)
	for _, tc := range []struct {
		name string
		lora bool
		tied bool
	}{{"base tied", false, true}, {"lora untied", true, false}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tinyConfig()
			cfg.TiedEmbeddings = tc.tied
			m := newTiny(t, cfg, 3)
			if tc.lora {
				if err := m.AddLoRA(LoRAConfig{Rank: 4, Alpha: 8}, 1); err != nil {
					t.Fatal(err)
				}
				// Non-zero B so the adapter path matters.
				for _, p := range m.WeightPaths(true) {
					if strings.HasSuffix(p, "/B") {
						data, _, _ := m.Weight(p)
						for i := range data {
							data[i] = float32(i%7-3) * 0.05
						}
						if err := m.SetWeight(p, data); err != nil {
							t.Fatal(err)
						}
					}
				}
			}
			rows := [][]int32{{0, 4, 8, 15, 16, 23, 42}, {0, 1, 2, 3, 4, 5, 6}}
			full := logitsOf(t, m, rows)
			dec := decodeLogits(t, m, rows, 10)
			if d := maxAbsDiff(t, full, dec); d > 1e-4 {
				t.Fatalf("KV-cache logits differ from the full forward pass by %g", d)
			}
		})
	}
}

func TestLoRAZeroBEqualsBase(t *testing.T) {
	requireBackend(t)
	m := newTiny(t, tinyConfig(), 4)
	rows := [][]int32{{0, 3, 9, 27, 17}}
	before := logitsOf(t, m, rows)
	if err := m.AddLoRA(DefaultLoRA(), 7); err != nil {
		t.Fatal(err)
	}
	if _, n := m.NumParams(); n != 2*4*2*32*8 {
		t.Fatalf("adapter params = %d, want %d", n, 2*4*2*32*8)
	}
	after := logitsOf(t, m, rows)
	if d := maxAbsDiff(t, before, after); d != 0 {
		t.Fatalf("adapters with B=0 changed logits by %g", d)
	}
}

func snapshot(t *testing.T, m *Model, paths []string) map[string][]float32 {
	t.Helper()
	out := map[string][]float32{}
	for _, p := range paths {
		d, _, err := m.Weight(p)
		if err != nil {
			t.Fatal(err)
		}
		out[p] = d
	}
	return out
}

func TestTrainAdaptersOnlyKeepsBase(t *testing.T) {
	requireBackend(t)
	m := newTiny(t, tinyConfig(), 5)
	if err := m.AddLoRA(DefaultLoRA(), 1); err != nil {
		t.Fatal(err)
	}
	var base []string
	for _, p := range m.WeightPaths(false) {
		if strings.HasPrefix(p, BaseScope+"/") {
			base = append(base, p)
		}
	}
	adapters := m.WeightPaths(true)
	b0, a0 := snapshot(t, m, base), snapshot(t, m, adapters)
	trainAdapters(t, m, 3)
	b1, a1 := snapshot(t, m, base), snapshot(t, m, adapters)
	for _, p := range base {
		if !slices.Equal(b0[p], b1[p]) {
			t.Fatalf("base weight %s changed while training adapters only", p)
		}
	}
	changed := 0
	for _, p := range adapters {
		if !slices.Equal(a0[p], a1[p]) {
			changed++
		}
	}
	if changed != len(adapters) {
		t.Fatalf("%d of %d adapter tensors changed, want all", changed, len(adapters))
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	requireBackend(t)
	dir := t.TempDir()
	m := newTiny(t, tinyConfig(), 6)
	if err := m.AddLoRA(DefaultLoRA(), 2); err != nil {
		t.Fatal(err)
	}
	tr, err := m.NewTrainer(TrainerOptions{Trainable: TrainAdapters, BatchSize: 3})
	if err != nil {
		t.Fatal(err)
	}
	corpus := toyCorpus()
	for range 2 {
		if _, err := tr.Step(corpus); err != nil {
			t.Fatal(err)
		}
	}
	tok := filepath.Join(dir, "tokenizer.json")
	if err := os.WriteFile(tok, []byte(`{"keep":"me"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := m.Save(dir); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(tok); err != nil || string(b) != `{"keep":"me"}` {
		t.Fatalf("Save disturbed tokenizer.json: %q %v", b, err)
	}
	m2, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	rows := [][]int32{{0, 11, 22, 33, 44}}
	if d := maxAbsDiff(t, logitsOf(t, m, rows), logitsOf(t, m2, rows)); d != 0 {
		t.Fatalf("loaded model's logits differ by %g", d)
	}
	// Resume: the next step from the saved optimizer state matches exactly.
	tr2, err := m2.NewTrainer(TrainerOptions{Trainable: TrainAdapters, BatchSize: 3})
	if err != nil {
		t.Fatal(err)
	}
	l1, err := tr.Step(corpus)
	if err != nil {
		t.Fatal(err)
	}
	l2, err := tr2.Step(corpus)
	if err != nil {
		t.Fatal(err)
	}
	if l1 != l2 || tr2.Steps() != 3 {
		t.Fatalf("resumed step: loss %v vs %v, steps %d (want 3)", l1, l2, tr2.Steps())
	}
	if d := maxAbsDiff(t, logitsOf(t, m, rows), logitsOf(t, m2, rows)); d != 0 {
		t.Fatalf("after one more step each, logits differ by %g", d)
	}
}

func TestLoadRejectsNewerFormat(t *testing.T) {
	dir := t.TempDir()
	m := newTiny(t, tinyConfig(), 7)
	if err := m.Save(dir); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, ConfigFile))
	raw = []byte(strings.Replace(string(raw), `"format_version": 1`, `"format_version": 99`, 1))
	if err := os.WriteFile(filepath.Join(dir, ConfigFile), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(dir)
	if !errors.Is(err, ErrNewerFormat) {
		t.Fatalf("Load of format 99: err %v, want ErrNewerFormat", err)
	}
}

// forceEOS makes an untied model always (or never) prefer EOS.
func forceEOS(t *testing.T, m *Model, logit float32) {
	t.Helper()
	c := m.cfg
	if err := m.SetWeight(pathLNf+"/gain", make([]float32, c.Width)); err != nil {
		t.Fatal(err)
	}
	ones := make([]float32, c.Width)
	for i := range ones {
		ones[i] = 1
	}
	if err := m.SetWeight(pathLNf+"/bias", ones); err != nil {
		t.Fatal(err)
	}
	head := make([]float32, c.Width*c.VocabSize) // [Width, Vocab]
	for i := range c.Width {
		head[i*c.VocabSize+int(c.EOS)] = logit / float32(c.Width)
	}
	if err := m.SetWeight(pathHead, head); err != nil {
		t.Fatal(err)
	}
}

func TestGenerate(t *testing.T) {
	requireBackend(t)
	cfg := tinyConfig()
	cfg.TiedEmbeddings = false
	ctx := context.Background()
	tests := []struct {
		name     string
		eosLogit float32
		opts     SampleOptions
		n        int
		wantLen  int
	}{
		{"stops at EOS", 50, SampleOptions{BatchSize: 4}, 5, 0},
		{"respects MaxTokens", -50, SampleOptions{BatchSize: 4, MaxTokens: 6}, 3, 6},
		{"top-k greedy-ish never EOS", -50, SampleOptions{BatchSize: 2, MaxTokens: 4, TopK: 3, Temperature: 0.5}, 2, 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := newTiny(t, cfg, 8)
			forceEOS(t, m, tc.eosLogit)
			out, err := m.Generate(ctx, tc.n, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if len(out) != tc.n {
				t.Fatalf("%d sequences, want %d", len(out), tc.n)
			}
			for _, s := range out {
				if len(s) != tc.wantLen {
					t.Fatalf("sequence %v has length %d, want %d", s, len(s), tc.wantLen)
				}
				for _, id := range s {
					if id == cfg.EOS {
						t.Fatalf("EOS inside a returned sequence %v", s)
					}
				}
			}
		})
	}
}

func TestGenerateDeterministic(t *testing.T) {
	requireBackend(t)
	m := newTiny(t, tinyConfig(), 9)
	ctx := context.Background()
	gen := func(seed uint64) [][]int32 {
		t.Helper()
		out, err := m.Generate(ctx, 3, SampleOptions{Seed: seed, BatchSize: 2, MaxTokens: 8})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	a, b, c := gen(1), gen(1), gen(2)
	same := func(x, y [][]int32) bool {
		for i := range x {
			if !slices.Equal(x[i], y[i]) {
				return false
			}
		}
		return true
	}
	if !same(a, b) {
		t.Fatalf("same seed gave %v and %v", a, b)
	}
	if same(a, c) {
		t.Fatalf("seeds 1 and 2 gave the same samples %v", a)
	}
	if _, err := m.Generate(ctx, 1, SampleOptions{MaxTokens: 17}); err == nil {
		t.Fatal("MaxTokens beyond context accepted")
	}
}

// TestTapsGivePerExampleGradients checks the DP-SGD contract: from a tap's
// Input and the gradient w.r.t. its Output, per-example weight gradients
// (summed over examples) equal the batch gradient of the weight.
func TestTapsGivePerExampleGradients(t *testing.T) {
	requireBackend(t)
	m := newTiny(t, tinyConfig(), 10)
	if err := m.AddLoRA(DefaultLoRA(), 3); err != nil {
		t.Fatal(err)
	}
	// Make B non-zero so the A gradient is non-zero.
	p := LoRAPath(1, "v") + "/B"
	data, _, _ := m.Weight(p)
	for i := range data {
		data[i] = 0.01 * float32(i%5)
	}
	_ = m.SetWeight(p, data)
	in, tg, mk, err := PackBatch(toyCorpus(), 3, 16, m.cfg)
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"layer01/attn/v", "layer01/attn/v/lora_A", "layer01/attn/v/lora_B", "layer00/mlp/up"}
	outs, err := model.CallOnceN(m.backend, m.store, func(scope *model.Scope, tokens, targets, mask *graph.Node) []*graph.Node {
		g := tokens.Graph()
		taps := &Taps{}
		logits := m.Logits(g, tokens, taps)
		loss := graph.ReduceAllSum(PerExampleLoss(logits, targets, mask))
		var res []*graph.Node
		for _, name := range names {
			var tap *Tap
			for _, tp := range taps.List {
				if tp.Name == name {
					tap = tp
				}
			}
			if tap == nil {
				panic("missing tap " + name)
			}
			w := m.store.GetVariable(tap.Weight).NodeValue(g)
			grads := graph.Gradient(loss, tap.Output, w)
			perEx := graph.Einsum("bti,bto->bio", tap.Input, grads[0]) // [B, in, out]
			res = append(res, graph.ReduceSum(perEx, 0), grads[1])
		}
		return res
	}, in, tg, mk)
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range names {
		sum, full := tensors.MustCopyFlatData[float32](outs[2*i]), tensors.MustCopyFlatData[float32](outs[2*i+1])
		d, scale := 0.0, 0.0
		for j := range sum {
			d = math.Max(d, math.Abs(float64(sum[j]-full[j])))
			scale = math.Max(scale, math.Abs(float64(full[j])))
		}
		if scale == 0 || d > 1e-5*math.Max(1, scale) {
			t.Fatalf("%s: per-example sum differs from the batch gradient by %g (scale %g)", name, d, scale)
		}
	}
}

// TestResetLoRAStartsAfreshAndKeepsGraphs: after training steps, ResetLoRA
// with a seed gives the adapters AddLoRA gives with that seed, zero
// optimizer state, unchanged base weights, and the same compiled decoding
// step (no recompilation).
func TestResetLoRAStartsAfreshAndKeepsGraphs(t *testing.T) {
	requireBackend(t)
	m := newTiny(t, tinyConfig(), 5)
	if err := m.ResetLoRA(1); err == nil {
		t.Fatal("ResetLoRA without adapters accepted")
	}
	if err := m.AddLoRA(DefaultLoRA(), 1); err != nil {
		t.Fatal(err)
	}
	base := m.WeightPaths(false)
	b0 := snapshot(t, m, base)
	tr := trainAdapters(t, m, 3)
	if _, err := m.Generate(context.Background(), 2, SampleOptions{MaxTokens: 4}); err != nil {
		t.Fatal(err)
	}
	exec := m.sampleExec
	if err := m.ResetLoRA(7); err != nil {
		t.Fatal(err)
	}
	fresh := newTiny(t, tinyConfig(), 5)
	if err := fresh.AddLoRA(DefaultLoRA(), 7); err != nil {
		t.Fatal(err)
	}
	got, want := snapshot(t, m, base), snapshot(t, fresh, base)
	for _, p := range base {
		if strings.HasPrefix(p, LoRAScope+"/") {
			if !slices.Equal(got[p], want[p]) {
				t.Errorf("adapter %s after ResetLoRA(7) differs from AddLoRA(7)", p)
			}
		} else if !slices.Equal(got[p], b0[p]) {
			t.Errorf("base weight %s changed", p)
		}
	}
	if steps := tr.Steps(); steps != 0 {
		t.Errorf("optimizer step counter %d after ResetLoRA, want 0", steps)
	}
	if m.sampleExec != exec {
		t.Error("ResetLoRA dropped the compiled decoding step")
	}
}

// trainAdapters takes steps Adam steps on m's adapters over the toy corpus.
func trainAdapters(t *testing.T, m *Model, steps int) *Trainer {
	t.Helper()
	tr, err := m.NewTrainer(TrainerOptions{Trainable: TrainAdapters, BatchSize: 4})
	if err != nil {
		t.Fatal(err)
	}
	for range steps {
		if _, err := tr.Step(toyCorpus()); err != nil {
			t.Fatal(err)
		}
	}
	return tr
}
