package llama2c

import (
	"fmt"
	"math"
)

// rmsEps is run.c's RMSNorm epsilon.
const rmsEps = 1e-5

// ropeTheta is run.c's RoPE base.
const ropeTheta = 10000

// State is the scratch and KV cache of one sequence, as run.c's RunState.
type State struct {
	x, xb, xb2   []float32 // [Dim]
	hb, hb2      []float32 // [Hidden]
	q            []float32 // [Dim]
	att          []float32 // [Heads, SeqLen]
	logits       []float32 // [Vocab]
	keys, values []float32 // [Layers, SeqLen, KVDim]
	cfg          Config
}

// NewState allocates the state of one sequence for c.
func (c *Checkpoint) NewState() *State {
	cfg := c.Config
	kv := cfg.Layers * cfg.SeqLen * cfg.KVDim()
	return &State{
		x: make([]float32, cfg.Dim), xb: make([]float32, cfg.Dim), xb2: make([]float32, cfg.Dim),
		hb: make([]float32, cfg.Hidden), hb2: make([]float32, cfg.Hidden),
		q:   make([]float32, cfg.Dim),
		att: make([]float32, cfg.Heads*cfg.SeqLen), logits: make([]float32, cfg.Vocab),
		keys: make([]float32, kv), values: make([]float32, kv),
		cfg: cfg,
	}
}

// Forward runs token at position pos through the model, appending its keys
// and values to s's cache, and returns the logits (a slice of s, valid
// until the next call). Positions must be fed in order from 0, as in
// run.c. It panics on a token or position out of range, or a State made
// for another Config: those are caller bugs, not input errors.
func (c *Checkpoint) Forward(s *State, token, pos int) []float32 {
	p := c.Config
	if s.cfg != p {
		panic("llama2c: Forward with a State of another Config")
	}
	if token < 0 || token >= p.Vocab || pos < 0 || pos >= p.SeqLen {
		panic(fmt.Sprintf("llama2c: Forward(token %d, pos %d) out of range (vocab %d, seq_len %d)", token, pos, p.Vocab, p.SeqLen))
	}
	dim, hidden, hs, kvDim := p.Dim, p.Hidden, p.HeadSize(), p.KVDim()
	kvMul := p.Heads / p.KVHeads // query heads sharing one key/value head
	x := s.x
	copy(x, c.TokenEmbedding[token*dim:(token+1)*dim])

	for l := range p.Layers {
		rmsnorm(s.xb, x, c.RMSAtt[l*dim:(l+1)*dim])

		// This position's key and value go straight into the cache.
		loff := l * p.SeqLen * kvDim
		k := s.keys[loff+pos*kvDim : loff+(pos+1)*kvDim]
		v := s.values[loff+pos*kvDim : loff+(pos+1)*kvDim]
		matmul(s.q, s.xb, c.WQ[l*dim*dim:(l+1)*dim*dim], dim, dim)
		matmul(k, s.xb, c.WK[l*dim*kvDim:(l+1)*dim*kvDim], dim, kvDim)
		matmul(v, s.xb, c.WV[l*dim*kvDim:(l+1)*dim*kvDim], dim, kvDim)

		// RoPE, run.c's way: pairs (i, i+1) across the whole vector, the
		// frequency from i's offset within its head; keys are only kvDim
		// wide.
		for i := 0; i < dim; i += 2 {
			headDim := i % hs
			freq := float32(1.0 / math.Pow(ropeTheta, float64(float32(headDim)/float32(hs))))
			val := float32(pos) * freq
			fcr, fci := float32(math.Cos(float64(val))), float32(math.Sin(float64(val)))
			rotate(s.q, i, fcr, fci)
			if i < kvDim {
				rotate(k, i, fcr, fci)
			}
		}

		// Multi-head attention over positions 0..pos.
		scale := float32(math.Sqrt(float64(hs)))
		for h := range p.Heads {
			q := s.q[h*hs : (h+1)*hs]
			att := s.att[h*p.SeqLen : h*p.SeqLen+pos+1]
			koff := (h / kvMul) * hs
			for t := 0; t <= pos; t++ {
				kt := s.keys[loff+t*kvDim+koff : loff+t*kvDim+koff+hs]
				var score float32
				for i := range hs {
					score += q[i] * kt[i]
				}
				att[t] = score / scale
			}
			softmax(att)
			xb := s.xb[h*hs : (h+1)*hs]
			clear(xb)
			for t := 0; t <= pos; t++ {
				vt := s.values[loff+t*kvDim+koff : loff+t*kvDim+koff+hs]
				a := att[t]
				for i := range hs {
					xb[i] += a * vt[i]
				}
			}
		}
		matmul(s.xb2, s.xb, c.WO[l*dim*dim:(l+1)*dim*dim], dim, dim)
		for i := range dim {
			x[i] += s.xb2[i]
		}

		// SwiGLU feed-forward: w2(silu(w1 x) * w3 x).
		rmsnorm(s.xb, x, c.RMSFFN[l*dim:(l+1)*dim])
		matmul(s.hb, s.xb, c.W1[l*dim*hidden:(l+1)*dim*hidden], dim, hidden)
		matmul(s.hb2, s.xb, c.W3[l*dim*hidden:(l+1)*dim*hidden], dim, hidden)
		for i := range hidden {
			val := s.hb[i]
			val *= float32(1.0 / (1.0 + math.Exp(float64(-val))))
			s.hb[i] = val * s.hb2[i]
		}
		matmul(s.xb, s.hb, c.W2[l*dim*hidden:(l+1)*dim*hidden], hidden, dim)
		for i := range dim {
			x[i] += s.xb[i]
		}
	}
	rmsnorm(x, x, c.RMSFinal)
	matmul(s.logits, x, c.WCls, dim, p.Vocab)
	return s.logits
}

func rotate(vec []float32, i int, fcr, fci float32) {
	v0, v1 := vec[i], vec[i+1]
	vec[i] = v0*fcr - v1*fci
	vec[i+1] = v0*fci + v1*fcr
}

// rmsnorm sets o = weight * x / rms(x); o may alias x.
func rmsnorm(o, x, weight []float32) {
	var ss float32
	for _, v := range x {
		ss += v * v
	}
	ss /= float32(len(x))
	ss += rmsEps
	ss = float32(1 / math.Sqrt(float64(ss)))
	for j := range x {
		o[j] = weight[j] * (ss * x[j])
	}
}

// softmax normalises x in place, subtracting the max for stability.
func softmax(x []float32) {
	maxV := x[0]
	for _, v := range x[1:] {
		maxV = max(maxV, v)
	}
	var sum float32
	for i, v := range x {
		x[i] = float32(math.Exp(float64(v - maxV)))
		sum += x[i]
	}
	for i := range x {
		x[i] /= sum
	}
}

// matmul sets xout = W @ x for W stored (d, n) row-major (run.c's
// convention: each output is one row of W dotted with x).
func matmul(xout, x, w []float32, n, d int) {
	for i := range d {
		row := w[i*n : (i+1)*n]
		var val float32
		for j, v := range row {
			val += v * x[j]
		}
		xout[i] = val
	}
}
