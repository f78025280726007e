// Package dpsgd implements DP-SGD for the generator (models/lm): per-example
// gradient norms computed from the model's taps (never by materialising B
// copies of the gradient, and never by clipping the aggregated gradient),
// per-example clipping, and the clipped summed gradient.
//
// # How it works
//
// For a batch of B examples with per-example losses L_b (lm.PerExampleLoss:
// the sum of an example's masked token losses), one backward pass of
// Σ_b L_b gives g = dL/dOutput for every tapped layer; since examples do not
// interact, g[b] is example b's gradient w.r.t. that layer's output. Each
// tap kind (see lm.LayerKind) then yields example b's weight gradient:
//
//	dense, LoRA A/B:  dW_b = Σ_t x[b,t]ᵀ g[b,t]          (outer-product form)
//	dense bias:       db_b = Σ_t g[b,t]
//	layer norm:       dgain_b = Σ_t x̂[b,t]·g[b,t], dbias_b = Σ_t g[b,t]
//	pos embedding:    dP_b[t] = g[b,t]
//	token embedding:  dE_b = Σ_t onehot(id[b,t])ᵀ g[b,t]  (outer-product form)
//	tied head:        dE_b += Σ_t g[b,t]ᵀ h[b,t]          (outer-product form)
//
// Outer-product contributions to the same weight (token embedding and tied
// head share the table) are concatenated along the time axis before the norm
// is taken, so the two parts are added per example BEFORE squaring. The
// squared Frobenius norm of Σ_t a[b,t]ᵀ c[b,t] is computed either with the
// ghost-norm identity ‖A_bᵀC_b‖² = ⟨A_bA_bᵀ, C_bC_bᵀ⟩ (two T×T Gram
// matrices per example; for the embedding, A_bA_bᵀ is the equal-token mask)
// or explicitly (einsum "bti,bto->bio", then the sum of squares), whichever
// costs fewer multiplications (NormAuto), or as forced by Options.Method.
//
// The per-example norm is the square root of the sum over all trainable
// weights. Clip factors are c_b = min(1, C/(norm_b + 1e-12)), held constant
// (StopGradient), and the clipped summed gradient Σ_b c_b·∇L_b is formed
// from the same taps, with no second backward pass: for an outer-product
// kind it is Σ_{b,t} (c_b·a[b,t])ᵀ c[b,t] (one matmul, the one a plain
// backward pass does for that weight, with the factor folded into the
// smaller operand), for the others the c-weighted sum over examples of the
// per-example terms above. A DP step therefore costs one forward, one
// backward to the layer outputs, the weight matmuls and the norms.
//
// Padded rows (mask all zero) have L_b = 0, zero output gradients, norm
// exactly 0 and contribute exactly zero.
//
// Build and test with GOEXPERIMENT=simd exported (see models/lm); under
// -race add -gcflags='github.com/gomlx/compute/...=-d=checkptr=0'.
//
// Poisson sampling with bucketed padding (PoissonBatch, PlanChunks) and the
// noised DP-SGD / DP-Adam step (Trainer) are in poisson.go and trainer.go.
// Privacy accounting is not implemented here.
package dpsgd

import (
	"fmt"
	"sort"
	"strings"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // graph-building code reads better unqualified
	"github.com/gomlx/gomlx/support/exceptions"

	"github.com/dpinstruct/dpinstruct/models/lm"
)

// NormMethod selects how the squared norm of an outer-product gradient
// Σ_t a[b,t]ᵀ c[b,t] is computed.
type NormMethod int

const (
	// NormAuto picks, per weight, the cheaper of NormGhost and NormExplicit.
	NormAuto NormMethod = iota
	// NormGhost uses Gram matrices: cost B·T²·(I+O).
	NormGhost
	// NormExplicit forms the per-example gradient [B, I, O]: cost B·T·I·O.
	NormExplicit
)

// Options configures ClippedGradients.
type Options struct {
	// Clip is the per-example L2 clipping bound C (> 0).
	Clip float64
	// Trainable selects the weights whose gradient is clipped and returned
	// (lm.TrainAll, lm.TrainBase or lm.TrainAdapters).
	Trainable lm.TrainSet
	// Method for outer-product norms (default NormAuto).
	Method NormMethod
}

// Result of ClippedGradients; all nodes live in the caller's graph.
type Result struct {
	// Grads maps every trainable weight's store path to Σ_b c_b·∇_w L_b
	// (same shape as the weight). Not noised, not divided by the batch size.
	Grads map[string]*Node
	// Norms is float32 [B]: each example's gradient norm over the trainable
	// set, before clipping.
	Norms *Node
	// Factors is float32 [B]: the clip factors c_b (constants).
	Factors *Node
	// Loss is float32 [B]: the per-example losses L_b.
	Loss *Node
}

// Trains reports whether the weight at store path p is in the set s
// (mirrors lm's rule: TrainBase = "/base/...", TrainAdapters = "/lora/...",
// TrainAll = both).
func Trains(s lm.TrainSet, p string) bool {
	switch s {
	case lm.TrainBase:
		return strings.HasPrefix(p, lm.BaseScope+"/")
	case lm.TrainAdapters:
		return strings.HasPrefix(p, lm.LoRAScope+"/")
	default:
		return lm.IsWeight(p)
	}
}

// ClippedGradients builds, in graph g (which must belong to a model.Exec
// created on m.Store()), the forward pass on tokens [B,T] int32, the
// per-example losses against targets [B,T] int32 with mask [B,T] float32,
// the per-example gradient norms over the trainable set, and the clipped
// summed gradient. It panics (GoMLX style, inside graph building) on bad
// options or if a trainable weight is not covered by a tap.
func ClippedGradients(m *lm.Model, g *Graph, tokens, targets, mask *Node, opts Options) *Result {
	if opts.Clip <= 0 {
		exceptions.Panicf("dpsgd: clip bound must be > 0, got %g", opts.Clip)
	}
	taps := &lm.Taps{}
	logits := m.Logits(g, tokens, taps)
	perEx := lm.PerExampleLoss(logits, targets, mask)
	need, outGrads := tapGradients(taps, perEx, opts.Trainable)
	norms := normsFromTaps(m, need, outGrads, opts.Trainable, opts.Method)

	factors := StopGradient(MinScalar(MulScalar(Inverse(AddScalar(norms, 1e-12)), opts.Clip), 1.0))
	paths := trainablePaths(m, opts.Trainable)
	sums := clippedSums(m, need, outGrads, factors, opts.Trainable)
	res := &Result{Grads: make(map[string]*Node, len(paths)), Norms: norms, Factors: factors, Loss: perEx}
	for _, p := range paths {
		gr, ok := sums[p]
		if !ok {
			exceptions.Panicf("dpsgd: trainable weight %q is not covered by any tap", p)
		}
		res.Grads[p] = gr
	}
	return res
}

// clippedSums returns, per trainable weight path, Σ_b c_b·∇_w L_b formed
// from the taps' inputs and output gradients (see the package comment).
func clippedSums(m *lm.Model, need []*lm.Tap, outGrads []*Node, factors *Node, set lm.TrainSet) map[string]*Node {
	sums := map[string]*Node{}
	add := func(p string, x *Node) {
		if prev, ok := sums[p]; ok {
			x = Add(prev, x)
		}
		sums[p] = x
	}
	// weighted: Σ_b c_b·x[b, ...] for x [B, ...].
	weighted := func(x *Node) *Node {
		B := x.Shape().Dimensions[0]
		return Einsum("b,bi->i", factors, Reshape(x, B, x.Shape().Size()/B))
	}
	// scaleRows: c_b·x[b, ...], flattened to [B*T, F].
	scaleRows := func(x *Node) *Node {
		x = flatten3(x)
		dims := x.Shape().Dimensions
		x = Mul(x, BroadcastToDims(Reshape(factors, dims[0], 1, 1), dims...))
		return Reshape(x, dims[0]*dims[1], dims[2])
	}
	rows := func(x *Node) *Node {
		x = flatten3(x)
		dims := x.Shape().Dimensions
		return Reshape(x, dims[0]*dims[1], dims[2])
	}
	// outerSum: Σ_{b,t} c_b·a[b,t]ᵀ c[b,t], [I, O]. The operand with fewer
	// features takes the factor and goes on the left: the Go backend's
	// matmul wants the left operand transposed to [features, B*T] and
	// takes the right one as it is, so the narrow one is the one copied
	// (for the tied head, [B*T, Width] rather than [B*T, vocab]); the
	// small [O, I] result is transposed back when c was the narrow one.
	outerSum := func(a, c *Node) *Node {
		if a.Shape().Dimensions[a.Rank()-1] <= c.Shape().Dimensions[c.Rank()-1] {
			return DotGeneral(scaleRows(a), []int{0}, nil, rows(c), []int{0}, nil)
		}
		return Transpose(DotGeneral(scaleRows(c), []int{0}, nil, rows(a), []int{0}, nil), 0, 1)
	}
	weightShape := func(p string) []int { return m.Store().GetVariable(p).Shape().Dimensions }
	for i, t := range need {
		gOut := outGrads[i]
		wTrain := Trains(set, t.Weight)
		bTrain := t.Bias != "" && Trains(set, t.Bias)
		switch t.Kind {
		case lm.KindDense, lm.KindLoRAA, lm.KindLoRAB:
			if wTrain {
				add(t.Weight, outerSum(t.Input, gOut))
			}
			if bTrain {
				add(t.Bias, weighted(ReduceSum(gOut, 1)))
			}
		case lm.KindEmbedding:
			if wTrain {
				ids := t.Input
				if ids.DType() != dtypes.Int32 {
					ids = ConvertDType(ids, dtypes.Int32)
				}
				n := ids.Shape().Size()
				add(t.Weight, ScatterSum(Zeros(gOut.Graph(), shapes.Make(gOut.DType(), weightShape(t.Weight)...)),
					Reshape(ids, n, 1), scaleRows(gOut), false, false))
			}
		case lm.KindTiedHead:
			if wTrain {
				add(t.Weight, outerSum(gOut, t.Input)) // dE = Σ c_b g[b,t]ᵀ h[b,t]
			}
		case lm.KindPosEmbedding:
			if wTrain {
				// Σ_b c_b g[b,t] for t < T; rows T.. of the table get nothing.
				dims := gOut.Shape().Dimensions
				T := dims[1]
				sum := Reshape(weighted(gOut), T, dims[2])
				if ctx := weightShape(t.Weight)[0]; ctx > T {
					sum = Concatenate([]*Node{sum, Zeros(gOut.Graph(), shapes.Make(gOut.DType(), ctx-T, dims[2]))}, 0)
				}
				add(t.Weight, sum)
			}
		case lm.KindLayerNorm:
			if wTrain {
				add(t.Weight, weighted(ReduceSum(Mul(t.Input, gOut), 1)))
			}
			if bTrain {
				add(t.Bias, weighted(ReduceSum(gOut, 1)))
			}
		default:
			exceptions.Panicf("dpsgd: tap %q has unsupported kind %s", t.Name, t.Kind)
		}
	}
	return sums
}

func trainablePaths(m *lm.Model, set lm.TrainSet) []string {
	var out []string
	for _, p := range m.WeightPaths(false) {
		if Trains(set, p) {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		exceptions.Panicf("dpsgd: no trainable weights for set %s", set)
	}
	sort.Strings(out)
	return out
}

// outer is one outer-product contribution Σ_t a[b,t]ᵀ c[b,t] to a weight.
// For a token embedding, a is the one-hot of ids [B,T] and is never built
// (ids is set, a is nil): its Gram blocks are an equality mask and a gather.
type outer struct{ a, c, ids *Node }

// features is the width of a (the vocabulary for a one-hot part).
func (o outer) features(vocab int) int {
	if o.ids != nil {
		return vocab
	}
	return o.a.Shape().Dimensions[o.a.Rank()-1]
}

// PerExampleNorms returns float32 [B]: for each example b, the L2 norm of
// ∇L_b over the weights of set, from the taps filled by m.Logits and the
// per-example losses perEx [B] built from those logits. It takes one
// backward pass (gradients w.r.t. the needed taps' outputs). Every trainable
// weight must be covered by a tap (it panics otherwise).
func PerExampleNorms(m *lm.Model, taps *lm.Taps, perEx *Node, set lm.TrainSet, method NormMethod) *Node {
	need, grads := tapGradients(taps, perEx, set)
	return normsFromTaps(m, need, grads, set, method)
}

// tapGradients returns the taps with a trainable weight or bias and, for
// each, the gradient of Σ_b perEx[b] w.r.t. its output (one backward pass
// to the layer outputs; no weight gradient is formed).
func tapGradients(taps *lm.Taps, perEx *Node, set lm.TrainSet) ([]*lm.Tap, []*Node) {
	var need []*lm.Tap
	for _, t := range taps.List {
		if Trains(set, t.Weight) || (t.Bias != "" && Trains(set, t.Bias)) {
			need = append(need, t)
		}
	}
	if len(need) == 0 {
		exceptions.Panicf("dpsgd: no tapped layer is trainable under %s", set)
	}
	outs := make([]*Node, len(need))
	for i, t := range need {
		outs[i] = t.Output
	}
	return need, Gradient(ReduceAllSum(perEx), outs...)
}

// normsFromTaps is PerExampleNorms from tapGradients' results.
func normsFromTaps(m *lm.Model, need []*lm.Tap, grads []*Node, set lm.TrainSet, method NormMethod) *Node {
	outers := map[string][]outer{} // weight path -> contributions
	var order []string             // deterministic order of outers
	var sq []*Node                 // [B] squared-norm terms
	covered := map[string]bool{}
	addOuter := func(p string, a, c *Node) {
		if _, ok := outers[p]; !ok {
			order = append(order, p)
		}
		outers[p] = append(outers[p], outer{a: a, c: c})
	}
	// sumSq: per-example sum of squares of x [B, ...].
	sumSq := func(x *Node) *Node {
		axes := make([]int, x.Rank()-1)
		for i := range axes {
			axes[i] = i + 1
		}
		return ReduceSum(Square(x), axes...)
	}
	V := m.Config().VocabSize
	for i, t := range need {
		gOut := grads[i]
		wTrain := Trains(set, t.Weight)
		bTrain := t.Bias != "" && Trains(set, t.Bias)
		if wTrain {
			covered[t.Weight] = true
		}
		if bTrain {
			covered[t.Bias] = true
		}
		switch t.Kind {
		case lm.KindDense, lm.KindLoRAA, lm.KindLoRAB:
			if wTrain {
				addOuter(t.Weight, t.Input, gOut)
			}
			if bTrain {
				sq = append(sq, sumSq(ReduceSum(gOut, 1))) // Σ_t g[b,t]
			}
		case lm.KindEmbedding:
			if wTrain {
				ids := t.Input
				if ids.DType() != dtypes.Int32 {
					ids = ConvertDType(ids, dtypes.Int32)
				}
				if _, ok := outers[t.Weight]; !ok {
					order = append(order, t.Weight)
				}
				outers[t.Weight] = append(outers[t.Weight], outer{c: gOut, ids: ids})
			}
		case lm.KindTiedHead:
			if wTrain {
				addOuter(t.Weight, gOut, t.Input) // dE_b = Σ_t g[b,t]ᵀ h[b,t]
			}
		case lm.KindPosEmbedding:
			if wTrain {
				sq = append(sq, sumSq(gOut))
			}
		case lm.KindLayerNorm:
			if wTrain {
				sq = append(sq, sumSq(ReduceSum(Mul(t.Input, gOut), 1)))
			}
			if bTrain {
				sq = append(sq, sumSq(ReduceSum(gOut, 1)))
			}
		default:
			exceptions.Panicf("dpsgd: tap %q has unsupported kind %s", t.Name, t.Kind)
		}
	}
	for _, p := range order {
		sq = append(sq, outerNormSq(outers[p], method, V))
	}
	for _, p := range trainablePaths(m, set) {
		if !covered[p] {
			exceptions.Panicf("dpsgd: trainable weight %q is not covered by any tap", p)
		}
	}
	total := sq[0]
	for _, s := range sq[1:] {
		total = Add(total, s)
	}
	// Rounding in the ghost identity can give tiny negatives.
	return Sqrt(MaxScalar(total, 0.0))
}

// outerNormSq returns [B]: ‖Σ_k Σ_t a_k[b,t]ᵀ c_k[b,t]‖²_F, where every a_k
// is [B,T_k,I] (or the one-hot of ids [B,T_k] over I = vocab) and every c_k
// is [B,T_k,O] (rank-3; higher ranks are flattened into the time axis).
//
// Ghost form: with A_kl = a_k a_lᵀ and C_kl = c_k c_lᵀ (per example),
// the norm² is Σ_k Σ_l ⟨A_kl, C_kl⟩, taken block by block so parts are never
// concatenated; a one-hot block is an equality mask of ids (one-hot with
// one-hot) or a gather of a at the ids (dense with one-hot), never a
// [B,T,vocab] tensor.
func outerNormSq(parts []outer, method NormMethod, vocab int) *Node {
	T, I, O := 0, parts[0].features(vocab), 0
	for i, p := range parts {
		parts[i].c = flatten3(p.c)
		if p.a != nil {
			parts[i].a = flatten3(p.a)
		}
		T += parts[i].c.Shape().Dimensions[1]
		O = parts[i].c.Shape().Dimensions[2]
	}
	if method == NormAuto {
		method = NormExplicit
		if T*(I+O) < I*O {
			method = NormGhost
		}
	}
	if method == NormGhost {
		var total *Node
		for k := range parts {
			for l := k; l < len(parts); l++ {
				term := ReduceSum(Mul(gramA(parts[k], parts[l]), Einsum("bto,bso->bts", parts[k].c, parts[l].c)), 1, 2)
				if l != k {
					term = MulScalar(term, 2) // the (l, k) block is the transpose
				}
				if total == nil {
					total = term
				} else {
					total = Add(total, term)
				}
			}
		}
		return total
	}
	as := make([]*Node, len(parts))
	cs := make([]*Node, len(parts))
	for i, p := range parts {
		as[i], cs[i] = p.a, p.c
		if p.ids != nil {
			as[i] = OneHot(p.ids, vocab, p.c.DType())
		}
	}
	a, c := as[0], cs[0]
	if len(parts) > 1 {
		a, c = Concatenate(as, 1), Concatenate(cs, 1)
	}
	w := Einsum("bti,bto->bio", a, c)
	return ReduceSum(Square(w), 1, 2)
}

// gramA returns a_k a_lᵀ [B, T_k, T_l] for two parts, one-hot ones included.
func gramA(k, l outer) *Node {
	switch {
	case k.ids == nil && l.ids == nil:
		return Einsum("bti,bsi->bts", k.a, l.a)
	case k.ids != nil && l.ids != nil:
		B, Tk, Tl := k.ids.Shape().Dimensions[0], k.ids.Shape().Dimensions[1], l.ids.Shape().Dimensions[1]
		eq := Equal(BroadcastToDims(Reshape(k.ids, B, Tk, 1), B, Tk, Tl), BroadcastToDims(Reshape(l.ids, B, 1, Tl), B, Tk, Tl))
		return ConvertDType(eq, k.c.DType())
	case k.ids != nil:
		return Transpose(gramA(l, k), 1, 2)
	}
	// k dense, l one-hot: A[b,t,s] = a_k[b,t,ids_l[b,s]].
	g := k.a.Graph()
	B, Tk, Tl := k.a.Shape().Dimensions[0], k.a.Shape().Dimensions[1], l.ids.Shape().Dimensions[1]
	idx := shapes.Make(dtypes.Int32, B, Tk, Tl, 1)
	coords := Concatenate([]*Node{
		Iota(g, idx, 0), Iota(g, idx, 1),
		BroadcastToDims(Reshape(l.ids, B, 1, Tl, 1), B, Tk, Tl, 1),
	}, -1)
	return Gather(k.a, coords)
}

// flatten3 reshapes [B, d1, ..., dk, F] to [B, d1*...*dk, F].
func flatten3(x *Node) *Node {
	dims := x.Shape().Dimensions
	switch {
	case len(dims) == 3:
		return x
	case len(dims) < 3:
		panic(fmt.Sprintf("dpsgd: tap node of shape %s has no time axis", x.Shape()))
	}
	B, F := dims[0], dims[len(dims)-1]
	return Reshape(x, B, x.Shape().Size()/(B*F), F)
}
