package textstats

import (
	"math"
	"slices"
	"strings"
	"testing"
)

func chars(s string) []string { return strings.Split(s, "") }

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

func TestLengthStats(t *testing.T) {
	tests := []struct {
		name     string
		texts    []string
		tokenize func(string) []string
		buckets  int
		want     Lengths
	}{
		{
			name:    "known lengths 1 2 3 4 10",
			texts:   []string{"a", "a b", "a b c", " a  b\tc\nd ", "1 2 3 4 5 6 7 8 9 10"},
			buckets: 3,
			want: Lengths{N: 5, Mean: 4, Std: math.Sqrt(10), Min: 1, P50: 3, P90: 7.6, Max: 10,
				Histogram: []int{3, 1, 1}, BucketEdges: []float64{1, 4, 7, 10}},
		},
		{
			name:    "no texts",
			buckets: 4,
			want:    Lengths{},
		},
		{
			name:    "all equal",
			texts:   []string{"a b", "c d"},
			buckets: 2,
			want: Lengths{N: 2, Mean: 2, Min: 2, P50: 2, P90: 2, Max: 2,
				Histogram: []int{2, 0}, BucketEdges: []float64{2, 2.5, 3}},
		},
		{
			name:    "empty texts and no histogram",
			texts:   []string{"", "one", "   "},
			buckets: 0,
			want:    Lengths{N: 3, Mean: 1.0 / 3, Std: math.Sqrt(2.0 / 9), Min: 0, P50: 0, P90: 0.8, Max: 1},
		},
		{
			name:     "custom tokenizer",
			texts:    []string{"ab", "abcd"},
			tokenize: chars,
			buckets:  1,
			want: Lengths{N: 2, Mean: 3, Std: 1, Min: 2, P50: 3, P90: 3.8, Max: 4,
				Histogram: []int{2}, BucketEdges: []float64{2, 4}},
		},
		{
			name:    "edges hit exactly",
			texts:   []string{"a", "a b", "a b c", "a b c d"},
			buckets: 3,
			want: Lengths{N: 4, Mean: 2.5, Std: math.Sqrt(1.25), Min: 1, P50: 2.5, P90: 3.7, Max: 4,
				Histogram: []int{1, 1, 2}, BucketEdges: []float64{1, 2, 3, 4}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := LengthStats(tt.texts, tt.tokenize, tt.buckets)
			w := tt.want
			if got.N != w.N || !near(got.Mean, w.Mean) || !near(got.Std, w.Std) || !near(got.Min, w.Min) ||
				!near(got.P50, w.P50) || !near(got.P90, w.P90) || !near(got.Max, w.Max) {
				t.Errorf("got %+v\nwant %+v", got, w)
			}
			if !slices.Equal(got.Histogram, w.Histogram) {
				t.Errorf("Histogram %v, want %v", got.Histogram, w.Histogram)
			}
			if !slices.EqualFunc(got.BucketEdges, w.BucketEdges, near) {
				t.Errorf("BucketEdges %v, want %v", got.BucketEdges, w.BucketEdges)
			}
		})
	}
}

func TestDistinctN(t *testing.T) {
	tests := []struct {
		name     string
		texts    []string
		tokenize func(string) []string
		maxN     int
		want     []float64
	}{
		{"repeated bigram", []string{"a b a b"}, nil, 2, []float64{2.0 / 4, 2.0 / 3}},
		{"duplicate texts", []string{"a b", "a b"}, nil, 3, []float64{0.5, 0.5, 0}},
		{"no crossing between texts", []string{"a", "b"}, nil, 2, []float64{1, 0}},
		{"all distinct", []string{"the cat sat", "on a mat"}, nil, 3, []float64{1, 1, 1}},
		{"empty corpus", nil, nil, 2, []float64{0, 0}},
		{"maxN 0", []string{"a"}, nil, 0, nil},
		{"characters", []string{"abab"}, chars, 2, []float64{0.5, 2.0 / 3}},
		// Tokens are compared whole: "a b" as one token differs from "a", "b".
		{"tokens with spaces", []string{"a b|a|b"}, func(s string) []string { return strings.Split(s, "|") }, 1, []float64{1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := DistinctN(tt.texts, tt.tokenize, tt.maxN)
			if !slices.EqualFunc(got, tt.want, near) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}
