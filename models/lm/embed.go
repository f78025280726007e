package lm

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/gomlx/gomlx/core/graph"
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"
)

// embedBatch is the fixed batch the pooling graph is compiled for: every
// call pads to it, so one compilation serves all inputs.
const embedBatch = 128

// EmbedTokens returns, for each token row, the mean of the model's final
// hidden states over the row's tokens: a Width-long vector. Each row is
// fed as [BOS, tokens...] (BOS is the EOS id, as in training) and cut to
// Context-1 tokens; the BOS position is not pooled, so the vector depends
// on the row's own tokens only. An empty row gives a zero vector.
//
// Each row is embedded independently of the others in its batch (the
// attention is per row and padding is masked out of the mean), which is
// what lets a DP histogram count one vote per private record.
func (m *Model) EmbedTokens(ctx context.Context, rows [][]int32) ([][]float32, error) {
	// Rows are batched by length and each batch padded only to the next
	// power of two above its longest row (a compiled shape per length
	// class): short instructions do not pay for the full context.
	order := make([]int, len(rows))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(len(rows[a]), len(rows[b])) })
	out := make([][]float32, len(rows))
	d := m.cfg.Width
	for start := 0; start < len(order); start += embedBatch {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		batch := order[start:min(start+embedBatch, len(order))]
		T := 8
		for T < min(len(rows[batch[len(batch)-1]])+1, m.cfg.Context) {
			T *= 2
		}
		T = min(T, m.cfg.Context)
		toks := make([]int32, embedBatch*T)
		mask := make([]float32, embedBatch*T)
		for i := range toks {
			toks[i] = m.cfg.EOS
		}
		for b, idx := range batch {
			r := rows[idx]
			for t := 0; t < len(r) && t+1 < T; t++ {
				if r[t] < 0 || int(r[t]) >= m.cfg.VocabSize {
					return nil, fmt.Errorf("lm: embed row %d: token %d outside the vocabulary", idx, r[t])
				}
				toks[b*T+t+1] = r[t]
				mask[b*T+t+1] = 1
			}
		}
		pooled, err := m.poolHidden(toks, mask, T)
		if err != nil {
			return nil, fmt.Errorf("lm: embed: %w", err)
		}
		for b, idx := range batch {
			out[idx] = pooled[b*d : (b+1)*d : (b+1)*d]
		}
	}
	return out, nil
}

func (m *Model) poolHidden(toks []int32, mask []float32, T int) ([]float32, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.embedExec == nil {
		e, err := model.NewExec(m.backend, m.store, func(scope *model.Scope, in []*graph.Node) []*graph.Node {
			h := m.Hidden(in[0].Graph(), in[0])        // [B,T,d]
			w := graph.InsertAxes(in[1], -1)           // [B,T,1]
			sum := graph.ReduceSum(graph.Mul(h, w), 1) // [B,d]
			n := graph.ReduceSum(w, 1)                 // [B,1]
			n = graph.Max(n, graph.OnesLike(n))        // an empty row pools to zero
			return []*graph.Node{graph.Div(sum, n)}
		})
		if err != nil {
			return nil, err
		}
		m.embedExec = e
	}
	outs, err := m.embedExec.Call(tensors.FromFlatDataAndDimensions(toks, embedBatch, T),
		tensors.FromFlatDataAndDimensions(mask, embedBatch, T))
	if err != nil {
		return nil, err
	}
	if len(outs) != 1 {
		return nil, errors.New("lm: embed graph returned no output")
	}
	return tensors.CopyFlatData[float32](outs[0])
}

// LogLikelihood returns each row's log-probability under the model, in
// nats: sum over its tokens and the closing end of text of log p(token |
// BOS, earlier tokens), laid out as PackBatch does (rows cut to
// Context-1 tokens). Privacy audits rank a planted canary by it.
func (m *Model) LogLikelihood(ctx context.Context, rows [][]int32) ([]float64, error) {
	out := make([]float64, len(rows))
	T := m.cfg.Context
	for start := 0; start < len(rows); start += embedBatch {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		end := min(start+embedBatch, len(rows))
		batch := make([][]int32, end-start)
		for i, r := range rows[start:end] {
			batch[i] = r[:min(len(r), T-1)]
		}
		in, tg, mk, err := PackBatch(batch, embedBatch, T, m.cfg)
		if err != nil {
			return nil, fmt.Errorf("lm: log-likelihood rows %d-%d: %w", start, end-1, err)
		}
		ll, err := m.rowLogProbs(in, tg, mk)
		if err != nil {
			return nil, fmt.Errorf("lm: log-likelihood rows %d-%d: %w", start, end-1, err)
		}
		for i := range batch {
			out[start+i] = float64(ll[i])
		}
	}
	return out, nil
}

func (m *Model) rowLogProbs(in, tg, mk *tensors.Tensor) ([]float32, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.llExec == nil {
		e, err := model.NewExec(m.backend, m.store, func(scope *model.Scope, x []*graph.Node) []*graph.Node {
			logits := m.Logits(x[0].Graph(), x[0], nil)
			return []*graph.Node{graph.Neg(PerExampleLoss(logits, x[1], x[2]))}
		})
		if err != nil {
			return nil, err
		}
		m.llExec = e
	}
	outs, err := m.llExec.Call(in, tg, mk)
	if err != nil {
		return nil, err
	}
	return tensors.CopyFlatData[float32](outs[0])
}
