package embed

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/dpinstruct/dpinstruct/internal/golden"
)

// sample are instruction-like texts used across the tests.
var sample = []string{
	"Write a short poem about the ocean at night.",
	"Summarise the following article in three bullet points.",
	"Translate 'good morning' into French and Spanish.",
	"What is the capital city of Australia?",
	"Give me a recipe for a vegan chocolate cake.",
	"Explain how a transformer neural network works.",
	"List five tips for improving sleep quality.",
	"Why is the sky blue during the day?",
	"Écris une lettre de motivation pour un poste d'ingénieur.",
	"東京の天気について教えてください。",
	"",
	"1234 5678",
}

func cosine(t *testing.T, a, b []float32) float64 {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("cosine of lengths %d and %d", len(a), len(b))
	}
	var ab, aa, bb float64
	for i := range a {
		ab += float64(a[i]) * float64(b[i])
		aa += float64(a[i]) * float64(a[i])
		bb += float64(b[i]) * float64(b[i])
	}
	if aa == 0 || bb == 0 {
		return 0
	}
	return ab / math.Sqrt(aa*bb)
}

func embed(t *testing.T, l *Lexical, texts ...string) [][]float32 {
	t.Helper()
	v, err := l.Embed(context.Background(), texts)
	if err != nil {
		t.Fatal(err)
	}
	if len(v) != len(texts) {
		t.Fatalf("got %d vectors for %d texts", len(v), len(texts))
	}
	return v
}

func sameVectors(t *testing.T, what string, a, b [][]float32) {
	t.Helper()
	if len(a) != len(b) {
		t.Fatalf("%s: %d vs %d vectors", what, len(a), len(b))
	}
	for i := range a {
		for k := range a[i] {
			if math.Float32bits(a[i][k]) != math.Float32bits(b[i][k]) {
				t.Fatalf("%s: text %d differs at dim %d: %v vs %v", what, i, k, a[i][k], b[i][k])
			}
		}
	}
}

func norm(v []float32) float64 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	return math.Sqrt(s)
}

func TestLexicalOptions(t *testing.T) {
	tests := []struct {
		name     string
		o        LexicalOptions
		wantName string
		wantDim  int
	}{
		{"defaults", LexicalOptions{}, "lexical-256", 256},
		{"dim 64", LexicalOptions{Dim: 64}, "lexical-64", 64},
		{"dim 1", LexicalOptions{Dim: 1, Buckets: 16}, "lexical-1", 1},
		{"negative dim", LexicalOptions{Dim: -3}, "lexical-256", 256},
		{"odd ranges", LexicalOptions{Dim: 8, WordNgrams: [2]int{-2, 0}, CharNgrams: [2]int{4, 2}}, "lexical-8", 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := NewLexical(tt.o)
			if l.Name() != tt.wantName || l.Dim() != tt.wantDim {
				t.Fatalf("Name, Dim = %q, %d; want %q, %d", l.Name(), l.Dim(), tt.wantName, tt.wantDim)
			}
			for i, v := range embed(t, l, sample...) {
				if len(v) != tt.wantDim {
					t.Fatalf("text %d: len %d, want %d", i, len(v), tt.wantDim)
				}
				if n := norm(v); sample[i] != "" && math.Abs(n-1) > 1e-5 {
					t.Errorf("text %d: norm %v, want 1", i, n)
				}
			}
		})
	}
}

func TestLexicalDeterministic(t *testing.T) {
	texts := append([]string(nil), sample...)
	for i := range 100 { // enough for several chunks per worker
		texts = append(texts, sample[i%len(sample)]+" variant")
	}
	want := embed(t, NewLexical(LexicalOptions{Workers: 1}), texts...)
	for _, w := range []int{1, 2, 3, 8} {
		l := NewLexical(LexicalOptions{Workers: w})
		sameVectors(t, "first call", want, embed(t, l, texts...))
		sameVectors(t, "second call", want, embed(t, l, texts...))
	}
	other := embed(t, NewLexical(LexicalOptions{Seed: 42}), texts...)
	if c := cosine(t, want[0], other[0]); c > 0.5 {
		t.Errorf("different seeds give cosine %.3f, want unrelated vectors", c)
	}
}

// TestLexicalPerTextIndependence is the property the DP histogram relies
// on: a text's vector is the same alone or in any batch.
func TestLexicalPerTextIndependence(t *testing.T) {
	l := NewLexical(LexicalOptions{Workers: 3})
	if err := l.Fit(context.Background(), sample[:6]); err != nil {
		t.Fatal(err)
	}
	batch := embed(t, l, sample...)
	reversed := make([]string, len(sample))
	for i, s := range sample {
		reversed[len(sample)-1-i] = s
	}
	rev := embed(t, l, reversed...)
	for i, s := range sample {
		sameVectors(t, "alone vs batch", embed(t, l, s), batch[i:i+1])
		sameVectors(t, "reversed batch", rev[len(sample)-1-i:len(sample)-i], batch[i:i+1])
	}
}

func TestLexicalEmpty(t *testing.T) {
	l := NewLexical(LexicalOptions{})
	texts := []string{"", "   \n\t", "!!! ??? ...", "\xff\xfe\xfd", "\uFFFD"}
	for i, v := range embed(t, l, texts...) {
		if n := norm(v); n != 0 {
			t.Errorf("text %d: norm %v, want the zero vector", i, n)
		}
	}
	if v := embed(t, l); len(v) != 0 {
		t.Errorf("no texts: got %d vectors", len(v))
	}
	off := NewLexical(LexicalOptions{WordNgrams: [2]int{1, -1}, CharNgrams: [2]int{0, -1}})
	if n := norm(embed(t, off, sample[0])[0]); n != 0 {
		t.Errorf("all features disabled: norm %v, want 0", n)
	}
}

func TestLexicalSimilarity(t *testing.T) {
	l := NewLexical(LexicalOptions{})
	tests := []struct {
		name     string
		a, b     string
		min, max float64
	}{
		{"identical", "Write a haiku about autumn leaves.", "Write a haiku about autumn leaves.", 0.9999, 1.0001},
		{"case and punctuation", "Write a haiku about autumn leaves.", "write a HAIKU about autumn leaves!!", 0.9999, 1.0001},
		{"one word changed", "Write a short poem about the ocean at night.", "Write a short poem about the sea at night.", 0.8, 1},
		{"typo", "Explain how photosynthesis works in plants.", "Explain how photosynthsis works in plants.", 0.8, 1},
		{"extra word", "List five tips for improving sleep quality.", "List five simple tips for improving sleep quality.", 0.8, 1},
		{"word order", "the dog chased the cat", "the cat chased the dog", 0.8, 0.999},
		{"spelling variant", "colour", "color", 0.3, 0.9},
		{"unrelated", "What is the capital city of Australia?", "Give me a recipe for a vegan chocolate cake.", -0.3, 0.3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := embed(t, l, tt.a, tt.b)
			c := cosine(t, v[0], v[1])
			t.Logf("cosine %.4f", c)
			if c < tt.min || c > tt.max {
				t.Errorf("cosine %.4f, want in [%v, %v]", c, tt.min, tt.max)
			}
		})
	}
}

func TestLexicalUnrelatedAverage(t *testing.T) {
	unrelated := []string{
		"Write a short poem about the ocean at night.",
		"Summarise the following article in three bullet points.",
		"Translate 'good morning' into French and Spanish.",
		"What is the capital city of Australia?",
		"Give me a recipe for a vegan chocolate cake.",
		"Explain how a transformer neural network works.",
		"List five tips for improving sleep quality.",
		"Why is the sky blue during the day?",
		"Suggest names for a pet hamster.",
		"Compute the derivative of x squared plus three.",
	}
	for _, fit := range []bool{false, true} {
		l := NewLexical(LexicalOptions{})
		if fit {
			if err := l.Fit(context.Background(), append(unrelated, sample...)); err != nil {
				t.Fatal(err)
			}
		}
		v := embed(t, l, unrelated...)
		var sum float64
		var n int
		for i := range v {
			for j := i + 1; j < len(v); j++ {
				sum += cosine(t, v[i], v[j])
				n++
			}
		}
		if avg := sum / float64(n); avg >= 0.3 || avg <= -0.3 {
			t.Errorf("fit=%v: average cosine of unrelated texts %.3f, want |avg| < 0.3", fit, avg)
		} else {
			t.Logf("fit=%v: average cosine of unrelated texts %.3f", fit, avg)
		}
	}
}

func TestLexicalFit(t *testing.T) {
	ctx := context.Background()
	ref := []string{
		"please translate this sentence",
		"please write a limerick",
		"please list three rivers",
		"please explain gravity",
	}
	l := NewLexical(LexicalOptions{CharNgrams: [2]int{0, -1}}) // words only: a clean signal
	probe := []string{"please", "please explain gravity"}
	before := embed(t, l, probe...)
	if err := l.Fit(ctx, ref); err != nil {
		t.Fatal(err)
	}
	after := embed(t, l, probe...)
	cb, ca := cosine(t, before[0], before[1]), cosine(t, after[0], after[1])
	if ca >= cb {
		t.Errorf(`cosine("please", text) %.3f after Fit, %.3f before: the ubiquitous word should be down-weighted`, ca, cb)
	}
	// The fitted table must be exactly the smoothed IDF.
	idf := *l.idf.Load()
	s := newScratch(l.dim)
	please := s.features(l, "please")[0]
	gravity := s.features(l, "gravity")[0]
	if got, want := float64(idf[please]), 1.0; math.Abs(got-want) > 1e-6 {
		t.Errorf("idf(please) = %v, want %v", got, want)
	}
	if got, want := float64(idf[gravity]), math.Log(5.0/2)+1; math.Abs(got-want) > 1e-6 {
		t.Errorf("idf(gravity) = %v, want %v", got, want)
	}

	if err := l.Fit(ctx, nil); err == nil {
		t.Error("Fit with no texts: want an error")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := l.Fit(cctx, ref); !errors.Is(err, context.Canceled) {
		t.Errorf("Fit with a cancelled context: err %v, want context.Canceled", err)
	}
	sameVectors(t, "failed Fit keeps the table", after, embed(t, l, probe...))
}

func TestLexicalCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := NewLexical(LexicalOptions{}).Embed(ctx, sample)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	for _, s := range sample {
		if s != "" && strings.Contains(err.Error(), s) {
			t.Fatalf("error message contains an input text")
		}
	}
}

// TestLexicalConcurrent exercises concurrent Embed calls and a Fit racing
// with them (run with -race).
func TestLexicalConcurrent(t *testing.T) {
	l := NewLexical(LexicalOptions{Workers: 2})
	want := embed(t, l, sample...)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 4 {
		wg.Go(func() {
			got, err := l.Embed(context.Background(), sample)
			if err != nil {
				errs <- err
				return
			}
			if len(got) != len(want) {
				errs <- errors.New("wrong count")
			}
		})
	}
	wg.Go(func() {
		if err := l.Fit(context.Background(), sample); err != nil {
			errs <- err
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

type lexicalGolden struct {
	Options LexicalOptions `json:"options"`
	Fit     []string       `json:"fit"`
	Texts   []string       `json:"texts"`
	Vectors [][]float32    `json:"vectors"`
}

// TestLexicalGolden pins the vectors so that a change to tokenising,
// hashing or projection (which would silently re-shuffle every cluster) is
// noticed. Values are compared with a tolerance because FMA fusion may
// differ between architectures.
func TestLexicalGolden(t *testing.T) {
	path := filepath.Join("testdata", "lexical.golden.json")
	g := lexicalGolden{
		Options: LexicalOptions{Dim: 16, Buckets: 1 << 12, Seed: 7, Workers: 2},
		Fit:     sample[:8],
		Texts:   []string{"Write a short poem about the ocean.", "Naïve café ÉCOLE", "東京の天気", ""},
	}
	l := NewLexical(g.Options)
	if err := l.Fit(context.Background(), g.Fit); err != nil {
		t.Fatal(err)
	}
	got := embed(t, l, g.Texts...)
	g.Vectors = got
	cur, err := json.MarshalIndent(g, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	b := golden.Read(t, path, append(cur, '\n'))
	var want lexicalGolden
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(want.Vectors) != len(got) {
		t.Fatalf("%s has %d vectors, want %d (rerun with -update if intended)", path, len(want.Vectors), len(got))
	}
	for i := range got {
		for k := range got[i] {
			if d := math.Abs(float64(got[i][k] - want.Vectors[i][k])); d > 1e-5 {
				t.Fatalf("text %d dim %d: %v, golden %v (rerun with -update if intended)", i, k, got[i][k], want.Vectors[i][k])
			}
		}
	}
}

func FuzzLexicalEmbed(f *testing.F) {
	for _, s := range sample {
		f.Add(s)
	}
	f.Add("\xff\xfe<>\x00a\u0301b")
	f.Add("a" + string([]byte{0xe2, 0x82}) + "b")
	l := NewLexical(LexicalOptions{Dim: 32, Buckets: 1 << 10, Workers: 1})
	f.Fuzz(func(t *testing.T, s string) {
		v := embed(t, l, s, s)
		sameVectors(t, "same text twice", v[:1], v[1:])
		n := norm(v[0])
		for _, x := range v[0] {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				t.Fatalf("non-finite value %v", x)
			}
		}
		hasWord := false
		for _, r := range s {
			if r != utf8.RuneError && isWordRune(r) {
				hasWord = true
				break
			}
		}
		if hasWord && math.Abs(n-1) > 1e-5 || !hasWord && n != 0 {
			t.Fatalf("norm %v with hasWord=%v", n, hasWord)
		}
	})
}
