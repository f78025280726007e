package lm

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
)

// A tiny GPT-2 in Hugging Face layout, written by the test itself.
const (
	g2D, g2Layers, g2Heads, g2V, g2P = 16, 2, 2, 50, 16
	g2EOS                            = 49
)

// hfTensor holds values that are exact in F32, F16 and BF16 (at most 8
// significant bits, magnitudes in [2^-8, 2]), so every dtype case has the
// same reference.
type hfTensor struct {
	shape []int
	data  []float64
}

func g2Rand(rng *rand.Rand, dims ...int) hfTensor {
	n := 1
	for _, d := range dims {
		n *= d
	}
	t := hfTensor{shape: dims, data: make([]float64, n)}
	for i := range t.data {
		t.data[i] = float64(rng.IntN(129)-64) / 256 // [-0.25, 0.25]
	}
	return t
}

func g2Gain(rng *rand.Rand, n int) hfTensor {
	t := hfTensor{shape: []int{n}, data: make([]float64, n)}
	for i := range t.data {
		t.data[i] = float64(128+rng.IntN(33)-16) / 128 // [0.875, 1.125]
	}
	return t
}

// gpt2Fixture returns the HF tensors (unprefixed names) of a random tiny GPT-2.
func gpt2Fixture(seed uint64, untied bool) map[string]hfTensor {
	rng := rand.New(rand.NewPCG(seed, 2))
	d := g2D
	ts := map[string]hfTensor{
		"wte.weight": g2Rand(rng, g2V, d),
		"wpe.weight": g2Rand(rng, g2P, d),
	}
	for i := range g2Layers {
		h := fmt.Sprintf("h.%d.", i)
		ts[h+"ln_1.weight"] = g2Gain(rng, d)
		ts[h+"ln_1.bias"] = g2Rand(rng, d)
		ts[h+"attn.c_attn.weight"] = g2Rand(rng, d, 3*d)
		ts[h+"attn.c_attn.bias"] = g2Rand(rng, 3*d)
		ts[h+"attn.c_proj.weight"] = g2Rand(rng, d, d)
		ts[h+"attn.c_proj.bias"] = g2Rand(rng, d)
		ts[h+"ln_2.weight"] = g2Gain(rng, d)
		ts[h+"ln_2.bias"] = g2Rand(rng, d)
		ts[h+"mlp.c_fc.weight"] = g2Rand(rng, d, 4*d)
		ts[h+"mlp.c_fc.bias"] = g2Rand(rng, 4*d)
		ts[h+"mlp.c_proj.weight"] = g2Rand(rng, 4*d, d)
		ts[h+"mlp.c_proj.bias"] = g2Rand(rng, d)
	}
	ts["ln_f.weight"] = g2Gain(rng, d)
	ts["ln_f.bias"] = g2Rand(rng, d)
	if untied {
		ts["lm_head.weight"] = g2Rand(rng, g2V, d)
	}
	return ts
}

func gpt2ConfigJSON(untied bool) map[string]any {
	return map[string]any{
		"architectures": []string{"GPT2LMHeadModel"}, "model_type": "gpt2",
		"n_embd": g2D, "n_layer": g2Layers, "n_head": g2Heads, "n_positions": g2P, "n_ctx": g2P,
		"n_inner": nil, "vocab_size": g2V, "layer_norm_epsilon": 1e-5,
		"bos_token_id": g2EOS, "eos_token_id": g2EOS, "activation_function": "gelu_new",
		"tie_word_embeddings": !untied, "resid_pdrop": 0.1, "embd_pdrop": 0.1, "attn_pdrop": 0.1,
		"scale_attn_weights": true, "torch_dtype": "float32",
	}
}

// encodeHF encodes exact values as dtype, little endian.
func encodeHF(t *testing.T, name string, v []float64, dtype string) []byte {
	t.Helper()
	var out []byte
	for _, x := range v {
		f := float32(x)
		if float64(f) != x {
			t.Fatalf("%s: %v not exact in float32", name, x)
		}
		bits := math.Float32bits(f)
		switch dtype {
		case "F32":
			out = binary.LittleEndian.AppendUint32(out, bits)
		case "BF16":
			if bits&0xffff != 0 {
				t.Fatalf("%s: %v not exact in bf16", name, x)
			}
			out = binary.LittleEndian.AppendUint16(out, uint16(bits>>16))
		case "F16":
			var h uint16
			if f != 0 {
				sign := uint16(bits>>31) << 15
				e := int(bits>>23&0xff) - 127 + 15
				m := bits & 0x7fffff
				if e < 1 || e > 30 || m&0x1fff != 0 {
					t.Fatalf("%s: %v not a normal exact f16", name, x)
				}
				h = sign | uint16(e)<<10 | uint16(m>>13)
			}
			out = binary.LittleEndian.AppendUint16(out, h)
		default:
			t.Fatalf("dtype %s", dtype)
		}
	}
	return out
}

// writeHFSafetensors writes a safetensors file (independent of the package's
// writer) with every tensor in dtype, plus raw extra entries.
func writeHFSafetensors(t *testing.T, path string, ts map[string]hfTensor, dtype string) {
	t.Helper()
	names := make([]string, 0, len(ts))
	for n := range ts {
		names = append(names, n)
	}
	sort.Strings(names)
	header := map[string]any{"__metadata__": map[string]string{"format": "pt"}}
	var data []byte
	for _, n := range names {
		b := encodeHF(t, n, ts[n].data, dtype)
		header[n] = map[string]any{"dtype": dtype, "shape": ts[n].shape, "data_offsets": []int{len(data), len(data) + len(b)}}
		data = append(data, b...)
	}
	hj, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(hj)))
	out = append(append(out, hj...), data...)
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

type g2Case struct {
	name       string
	prefix     string
	dtype      string
	untied     bool
	buffers    bool // add attn.bias / attn.masked_bias as real checkpoints have
	sharded    bool
	tiedLMHead bool // a tied checkpoint that still stores lm_head.weight (= wte)
}

// writeGPT2Dir writes config.json and the weights of ts into a new folder.
func writeGPT2Dir(t *testing.T, c g2Case, cfg map[string]any, ts map[string]hfTensor) string {
	t.Helper()
	dir := t.TempDir()
	cj, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), cj, 0o644); err != nil {
		t.Fatal(err)
	}
	out := map[string]hfTensor{}
	for n, v := range ts {
		if n != "lm_head.weight" {
			n = c.prefix + n
		}
		out[n] = v
	}
	if c.buffers {
		for i := range g2Layers {
			mask := hfTensor{shape: []int{1, 1, g2P, g2P}, data: make([]float64, g2P*g2P)}
			for q := range g2P {
				for k := 0; k <= q; k++ {
					mask.data[q*g2P+k] = 1
				}
			}
			out[fmt.Sprintf("%sh.%d.attn.bias", c.prefix, i)] = mask
			out[fmt.Sprintf("%sh.%d.attn.masked_bias", c.prefix, i)] = hfTensor{shape: []int{}, data: []float64{-1024}}
		}
	}
	if !c.sharded {
		writeHFSafetensors(t, filepath.Join(dir, "model.safetensors"), out, c.dtype)
		return dir
	}
	shards := []map[string]hfTensor{{}, {}}
	weightMap := map[string]string{}
	for n, v := range out {
		i := 0
		if strings.Contains(n, "h.1.") || strings.HasPrefix(n, "ln_f") || strings.Contains(n, ".ln_f") {
			i = 1
		}
		shards[i][n] = v
		weightMap[n] = fmt.Sprintf("model-%05d-of-00002.safetensors", i+1)
	}
	for i, s := range shards {
		writeHFSafetensors(t, filepath.Join(dir, fmt.Sprintf("model-%05d-of-00002.safetensors", i+1)), s, c.dtype)
	}
	idx, _ := json.Marshal(map[string]any{"metadata": map[string]any{"total_size": 0}, "weight_map": weightMap})
	if err := os.WriteFile(filepath.Join(dir, GPT2IndexFile), idx, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// ---- independent float64 reference of HF's GPT2LMHeadModel forward ----

func refLayerNorm(x []float64, w, b hfTensor) []float64 {
	mean, v := 0.0, 0.0
	for _, a := range x {
		mean += a
	}
	mean /= float64(len(x))
	for _, a := range x {
		v += (a - mean) * (a - mean)
	}
	v /= float64(len(x))
	out := make([]float64, len(x))
	for i, a := range x {
		out[i] = (a-mean)/math.Sqrt(v+1e-5)*w.data[i] + b.data[i]
	}
	return out
}

// refConv1D: HF Conv1D, y = x·W + b with W [in, out].
func refConv1D(x []float64, w, b hfTensor) []float64 {
	in, outN := w.shape[0], w.shape[1]
	out := make([]float64, outN)
	for o := range outN {
		s := b.data[o]
		for i := range in {
			s += x[i] * w.data[i*outN+o]
		}
		out[o] = s
	}
	return out
}

func refGeluNew(x float64) float64 {
	return 0.5 * x * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(x+0.044715*x*x*x)))
}

// refGPT2Logits returns logits [T][V] for one sequence.
func refGPT2Logits(ts map[string]hfTensor, tokens []int32) [][]float64 {
	d, H := g2D, g2Heads
	Dh := d / H
	T := len(tokens)
	x := make([][]float64, T)
	for t, tok := range tokens {
		x[t] = make([]float64, d)
		for j := range d {
			x[t][j] = ts["wte.weight"].data[int(tok)*d+j] + ts["wpe.weight"].data[t*d+j]
		}
	}
	for l := range g2Layers {
		h := fmt.Sprintf("h.%d.", l)
		q, k, v := make([][]float64, T), make([][]float64, T), make([][]float64, T)
		for t := range T {
			qkv := refConv1D(refLayerNorm(x[t], ts[h+"ln_1.weight"], ts[h+"ln_1.bias"]), ts[h+"attn.c_attn.weight"], ts[h+"attn.c_attn.bias"])
			q[t], k[t], v[t] = qkv[:d], qkv[d:2*d], qkv[2*d:]
		}
		for t := range T {
			ctx := make([]float64, d)
			for hd := range H {
				lo := hd * Dh
				scores := make([]float64, t+1)
				mx := math.Inf(-1)
				for s := 0; s <= t; s++ {
					for j := range Dh {
						scores[s] += q[t][lo+j] * k[s][lo+j]
					}
					scores[s] /= math.Sqrt(float64(Dh))
					mx = math.Max(mx, scores[s])
				}
				z := 0.0
				for s := range scores {
					scores[s] = math.Exp(scores[s] - mx)
					z += scores[s]
				}
				for s := range scores {
					for j := range Dh {
						ctx[lo+j] += scores[s] / z * v[s][lo+j]
					}
				}
			}
			a := refConv1D(ctx, ts[h+"attn.c_proj.weight"], ts[h+"attn.c_proj.bias"])
			for j := range d {
				x[t][j] += a[j]
			}
			u := refConv1D(refLayerNorm(x[t], ts[h+"ln_2.weight"], ts[h+"ln_2.bias"]), ts[h+"mlp.c_fc.weight"], ts[h+"mlp.c_fc.bias"])
			for j := range u {
				u[j] = refGeluNew(u[j])
			}
			m := refConv1D(u, ts[h+"mlp.c_proj.weight"], ts[h+"mlp.c_proj.bias"])
			for j := range d {
				x[t][j] += m[j]
			}
		}
	}
	head := ts["wte.weight"]
	if lm, ok := ts["lm_head.weight"]; ok {
		head = lm
	}
	logits := make([][]float64, T)
	for t := range T {
		hf := refLayerNorm(x[t], ts["ln_f.weight"], ts["ln_f.bias"])
		logits[t] = make([]float64, g2V)
		for vv := range g2V {
			for j := range d {
				logits[t][vv] += hf[j] * head.data[vv*d+j]
			}
		}
	}
	return logits
}

func g2Tokens(seed uint64, rows, T int) [][]int32 {
	rng := rand.New(rand.NewPCG(seed, 3))
	out := make([][]int32, rows)
	for r := range out {
		out[r] = make([]int32, T)
		for t := range out[r] {
			out[r][t] = int32(rng.IntN(g2V))
		}
	}
	return out
}

func TestLoadGPT2MatchesReference(t *testing.T) {
	requireBackend(t)
	cases := []g2Case{
		{name: "f32", dtype: "F32"},
		{name: "transformer_prefix_buffers", prefix: "transformer.", dtype: "F32", buffers: true},
		{name: "f16", dtype: "F16", buffers: true},
		{name: "bf16_prefix", prefix: "transformer.", dtype: "BF16"},
		{name: "untied_prefix", prefix: "transformer.", dtype: "F32", untied: true},
		{name: "sharded_f16", prefix: "transformer.", dtype: "F16", sharded: true},
		{name: "tied_with_lm_head", prefix: "transformer.", dtype: "F32", tiedLMHead: true},
	}
	tokens := g2Tokens(9, 2, g2P)
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ts := gpt2Fixture(uint64(100+i), c.untied)
			if c.tiedLMHead {
				ts["lm_head.weight"] = ts["wte.weight"]
			}
			dir := writeGPT2Dir(t, c, gpt2ConfigJSON(c.untied), ts)
			m, err := LoadGPT2(dir)
			if err != nil {
				t.Fatalf("LoadGPT2: %v", err)
			}
			cfg := m.Config()
			if cfg.Width != g2D || cfg.Layers != g2Layers || cfg.Heads != g2Heads || cfg.VocabSize != g2V ||
				cfg.Context != g2P || cfg.MLPRatio != 4 || cfg.EOS != g2EOS || cfg.TiedEmbeddings == c.untied ||
				cfg.LayerNormEpsilon != 1e-5 || cfg.LoRA.Rank != 0 {
				t.Fatalf("config %+v", cfg)
			}
			// Same variables (paths and shapes) as a model made by New.
			ref, err := New(cfg, 1)
			if err != nil {
				t.Fatal(err)
			}
			got, want := m.WeightPaths(false), ref.WeightPaths(false)
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Fatalf("weight paths\n got %v\nwant %v", got, want)
			}
			for _, p := range want {
				_, gd, _ := m.Weight(p)
				_, wd, _ := ref.Weight(p)
				if !slices.Equal(gd, wd) {
					t.Fatalf("%s: dims %v, New has %v", p, gd, wd)
				}
			}
			logits := logitsOf(t, m, tokens)
			worst := 0.0
			for r, row := range tokens {
				want := refGPT2Logits(ts, row)
				for tt := range want {
					for v := range want[tt] {
						worst = math.Max(worst, math.Abs(float64(logits[r][tt][v])-want[tt][v]))
					}
				}
			}
			t.Logf("max |logit - float64 reference| = %.3g", worst)
			if worst > 1e-4 {
				t.Fatalf("logits differ from the reference by %g", worst)
			}
		})
	}
}

func TestLoadGPT2Generate(t *testing.T) {
	requireBackend(t)
	ts := gpt2Fixture(7, false)
	m, err := LoadGPT2(writeGPT2Dir(t, g2Case{dtype: "F16", prefix: "transformer."}, gpt2ConfigJSON(false), ts))
	if err != nil {
		t.Fatal(err)
	}
	seqs, err := m.Generate(context.Background(), 3, SampleOptions{MaxTokens: 5, Seed: 1, BatchSize: 3})
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	if len(seqs) != 3 {
		t.Fatalf("%d sequences", len(seqs))
	}
	for _, s := range seqs {
		if len(s) > 5 {
			t.Fatalf("sequence of %d tokens: %v", len(s), s)
		}
		for _, id := range s {
			if id < 0 || id >= g2V || id == g2EOS {
				t.Fatalf("bad token %d in %v", id, s)
			}
		}
	}
	// Greedy decoding (KV cache) follows the reference's argmax.
	greedy, err := m.Generate(context.Background(), 1, SampleOptions{MaxTokens: 6, Greedy: true, BatchSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	prefix := []int32{g2EOS}
	for i, id := range append(greedy[0], g2EOS) {
		if i >= 6 {
			break
		}
		l := refGPT2Logits(ts, prefix)
		last := l[len(l)-1]
		best, second := 0, -1
		for v := range last {
			if last[v] > last[best] {
				best = v
			}
		}
		for v := range last {
			if v != best && (second < 0 || last[v] > last[second]) {
				second = v
			}
		}
		if last[best]-last[second] > 1e-3 && int32(best) != id {
			t.Fatalf("greedy step %d: got %d, reference argmax %d (sequence %v)", i, id, best, greedy[0])
		}
		prefix = append(prefix, id)
	}
	t.Logf("sampled %v, greedy %v", seqs, greedy[0])
}

func TestLoadGPT2Errors(t *testing.T) {
	base := g2Case{dtype: "F32", prefix: "transformer."}
	cases := []struct {
		name   string
		edit   func(cfg map[string]any, ts map[string]hfTensor)
		c      g2Case
		want   []string
		noFile bool
	}{
		{name: "missing tensor", edit: func(_ map[string]any, ts map[string]hfTensor) { delete(ts, "h.1.mlp.c_fc.bias") },
			want: []string{`"transformer.h.1.mlp.c_fc.bias"`, "lacks"}},
		{name: "wrong shape", edit: func(_ map[string]any, ts map[string]hfTensor) {
			ts["h.0.attn.c_attn.weight"] = hfTensor{shape: []int{g2D, 2 * g2D}, data: make([]float64, 2*g2D*g2D)}
		}, want: []string{`"transformer.h.0.attn.c_attn.weight"`, "[16 32]", "[16 48]"}},
		{name: "wrong vocab", edit: func(cfg map[string]any, _ map[string]hfTensor) { cfg["vocab_size"] = 51 },
			want: []string{`"transformer.wte.weight"`, "[50 16]", "[51 16]"}},
		{name: "extra tensor", edit: func(_ map[string]any, ts map[string]hfTensor) {
			ts["h.2.ln_1.weight"] = hfTensor{shape: []int{g2D}, data: make([]float64, g2D)}
		}, want: []string{"transformer.h.2.ln_1.weight"}},
		{name: "untied without lm_head", edit: func(cfg map[string]any, _ map[string]hfTensor) { cfg["tie_word_embeddings"] = false },
			want: []string{`"lm_head.weight"`}},
		{name: "exact gelu", edit: func(cfg map[string]any, _ map[string]hfTensor) { cfg["activation_function"] = "gelu" },
			want: []string{"activation_function", `"gelu"`}},
		{name: "no eos", edit: func(cfg map[string]any, _ map[string]hfTensor) {
			delete(cfg, "eos_token_id")
			delete(cfg, "bos_token_id")
		}, want: []string{"eos_token_id"}},
		{name: "no model.safetensors", c: g2Case{dtype: "F32"}, edit: func(_ map[string]any, _ map[string]hfTensor) {},
			want: []string{"model.safetensors", "no"}, noFile: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg, ts := gpt2ConfigJSON(false), gpt2Fixture(3, false)
			tc.edit(cfg, ts)
			c := base
			if tc.c.dtype != "" {
				c = tc.c
			}
			dir := writeGPT2Dir(t, c, cfg, ts)
			if tc.noFile {
				if err := os.Remove(filepath.Join(dir, "model.safetensors")); err != nil {
					t.Fatal(err)
				}
			}
			_, err := LoadGPT2(dir)
			if err == nil {
				t.Fatal("LoadGPT2 succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	t.Run("no folder", func(t *testing.T) {
		if _, err := LoadGPT2(filepath.Join(t.TempDir(), "absent")); err == nil || !strings.Contains(err.Error(), "config.json") {
			t.Fatalf("error %v", err)
		}
	})
}

func TestHalfToFloat32(t *testing.T) {
	for _, c := range []struct {
		h    uint16
		want float32
	}{
		{0x0000, 0}, {0x3c00, 1}, {0xc000, -2}, {0x3555, 0.333251953125}, {0x7bff, 65504},
		{0x0400, 1.0 / (1 << 14)}, {0x0001, 1.0 / (1 << 24)}, {0x83ff, -1023.0 / (1 << 24)},
		{0x7c00, float32(math.Inf(1))}, {0xfc00, float32(math.Inf(-1))},
	} {
		if got := halfToFloat32(c.h); got != c.want {
			t.Errorf("halfToFloat32(%#04x) = %v, want %v", c.h, got, c.want)
		}
	}
	if got := halfToFloat32(0x8000); got != 0 || !math.Signbit(float64(got)) {
		t.Errorf("-0: got %v", got)
	}
	if got := halfToFloat32(0x7e00); !math.IsNaN(float64(got)) {
		t.Errorf("NaN: got %v", got)
	}
}

func TestBackendFromName(t *testing.T) {
	def, err := DefaultBackend()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"", "go", " go "} {
		b, err := BackendFromName(name)
		if err != nil || b != def {
			t.Fatalf("BackendFromName(%q) = %v, %v; want the default backend", name, b, err)
		}
	}
	b, err := BackendFromName("go:" + DefaultBackendConfig)
	if err != nil || b == nil || b == def {
		t.Fatalf("go:%s: %v, %v", DefaultBackendConfig, b, err)
	}
	b.Finalize()
	for _, name := range []string{"tpu", "xla", "xla:", "gpu:0"} {
		if _, err := BackendFromName(name); err == nil {
			t.Fatalf("BackendFromName(%q) succeeded", name)
		}
	}
	if !XLAAvailable {
		_, err := BackendFromName("xla:cpu")
		if !errors.Is(err, ErrNoXLA) || !strings.Contains(err.Error(), "build with -tags xla") {
			t.Fatalf("xla:cpu without the tag: %v", err)
		}
	}
}
