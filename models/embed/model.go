package embed

import (
	"context"
	"fmt"

	"github.com/dpinstruct/dpinstruct/models/lm"
	"github.com/dpinstruct/dpinstruct/models/tokenizer"
)

// Model embeds texts with a language model: the mean of its final hidden
// states over the text's tokens (lm.Model.EmbedTokens). With the public
// base generator this costs no privacy: the model saw public text only,
// and each text's vector depends on that text alone. Texts longer than the
// model's context are cut to their first Context-1 tokens.
type Model struct {
	m   *lm.Model
	tok *tokenizer.Tokenizer
}

// NewModel embeds with m and its tokenizer. Calls serialise on the model.
func NewModel(m *lm.Model, tok *tokenizer.Tokenizer) *Model { return &Model{m: m, tok: tok} }

// Name implements Embedder.
func (e *Model) Name() string { return fmt.Sprintf("model-%d", e.m.Config().Width) }

// Dim implements Embedder.
func (e *Model) Dim() int { return e.m.Config().Width }

// Embed implements Embedder.
func (e *Model) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	rows := make([][]int32, len(texts))
	for i, t := range texts {
		rows[i] = e.tok.Encode(t)
	}
	out, err := e.m.EmbedTokens(ctx, rows)
	if err != nil {
		return nil, fmt.Errorf("embed: model: %w", err)
	}
	return out, nil
}
