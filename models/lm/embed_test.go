package lm

import (
	"context"
	"math"
	"testing"
)

func TestEmbedTokensIsPerRow(t *testing.T) {
	m := newTiny(t, tinyConfig(), 3)
	d := m.Config().Width
	rows := [][]int32{{5, 6, 7}, {}, {9, 9, 9, 9, 9, 9}, {5, 6, 7}}
	// 40 rows: two batches, so padding and the batch boundary are crossed.
	for len(rows) < 40 {
		rows = append(rows, []int32{int32(1 + len(rows)%11), 3})
	}
	all, err := m.EmbedTokens(context.Background(), rows)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != len(rows) || len(all[0]) != d {
		t.Fatalf("got %d vectors of %d, want %d of %d", len(all), len(all[0]), len(rows), d)
	}
	for i, v := range all[1] {
		if v != 0 {
			t.Fatalf("empty row: component %d is %g, want 0", i, v)
		}
	}
	alone, err := m.EmbedTokens(context.Background(), rows[2:3])
	if err != nil {
		t.Fatal(err)
	}
	for i := range d {
		if math.Abs(float64(alone[0][i]-all[2][i])) > 1e-5 {
			t.Fatalf("row 2 embedded alone differs at %d: %g vs %g", i, alone[0][i], all[2][i])
		}
		if all[0][i] != all[3][i] {
			t.Fatalf("identical rows 0 and 3 differ at %d", i)
		}
	}
	var diff float64
	for i := range d {
		diff += math.Abs(float64(all[0][i] - all[2][i]))
	}
	if diff == 0 {
		t.Error("different rows gave the same embedding")
	}
	if _, err := m.EmbedTokens(context.Background(), [][]int32{{int32(m.Config().VocabSize)}}); err == nil {
		t.Error("a token outside the vocabulary should be an error")
	}
}
