package dpsgd

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sort"
	"testing"

	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/dpinstruct/dpinstruct/models/lm"
)

const (
	tB = 4 // batch rows; the last one is padding
	tT = 8
)

func TestBuiltWithSIMD(t *testing.T) {
	if runtime.GOARCH == "amd64" && !lm.SIMDBuild {
		t.Fatal("built without GOEXPERIMENT=simd; export GOEXPERIMENT=simd")
	}
}

// tinyModel: vocab 40, width 16, 2 layers, 2 heads, context 8, tied head;
// with lora, rank-4 adapters on q/k/v/o whose B is made non-zero (else A's
// gradient is zero), and every weight perturbed so no gradient is trivial.
func tinyModel(t *testing.T, lora bool) *lm.Model {
	t.Helper()
	cfg := lm.Config{VocabSize: 40, Context: tT, Layers: 2, Width: 16, Heads: 2, MLPRatio: 4, EOS: 0, TiedEmbeddings: true}
	m, err := lm.New(cfg, 7)
	if err != nil {
		t.Fatal(err)
	}
	if lora {
		if err := m.AddLoRA(lm.LoRAConfig{Rank: 4, Alpha: 8, Targets: []string{"q", "k", "v", "o"}}, 11); err != nil {
			t.Fatal(err)
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for _, p := range m.WeightPaths(false) {
		data, _, err := m.Weight(p)
		if err != nil {
			t.Fatal(err)
		}
		for i := range data {
			data[i] += float32(0.05 * rng.NormFloat64())
		}
		if err := m.SetWeight(p, data); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

// batch: three sequences of different lengths and one all-padding row.
func batch(t *testing.T, m *lm.Model) (in, tg, mk *tensors.Tensor) {
	t.Helper()
	seqs := [][]int32{{5, 9, 13, 2, 7, 5, 31}, {3, 3, 8}, {39, 1, 22, 22, 17, 4, 6, 10, 12}}
	in, tg, mk, err := lm.PackBatch(seqs, tB, tT, m.Config())
	if err != nil {
		t.Fatal(err)
	}
	return in, tg, mk
}

func trainablePathsOf(m *lm.Model, set lm.TrainSet) []string {
	var out []string
	for _, p := range m.WeightPaths(false) {
		if Trains(set, p) {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

// reference computes, one example at a time (a batch of one row each, plain
// graph.Gradient of that example's loss), grads[b][i] for paths[i].
func reference(t *testing.T, m *lm.Model, paths []string, in, tg, mk *tensors.Tensor) [][][]float64 {
	t.Helper()
	outs, err := model.CallOnceN(m.Backend(), m.Store(), func(scope *model.Scope, tokens, targets, mask *graph.Node) []*graph.Node {
		g := tokens.Graph()
		vars := make([]*graph.Node, len(paths))
		for i, p := range paths {
			vars[i] = m.Store().GetVariable(p).NodeValue(g)
		}
		var res []*graph.Node
		for b := range tB {
			row := func(x *graph.Node) *graph.Node { return graph.Slice(x, graph.AxisRange(b, b+1)) }
			logits := m.Logits(g, row(tokens), nil)
			loss := graph.ReduceAllSum(lm.PerExampleLoss(logits, row(targets), row(mask)))
			res = append(res, graph.Gradient(loss, vars...)...)
		}
		return res
	}, in, tg, mk)
	if err != nil {
		t.Fatal(err)
	}
	ref := make([][][]float64, tB)
	for b := range tB {
		ref[b] = make([][]float64, len(paths))
		for i := range paths {
			ref[b][i] = f64(tensors.MustCopyFlatData[float32](outs[b*len(paths)+i]))
		}
	}
	return ref
}

func f64(x []float32) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v)
	}
	return out
}

func norm(vs ...[]float64) float64 {
	s := 0.0
	for _, v := range vs {
		for _, x := range v {
			s += x * x
		}
	}
	return math.Sqrt(s)
}

type dutOut struct {
	norms, factors []float64
	grads          [][]float64 // by paths
}

func runClipped(t *testing.T, m *lm.Model, paths []string, opts Options, in, tg, mk *tensors.Tensor) dutOut {
	t.Helper()
	outs, err := model.CallOnceN(m.Backend(), m.Store(), func(scope *model.Scope, tokens, targets, mask *graph.Node) []*graph.Node {
		r := ClippedGradients(m, tokens.Graph(), tokens, targets, mask, opts)
		if len(r.Grads) != len(paths) {
			panic(fmt.Sprintf("got %d gradients, want %d", len(r.Grads), len(paths)))
		}
		res := []*graph.Node{r.Norms, r.Factors}
		for _, p := range paths {
			res = append(res, r.Grads[p])
		}
		return res
	}, in, tg, mk)
	if err != nil {
		t.Fatal(err)
	}
	d := dutOut{norms: f64(tensors.MustCopyFlatData[float32](outs[0])), factors: f64(tensors.MustCopyFlatData[float32](outs[1]))}
	for i := range paths {
		d.grads = append(d.grads, f64(tensors.MustCopyFlatData[float32](outs[2+i])))
	}
	return d
}

// TestClippedGradientsMatchOneAtATime checks, against gradients computed one
// example at a time: (a) per-example norms, (b) the clipped summed gradient
// layer by layer, (c) every clipped contribution has norm <= C, (d) the
// padded row contributes exactly zero. For all weights and adapters only,
// with both norm methods.
func TestClippedGradientsMatchOneAtATime(t *testing.T) {
	requireBackend(t)
	cases := []struct {
		name string
		lora bool
		set  lm.TrainSet
	}{
		{"all/no-lora", false, lm.TrainAll},
		{"adapters", true, lm.TrainAdapters},
		{"all/lora", true, lm.TrainAll},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := tinyModel(t, tc.lora)
			in, tg, mk := batch(t, m)
			paths := trainablePathsOf(m, tc.set)
			ref := reference(t, m, paths, in, tg, mk)
			refNorm := make([]float64, tB)
			for b := range tB {
				refNorm[b] = norm(ref[b]...)
			}
			// (d) the padded row's one-at-a-time gradient is exactly zero.
			if refNorm[tB-1] != 0 {
				t.Fatalf("padded row has reference gradient norm %g", refNorm[tB-1])
			}
			// C between the smallest and largest real norm: some rows are
			// clipped, some not.
			lo, hi := math.Inf(1), 0.0
			for _, n := range refNorm[:tB-1] {
				lo, hi = math.Min(lo, n), math.Max(hi, n)
			}
			if lo == 0 || hi/lo < 1.01 {
				t.Fatalf("degenerate reference norms %v", refNorm)
			}
			C := (lo + hi) / 2
			for _, method := range []NormMethod{NormGhost, NormExplicit, NormAuto} {
				d := runClipped(t, m, paths, Options{Clip: C, Trainable: tc.set, Method: method}, in, tg, mk)
				// (a) norms.
				maxNormErr := 0.0
				for b := range tB {
					if refNorm[b] == 0 {
						if d.norms[b] != 0 || d.factors[b] != 1 {
							t.Fatalf("method %d: padded row %d: norm %g factor %g, want 0 and 1", method, b, d.norms[b], d.factors[b])
						}
						continue
					}
					maxNormErr = math.Max(maxNormErr, math.Abs(d.norms[b]-refNorm[b])/refNorm[b])
				}
				if maxNormErr > 1e-5 {
					t.Fatalf("method %d: norms %v, reference %v: max relative error %g", method, d.norms, refNorm, maxNormErr)
				}
				// (c) clipped contributions, with the factors the graph used.
				clipped, unclipped := 0, 0
				for b := range tB {
					c := d.factors[b]
					if want := math.Min(1, C/(refNorm[b]+1e-12)); math.Abs(c-want) > 1e-5*want {
						t.Fatalf("method %d: factor[%d] = %g, want %g", method, b, c, want)
					}
					if c < 1 {
						clipped++
					} else if refNorm[b] > 0 {
						unclipped++
					}
					if n := c * refNorm[b]; n > C+1e-6*math.Max(1, C) {
						t.Fatalf("method %d: example %d has clipped norm %g > C=%g", method, b, n, C)
					}
				}
				if clipped == 0 || unclipped == 0 {
					t.Fatalf("method %d: want both clipped and unclipped rows, factors %v", method, d.factors)
				}
				// (b) clipped sum, layer by layer. The key biases' exact
				// gradient is zero (softmax ignores a per-query constant), so
				// both sides are rounding noise there: the relative test uses
				// scale max(|want|, 1e-3 * largest |want| over all weights).
				wants := make([][]float64, len(paths))
				global := 0.0
				for i := range paths {
					want := make([]float64, len(d.grads[i]))
					for b := range tB {
						c := math.Min(1, C/(refNorm[b]+1e-12))
						for j, v := range ref[b][i] {
							want[j] += c * v
						}
					}
					for _, v := range want {
						global = math.Max(global, math.Abs(v))
					}
					wants[i] = want
				}
				maxGradErr := 0.0
				for i, p := range paths {
					diff, scale := 0.0, 0.0
					for j, w := range wants[i] {
						diff = math.Max(diff, math.Abs(d.grads[i][j]-w))
						scale = math.Max(scale, math.Abs(w))
					}
					if scale < 1e-3*global {
						scale = 1e-3 * global
					} else {
						maxGradErr = math.Max(maxGradErr, diff/scale)
					}
					if diff > 1e-5*scale {
						t.Fatalf("method %d: %s: clipped gradient differs by %g (scale %g)", method, p, diff, scale)
					}
				}
				t.Logf("method %d, C=%.4g, %d weights: max rel. error norms %.2e, clipped gradients %.2e", method, C, len(paths), maxNormErr, maxGradErr)
			}
		})
	}
}
