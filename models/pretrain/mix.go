package pretrain

import (
	"context"
	"fmt"
	"hash/fnv"
	"math/rand/v2"

	"github.com/dpinstruct/dpinstruct/models/corpus"
	"github.com/dpinstruct/dpinstruct/models/tokenizer"
)

// Source is one --corpus path's part of a run's training data: how much it
// holds, how much of it the caps kept, and its share of the kept tokens.
// pretrain.json records one per path, and docs/MODELS.md quotes them.
type Source struct {
	Path       string  `json:"path"`
	Texts      int     `json:"texts"`
	Tokens     int64   `json:"tokens"`
	KeptTexts  int     `json:"kept_texts"`
	KeptTokens int64   `json:"kept_tokens"`
	Share      float64 `json:"share"`            // of all kept tokens
	Cap        float64 `json:"cap,omitempty"`    // the cap asked for (0: none)
	Capped     bool    `json:"capped,omitempty"` // the cap removed texts
}

// encodedSource is a source's token sequences, before and after capping.
type encodedSource struct {
	Source
	seqs [][]int32
}

// encodeSources tokenizes each corpus path on its own (so each text's
// source is known), keeping at most context tokens a text (see encodeAll).
func encodeSources(ctx context.Context, paths []string, tok *tokenizer.Tokenizer, context int) ([]encodedSource, error) {
	out := make([]encodedSource, 0, len(paths))
	for _, p := range paths {
		r, err := corpus.Open(p)
		if err != nil {
			return nil, fmt.Errorf("pretrain: corpus: %w", err)
		}
		seqs, n, err := encodeAll(ctx, r, tok, context)
		if err != nil {
			return nil, err
		}
		out = append(out, encodedSource{Source: Source{Path: p, Texts: len(seqs), Tokens: n}, seqs: seqs})
	}
	return out, nil
}

// applyCaps keeps, of every source with a cap, a seeded random subset of
// its texts whose tokens are at most cap x (all kept tokens), and the whole
// of every other source. The kept total depends on what the caps keep, so
// the binding caps are found first: with U the tokens of sources kept whole
// and C the sum of the binding caps, the kept total is T = U / (1 - C) and a
// binding source keeps cap x T; a cap is binding when its source holds more
// than that. Texts are dropped whole, so a capped share ends just under its
// cap. caps maps a --corpus path (as given) to a share in (0, 1).
func applyCaps(srcs []encodedSource, caps map[string]float64, seed uint64) error {
	known := map[string]bool{}
	var capSum float64
	for i := range srcs {
		known[srcs[i].Path] = true
		c, ok := caps[srcs[i].Path]
		if !ok {
			continue
		}
		if !(c > 0 && c < 1) {
			return fmt.Errorf("pretrain: the cap of %s must be a share in (0, 1), got %g", srcs[i].Path, c)
		}
		srcs[i].Cap = c
		capSum += c
	}
	for p := range caps {
		if !known[p] {
			return fmt.Errorf("pretrain: a cap names %s, which is not one of the --corpus paths", p)
		}
	}
	if capSum >= 1 {
		return fmt.Errorf("pretrain: the caps add up to %g; they must leave room for the other sources", capSum)
	}
	binding := map[int]bool{}
	for i := range srcs {
		if srcs[i].Cap > 0 {
			binding[i] = true
		}
	}
	var total float64
	for {
		var whole, c float64
		for i := range srcs {
			if binding[i] {
				c += srcs[i].Cap
			} else {
				whole += float64(srcs[i].Tokens)
			}
		}
		total = whole / (1 - c)
		changed := false
		for i := range binding {
			if float64(srcs[i].Tokens) <= srcs[i].Cap*total {
				delete(binding, i)
				changed = true
			}
		}
		if !changed {
			break
		}
	}
	for i := range srcs {
		s := &srcs[i]
		s.KeptTexts, s.KeptTokens = s.Texts, s.Tokens
		if !binding[i] {
			continue
		}
		budget := int64(s.Cap * total)
		h := fnv.New64a()
		h.Write([]byte(s.Path))
		perm := rand.New(rand.NewPCG(seed, h.Sum64())).Perm(len(s.seqs))
		var kept [][]int32
		var n int64
		for _, j := range perm {
			if l := int64(len(s.seqs[j])); n+l <= budget {
				kept = append(kept, s.seqs[j])
				n += l
			}
		}
		s.seqs, s.KeptTexts, s.KeptTokens, s.Capped = kept, len(kept), n, true
	}
	var all int64
	for i := range srcs {
		all += srcs[i].KeptTokens
	}
	for i := range srcs {
		if all > 0 {
			srcs[i].Share = float64(srcs[i].KeptTokens) / float64(all)
		}
	}
	return nil
}
