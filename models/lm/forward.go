package lm

import (
	"fmt"
	"math"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/compute/shapes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck // graph-building code reads better unqualified
	"github.com/gomlx/gomlx/support/exceptions"
)

// LayerKind says how a tapped layer maps its input to its output, and so
// how per-example gradients of its weights follow from (Input, dL/dOutput).
// Shapes below: B examples, T positions; "g" is the gradient of the loss
// w.r.t. Output (obtain it with graph.Gradient(loss, tap.Output)).
type LayerKind int

const (
	// KindDense: Output[b,t,:] = Input[b,t,:]·W + bias, W [in, out].
	// Per-example: dW_b = Σ_t Input[b,t]ᵀ g[b,t]; dbias_b = Σ_t g[b,t].
	KindDense LayerKind = iota
	// KindLoRAA: Output = Input·A, A [in, r], no bias.
	KindLoRAA
	// KindLoRAB: Output = Input·B, B [r, out], no bias. The model adds
	// Scale()*Output to the base projection, so g already includes the scale.
	KindLoRAB
	// KindEmbedding: Output[b,t,:] = E[Input[b,t], :], E [vocab, d], Input
	// int32 token ids [B, T]. Per-example: dE_b[v] = Σ_{t: id=v} g[b,t].
	KindEmbedding
	// KindPosEmbedding: Output[b,t,:] = P[t,:] (P [context, d]), Input nil.
	// Per-example: dP_b[t] = g[b,t] for t < T.
	KindPosEmbedding
	// KindLayerNorm: Output = Input*gain + bias, Input is the normalised x̂
	// [B,T,d]. Per-example: dgain_b = Σ_t g[b,t]*x̂[b,t]; dbias_b = Σ_t g[b,t].
	KindLayerNorm
	// KindTiedHead: Output[b,t,:] = Input[b,t,:]·Eᵀ with E the token-embedding
	// table [vocab, d] (Weight names it). Per-example: dE_b = Σ_t g[b,t]ᵀ
	// Input[b,t] (a [vocab, d] matrix). It adds to the KindEmbedding gradient.
	KindTiedHead
)

func (k LayerKind) String() string {
	switch k {
	case KindDense:
		return "dense"
	case KindLoRAA:
		return "lora_a"
	case KindLoRAB:
		return "lora_b"
	case KindEmbedding:
		return "embedding"
	case KindPosEmbedding:
		return "pos_embedding"
	case KindLayerNorm:
		return "layer_norm"
	case KindTiedHead:
		return "tied_head"
	}
	return fmt.Sprintf("LayerKind(%d)", int(k))
}

// Tap records, for one parameterised layer, the graph nodes a DP-SGD
// implementation needs: the layer's input activations and its output (take
// graph.Gradient(loss, Output) for the output gradient). Input and Output
// always keep the example axis first ([B, T, ...]), so per-example
// quantities are reductions over T.
type Tap struct {
	// Name, e.g. "layer01/attn/q", "layer01/attn/q/lora_A", "tok_emb".
	Name string
	Kind LayerKind
	// Weight is the store path of the weight matrix (or table / gain).
	Weight string
	// Bias is the store path of the bias, "" when the layer has none.
	Bias   string
	Input  *Node
	Output *Node
}

// Taps collects Tap records while a graph is built. Pass a non-nil *Taps to
// Model.Logits to fill it; List is in forward order.
type Taps struct {
	List []*Tap
}

func (ts *Taps) add(t *Tap) {
	if ts != nil {
		ts.List = append(ts.List, t)
	}
}

// Adapters returns the taps of LoRA layers only.
func (ts *Taps) Adapters() []*Tap {
	var out []*Tap
	for _, t := range ts.List {
		if t.Kind == KindLoRAA || t.Kind == KindLoRAB {
			out = append(out, t)
		}
	}
	return out
}

// Outputs returns the Output node of every tap (same order as List), handy
// for a single graph.Gradient(loss, outputs...) call.
func (ts *Taps) Outputs() []*Node {
	out := make([]*Node, len(ts.List))
	for i, t := range ts.List {
		out[i] = t.Output
	}
	return out
}

// fwd carries the state of one graph build.
type fwd struct {
	m    *Model
	g    *Graph
	taps *Taps
}

func (f *fwd) v(path string) *Node {
	v := f.m.store.GetVariable(path)
	if v == nil {
		exceptions.Panicf("lm: variable %q missing from the store", path)
	}
	return v.NodeValue(f.g)
}

// bcastTo broadcasts y to x's shape, adding leading axes as needed (the
// pure-Go backend wants explicit broadcasting).
func bcastTo(y, x *Node) *Node {
	if y.Shape().Equal(x.Shape()) {
		return y
	}
	if y.Rank() < x.Rank() {
		y = ExpandLeftToRank(y, x.Rank())
	}
	return BroadcastToDims(y, x.Shape().Dimensions...)
}

// matmulLast multiplies the last axis of x ([..., in]) by w ([in, out]).
func matmulLast(x, w *Node) *Node {
	dims := x.Shape().Dimensions
	in := dims[len(dims)-1]
	n := x.Shape().Size() / in
	y := MatMul(Reshape(x, n, in), w)
	outDims := append(append([]int(nil), dims[:len(dims)-1]...), w.Shape().Dimensions[1])
	return Reshape(y, outDims...)
}

// dense: y = x·W + b, tapped.
func (f *fwd) dense(name, scope string, x *Node) *Node {
	w, b := f.v(scope+"/weights"), f.v(scope+"/biases")
	y := matmulLast(x, w)
	y = Add(y, bcastTo(b, y))
	f.taps.add(&Tap{Name: name, Kind: KindDense, Weight: scope + "/weights", Bias: scope + "/biases", Input: x, Output: y})
	return y
}

// projection: an attention projection with an optional LoRA adapter:
// y = x·W + b + Scale·(x·A)·B.
func (f *fwd) projection(layer int, p string, x *Node) *Node {
	name := fmt.Sprintf("layer%02d/attn/%s", layer, p)
	y := f.dense(name, LayerPath(layer)+"/attn/"+p, x)
	lora := f.m.cfg.LoRA
	if !lora.Has(p) {
		return y
	}
	lp := LoRAPath(layer, p)
	u := matmulLast(x, f.v(lp+"/A"))
	f.taps.add(&Tap{Name: name + "/lora_A", Kind: KindLoRAA, Weight: lp + "/A", Input: x, Output: u})
	z := matmulLast(u, f.v(lp+"/B"))
	f.taps.add(&Tap{Name: name + "/lora_B", Kind: KindLoRAB, Weight: lp + "/B", Input: u, Output: z})
	return Add(y, MulScalar(z, lora.Scale()))
}

// layerNorm over the last axis, written out so x̂ is visible. Uses
// Inverse(Sqrt(.)) because Rsqrt has no gradient in GoMLX.
func (f *fwd) layerNorm(name, scope string, x *Node) *Node {
	mean := ReduceAndKeep(x, ReduceMean, -1)
	xc := Sub(x, bcastTo(mean, x))
	variance := ReduceAndKeep(Square(xc), ReduceMean, -1)
	inv := Inverse(Sqrt(AddScalar(variance, f.m.cfg.LayerNormEpsilon)))
	xhat := Mul(xc, bcastTo(inv, xc))
	gain, bias := f.v(scope+"/gain"), f.v(scope+"/bias")
	y := Add(Mul(xhat, bcastTo(gain, xhat)), bcastTo(bias, xhat))
	f.taps.add(&Tap{Name: name, Kind: KindLayerNorm, Weight: scope + "/gain", Bias: scope + "/bias", Input: xhat, Output: y})
	return y
}

// gelu, tanh approximation (GPT-2).
func gelu(x *Node) *Node {
	c := math.Sqrt(2 / math.Pi)
	inner := MulScalar(Add(x, MulScalar(Mul(Square(x), x), 0.044715)), c)
	return Mul(MulScalar(x, 0.5), OnePlus(Tanh(inner)))
}

func (f *fwd) mlp(layer int, x *Node) *Node {
	lp := LayerPath(layer)
	h := f.dense(fmt.Sprintf("layer%02d/mlp/up", layer), lp+"/mlp/up", x)
	h = gelu(h)
	return f.dense(fmt.Sprintf("layer%02d/mlp/down", layer), lp+"/mlp/down", h)
}

// head maps final hidden states [..., d] to logits [..., vocab].
func (f *fwd) head(x *Node) *Node {
	if f.m.cfg.TiedEmbeddings {
		emb := f.v(pathTokEmb)
		dims := x.Shape().Dimensions
		d := dims[len(dims)-1]
		n := x.Shape().Size() / d
		y := Einsum("nd,vd->nv", Reshape(x, n, d), emb)
		y = Reshape(y, append(append([]int(nil), dims[:len(dims)-1]...), f.m.cfg.VocabSize)...)
		f.taps.add(&Tap{Name: "head", Kind: KindTiedHead, Weight: pathTokEmb, Input: x, Output: y})
		return y
	}
	y := matmulLast(x, f.v(pathHead))
	f.taps.add(&Tap{Name: "head", Kind: KindDense, Weight: pathHead, Input: x, Output: y})
	return y
}

// Logits builds the full forward pass: tokens int32 [B, T] (T <= Context) ->
// logits float32 [B, T, VocabSize], with causal attention. If taps is not
// nil it is filled with one Tap per parameterised layer.
//
// g must belong to a model.Exec created on m.Store() (the variables are read
// with Variable.NodeValue). This is the building block for custom training
// steps (DP-SGD).
func (m *Model) Logits(g *Graph, tokens *Node, taps *Taps) *Node {
	f := &fwd{m: m, g: g, taps: taps}
	return f.head(f.hidden(tokens))
}

// Hidden returns the final hidden states, float32 [B, T, Width], after the
// last layer norm: what the head maps to logits. Embeddings pool them.
func (m *Model) Hidden(g *Graph, tokens *Node) *Node {
	f := &fwd{m: m, g: g}
	return f.hidden(tokens)
}

func (f *fwd) hidden(tokens *Node) *Node {
	m, g, taps := f.m, f.g, f.taps
	c := m.cfg
	if tokens.Rank() != 2 {
		exceptions.Panicf("lm: tokens must be [batch, time], got %s", tokens.Shape())
	}
	B, T := tokens.Shape().Dimensions[0], tokens.Shape().Dimensions[1]
	if T > c.Context {
		exceptions.Panicf("lm: sequence length %d exceeds context %d", T, c.Context)
	}
	if tokens.DType() != dtypes.Int32 {
		tokens = ConvertDType(tokens, dtypes.Int32)
	}
	d, H, Dh := c.Width, c.Heads, c.HeadDim()

	tokE := Gather(f.v(pathTokEmb), InsertAxes(tokens, -1)) // [B,T,d]
	taps.add(&Tap{Name: "tok_emb", Kind: KindEmbedding, Weight: pathTokEmb, Input: tokens, Output: tokE})
	posE := BroadcastToDims(InsertAxes(Slice(f.v(pathPosEmb), AxisRange(0, T)), 0), B, T, d)
	taps.add(&Tap{Name: "pos_emb", Kind: KindPosEmbedding, Weight: pathPosEmb, Output: posE})
	x := Add(tokE, posE)

	// Causal mask as an additive bias [T(q), T(k)]: 0 where k <= q, -1e9 above.
	causal := LowerTriangular(g, T) // bool
	maskBias := Where(causal, BroadcastToDims(ScalarZero(g, dtypes.Float32), T, T), BroadcastToDims(Scalar(g, dtypes.Float32, -1e9), T, T))
	maskBias = BroadcastToDims(Reshape(maskBias, 1, 1, T, T), B, H, T, T)
	scale := 1 / math.Sqrt(float64(Dh))

	for i := range c.Layers {
		lp := LayerPath(i)
		h := f.layerNorm(fmt.Sprintf("layer%02d/ln1", i), lp+"/ln1", x)
		q := Reshape(f.projection(i, "q", h), B, T, H, Dh)
		k := Reshape(f.projection(i, "k", h), B, T, H, Dh)
		v := Reshape(f.projection(i, "v", h), B, T, H, Dh)
		scores := MulScalar(Einsum("bqhd,bkhd->bhqk", q, k), scale)
		scores = Add(scores, maskBias)
		probs := Softmax(scores, -1)
		ctx := Einsum("bhqk,bkhd->bqhd", probs, v)
		o := f.projection(i, "o", Reshape(ctx, B, T, d))
		x = Add(x, o)
		h2 := f.layerNorm(fmt.Sprintf("layer%02d/ln2", i), lp+"/ln2", x)
		x = Add(x, f.mlp(i, h2))
	}
	return f.layerNorm("ln_f", pathLNf, x)
}

// TokenLogProbs returns log p(target) per position, float32 [B, T]:
// logits[target] - logsumexp(logits). The target's logit is gathered, not
// picked with a one-hot mask over the vocabulary: the logits are the
// largest tensor of a training step ([B, T, V]), and every full pass over
// them (building the one-hot, multiplying, reducing, and their gradients)
// costs as much as a small matmul.
func TokenLogProbs(logits, targets *Node) *Node {
	g := logits.Graph()
	dims := logits.Shape().Dimensions
	V := dims[len(dims)-1]
	n := logits.Shape().Size() / V
	rowShape := dims[:len(dims)-1]
	flat := Reshape(logits, n, V)
	if targets.DType() != dtypes.Int32 {
		targets = ConvertDType(targets, dtypes.Int32)
	}
	rows := Iota(g, shapes.Make(dtypes.Int32, n, 1), 0)
	picked := Gather(flat, Concatenate([]*Node{rows, Reshape(targets, n, 1)}, -1), true) // [n]
	mx := StopGradient(ReduceAndKeep(flat, ReduceMax, -1))                               // [n, 1]
	sumExp := ReduceSum(Exp(Sub(flat, BroadcastToDims(mx, n, V))), -1)
	lse := Add(Log(sumExp), Reshape(mx, n))
	return Reshape(Sub(picked, lse), rowShape...)
}

// PerExampleLoss returns the summed next-token negative log-likelihood of
// each example over its non-pad positions, float32 [B]; mask is float32
// [B, T] (1 for real targets, 0 for padding).
func PerExampleLoss(logits, targets, mask *Node) *Node {
	return Neg(ReduceSum(Mul(TokenLogProbs(logits, targets), mask), -1))
}

// MeanTokenLoss is the mean negative log-likelihood over non-pad positions
// (a scalar); an all-pad batch gives 0.
func MeanTokenLoss(logits, targets, mask *Node) *Node {
	total := ReduceAllSum(PerExampleLoss(logits, targets, mask))
	count := ReduceAllSum(mask)
	return Div(total, Max(count, OnesLike(count)))
}
