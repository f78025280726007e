package hfconvert

// A plain-Go float32 forward of HF's LlamaForCausalLM (modeling_llama.py),
// written from HF's conventions rather than run.c's: rotate_half RoPE, the
// weights read back by name from the converted folder. It is the test
// oracle that the conversion (names, shapes, the q/k row permutation, the
// tied head) is right: its logits must equal llama2c's Forward.

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

type hfLlama struct {
	cfg  Config
	eps  float64
	base float64
	w    map[string][]float32
}

// loadHFLlama reads config.json and model.safetensors from dir.
func loadHFLlama(t testing.TB, dir string) *hfLlama {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	m := &hfLlama{w: map[string][]float32{}}
	if err := json.Unmarshal(data, &m.cfg); err != nil {
		t.Fatalf("config.json: %v", err)
	}
	if m.eps, err = m.cfg.RMSNormEps.Float64(); err != nil {
		t.Fatal(err)
	}
	if m.base, err = m.cfg.RopeTheta.Float64(); err != nil {
		t.Fatal(err)
	}
	f, err := ReadSafetensorsFile(filepath.Join(dir, WeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range f.Names() {
		if m.w[name], _, err = f.Float32(name); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

func (m *hfLlama) get(t testing.TB, name string) []float32 {
	t.Helper()
	w, ok := m.w[name]
	if !ok {
		t.Fatalf("tensor %s missing", name)
	}
	return w
}

// linear is PyTorch's x @ W.T for W [out, in].
func linear(w, x []float32) []float32 {
	in := len(x)
	out := make([]float32, len(w)/in)
	for o := range out {
		var s float32
		for i, v := range w[o*in : (o+1)*in] {
			s += v * x[i]
		}
		out[o] = s
	}
	return out
}

func rmsNorm(x, w []float32, eps float64) []float32 {
	var ss float32
	for _, v := range x {
		ss += v * v
	}
	inv := float32(1 / math.Sqrt(float64(ss/float32(len(x)))+eps))
	out := make([]float32, len(x))
	for i, v := range x {
		out[i] = w[i] * (v * inv)
	}
	return out
}

// applyRoPE rotates each head of v ([n*hs]) in place as HF does:
// v*cos + rotate_half(v)*sin, rotate_half(v) = (-v2, v1) for the halves
// v1, v2, and cos/sin of pos*inv_freq repeated over both halves.
func applyRoPE(v []float32, hs, pos int, base float64) {
	half := hs / 2
	for h := 0; h < len(v); h += hs {
		for j := range half {
			invFreq := math.Pow(base, -float64(2*j)/float64(hs))
			c, s := float32(math.Cos(float64(pos)*invFreq)), float32(math.Sin(float64(pos)*invFreq))
			a, b := v[h+j], v[h+j+half]
			v[h+j] = a*c - b*s
			v[h+j+half] = b*c + a*s
		}
	}
}

// logits runs tokens (positions 0..) and returns every position's logits.
func (m *hfLlama) logits(t testing.TB, tokens []int) [][]float32 {
	t.Helper()
	c := m.cfg
	dim, hs := c.HiddenSize, c.HiddenSize/c.NumAttentionHeads
	group := c.NumAttentionHeads / c.NumKeyValueHeads
	emb := m.get(t, "model.embed_tokens.weight")
	head := emb
	if !c.TieWordEmbeddings {
		head = m.get(t, "lm_head.weight")
	}
	keys := make([][][]float32, c.NumHiddenLayers) // [layer][pos][kv*hs]
	vals := make([][][]float32, c.NumHiddenLayers)
	var out [][]float32
	for pos, tok := range tokens {
		x := append([]float32(nil), emb[tok*dim:(tok+1)*dim]...)
		for l := range c.NumHiddenLayers {
			p := "model.layers." + strconv.Itoa(l) + "."
			h := rmsNorm(x, m.get(t, p+"input_layernorm.weight"), m.eps)
			q := linear(m.get(t, p+"self_attn.q_proj.weight"), h)
			k := linear(m.get(t, p+"self_attn.k_proj.weight"), h)
			v := linear(m.get(t, p+"self_attn.v_proj.weight"), h)
			applyRoPE(q, hs, pos, m.base)
			applyRoPE(k, hs, pos, m.base)
			keys[l] = append(keys[l], k)
			vals[l] = append(vals[l], v)
			att := make([]float32, len(q))
			for hd := range c.NumAttentionHeads {
				kvh := hd / group
				qh := q[hd*hs : (hd+1)*hs]
				scores := make([]float64, pos+1)
				mx := math.Inf(-1)
				for s := range pos + 1 {
					var d float32
					for i, qv := range qh {
						d += qv * keys[l][s][kvh*hs+i]
					}
					scores[s] = float64(d) / math.Sqrt(float64(hs))
					mx = max(mx, scores[s])
				}
				var sum float64
				for s := range scores {
					scores[s] = math.Exp(scores[s] - mx)
					sum += scores[s]
				}
				for s := range scores {
					a := float32(scores[s] / sum)
					for i := range hs {
						att[hd*hs+i] += a * vals[l][s][kvh*hs+i]
					}
				}
			}
			o := linear(m.get(t, p+"self_attn.o_proj.weight"), att)
			for i := range x {
				x[i] += o[i]
			}
			h = rmsNorm(x, m.get(t, p+"post_attention_layernorm.weight"), m.eps)
			g := linear(m.get(t, p+"mlp.gate_proj.weight"), h)
			u := linear(m.get(t, p+"mlp.up_proj.weight"), h)
			for i := range g {
				g[i] = g[i] / (1 + float32(math.Exp(-float64(g[i])))) * u[i]
			}
			d := linear(m.get(t, p+"mlp.down_proj.weight"), g)
			for i := range x {
				x[i] += d[i]
			}
		}
		out = append(out, linear(head, rmsNorm(x, m.get(t, "model.norm.weight"), m.eps)))
	}
	return out
}
