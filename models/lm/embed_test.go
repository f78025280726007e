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

func TestLogLikelihoodMatchesTheLogits(t *testing.T) {
	cfg := tinyConfig()
	m := newTiny(t, cfg, 5)
	rows := [][]int32{{5, 6, 7}, {}, {9, 1}}
	got, err := m.LogLikelihood(context.Background(), rows)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range rows {
		// [BOS, r...] predicts [r..., EOS].
		in := append([]int32{cfg.EOS}, r...)
		logits, err := m.LogitsFor([][]int32{in})
		if err != nil {
			t.Fatal(err)
		}
		targets := append(append([]int32(nil), r...), cfg.EOS)
		var want float64
		for pos, tok := range targets {
			row := logits[0][pos]
			mx := math.Inf(-1)
			for _, v := range row {
				mx = math.Max(mx, float64(v))
			}
			var z float64
			for _, v := range row {
				z += math.Exp(float64(v) - mx)
			}
			want += float64(row[tok]) - mx - math.Log(z)
		}
		if math.Abs(got[i]-want) > 1e-4*math.Max(1, math.Abs(want)) {
			t.Errorf("row %d: log-likelihood %g, want %g", i, got[i], want)
		}
	}
}
