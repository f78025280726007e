package embed

import (
	"context"
	"testing"

	"github.com/dpinstruct/dpinstruct/models/base"
)

func TestModelEmbeddingIsPerText(t *testing.T) {
	m, tok, err := base.Open("")
	if err != nil {
		t.Fatal(err)
	}
	e := NewModel(m, tok)
	texts := []string{"How do I bake bread?", "", "Write a poem about the sea.", "How do I bake bread?"}
	all, err := e.Embed(context.Background(), texts)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != len(texts) || len(all[0]) != e.Dim() || e.Name() != "model-192" {
		t.Fatalf("%d vectors of %d (%s)", len(all), len(all[0]), e.Name())
	}
	alone, err := e.Embed(context.Background(), texts[2:3])
	if err != nil {
		t.Fatal(err)
	}
	for i := range all[2] {
		if d := alone[0][i] - all[2][i]; d > 1e-5 || d < -1e-5 {
			t.Fatalf("text 2 alone differs from text 2 in a batch at %d", i)
		}
		if all[0][i] != all[3][i] {
			t.Fatalf("equal texts differ at %d", i)
		}
		if all[1][i] != 0 {
			t.Fatalf("empty text: component %d is %g", i, all[1][i])
		}
	}
	if cos := cosine(t, all[0], all[2]); cos > 0.999 {
		t.Errorf("different texts have cosine %g", cos)
	}
}
