package embed

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"unicode"

	"github.com/dpinstruct/dpinstruct/internal/hashmix"
)

// Embedder maps texts to fixed-size float32 vectors. Implementations are
// deterministic and safe for concurrent use after construction (and Fit,
// where there is one).
type Embedder interface {
	// Name identifies the embedding, e.g. "lexical-256", so that vectors
	// from different embedders are not mixed.
	Name() string
	// Dim is the length of every vector Embed returns.
	Dim() int
	// Embed returns one vector per text, in input order.
	Embed(ctx context.Context, texts []string) ([][]float32, error)
}

// LexicalOptions configures NewLexical. Zero values select the defaults.
type LexicalOptions struct {
	Dim     int // output dimension after random projection (0: 256)
	Buckets int // hashing-trick feature space (0: 1<<18; at most 1<<30)
	// WordNgrams is the {min, max} word n-gram length (zero: {1, 2}). A
	// negative max disables word features.
	WordNgrams [2]int
	// CharNgrams is the {min, max} character n-gram length, in runes,
	// inside each lowercased word marked "<word>" (zero: {3, 5}). A
	// negative max disables character features.
	CharNgrams [2]int
	Seed       uint64 // hash and projection seed (0: a fixed default)
	Workers    int    // goroutines for large batches (0: GOMAXPROCS)
}

// Defaults; see LexicalOptions.
const (
	DefaultDim     = 256
	DefaultBuckets = 1 << 18
	maxBuckets     = 1 << 30
	defaultSeed    = 0x6c6578696361 // "lexica": any fixed value will do
)

// Lexical is a hashed word and character n-gram embedder with optional IDF
// weights; see the package documentation.
type Lexical struct {
	dim, buckets int
	wordMin      int // 0 when word features are off
	wordMax      int
	charMin      int // 0 when character features are off
	charMax      int
	workers      int
	nnz          int    // projection entries per bucket
	hashSeed     uint64 // mixed into every feature hash
	projSeed     uint64 // mixed into every projection row
	// idf is nil until Fit. It is swapped atomically so that Embed calls
	// racing with a Fit see either the old or the new table, never a mix.
	idf atomic.Pointer[[]float32]
}

var _ Embedder = (*Lexical)(nil)

// NewLexical returns a Lexical embedder. Options out of range are clamped
// to the nearest sensible value (a min n-gram below 1 becomes 1, a max
// below the min becomes the min), so construction cannot fail.
func NewLexical(o LexicalOptions) *Lexical {
	l := &Lexical{dim: o.Dim, buckets: o.Buckets, workers: o.Workers}
	if l.dim <= 0 {
		l.dim = DefaultDim
	}
	if l.buckets <= 0 {
		l.buckets = DefaultBuckets
	}
	l.buckets = min(l.buckets, maxBuckets)
	if l.workers <= 0 {
		l.workers = runtime.GOMAXPROCS(0)
	}
	l.wordMin, l.wordMax = ngramRange(o.WordNgrams, [2]int{1, 2})
	l.charMin, l.charMax = ngramRange(o.CharNgrams, [2]int{3, 5})
	l.nnz = min(l.dim, int(math.Ceil(math.Sqrt(float64(l.dim)))))
	seed := o.Seed
	if seed == 0 {
		seed = defaultSeed
	}
	// Two independent streams so that feature hashes and projection rows
	// are not correlated.
	l.hashSeed = hashmix.Mix64(seed ^ 0x9e3779b97f4a7c15)
	l.projSeed = hashmix.Mix64(seed ^ 0xd1b54a32d192ed03)
	return l
}

// ngramRange applies the zero-means-default and clamping rules; it returns
// (0, 0) for a disabled family.
func ngramRange(r, def [2]int) (lo, hi int) {
	if r == [2]int{} {
		return def[0], def[1]
	}
	if r[1] < 0 {
		return 0, 0
	}
	lo, hi = max(r[0], 1), r[1]
	return lo, max(hi, lo)
}

// Name returns "lexical-<Dim>".
func (l *Lexical) Name() string { return fmt.Sprintf("lexical-%d", l.dim) }

// Dim returns the output dimension.
func (l *Lexical) Dim() int { return l.dim }

// Fit sets IDF weights, idf(b) = ln((1+N)/(1+df(b))) + 1 (smoothed, as in
// scikit-learn), from a reference corpus of N texts.
//
// The reference texts must be public or synthetic, never private records:
// the fitted table is shared by every later embedding, so private texts
// here would make each record's vector depend on all the others and break
// the sensitivity-1 argument of the DP histogram (see the package
// documentation).
//
// Without Fit every bucket has IDF 1 (plain sublinear TF). Fit may be
// called again to replace the table.
func (l *Lexical) Fit(ctx context.Context, texts []string) error {
	if len(texts) == 0 {
		return errors.New("embed: lexical fit: no reference texts")
	}
	w := l.workersFor(len(texts))
	dfs := make([][]int32, w)
	err := l.parallel(ctx, len(texts), w, func(worker int, s *scratch, i int) {
		if dfs[worker] == nil {
			dfs[worker] = make([]int32, l.buckets)
		}
		df := dfs[worker]
		feats := s.features(l, texts[i])
		for j, b := range feats {
			if j == 0 || b != feats[j-1] { // document frequency: once per text
				df[b]++
			}
		}
	})
	if err != nil {
		return fmt.Errorf("embed: lexical fit on %d texts: %w", len(texts), err)
	}
	idf := make([]float32, l.buckets)
	n := float64(len(texts))
	for b := range idf {
		var df int64
		for _, d := range dfs {
			if d != nil {
				df += int64(d[b])
			}
		}
		idf[b] = float32(math.Log((1+n)/(1+float64(df))) + 1)
	}
	l.idf.Store(&idf)
	return nil
}

// Embed returns one L2-normalised vector of length Dim per text, in input
// order; a text without letters or digits gives the zero vector. Each
// vector depends only on its own text (and the options and IDF table).
// All vectors of one call share one backing array.
func (l *Lexical) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	var idf []float32
	if p := l.idf.Load(); p != nil {
		idf = *p
	}
	d := l.dim
	buf := make([]float32, len(texts)*d)
	out := make([][]float32, len(texts))
	for i := range out {
		out[i] = buf[i*d : (i+1)*d : (i+1)*d]
	}
	err := l.parallel(ctx, len(texts), l.workersFor(len(texts)), func(_ int, s *scratch, i int) {
		l.embedOne(s, texts[i], idf, out[i])
	})
	if err != nil {
		return nil, fmt.Errorf("embed: lexical embed of %d texts: %w", len(texts), err)
	}
	return out, nil
}

// chunk is how many texts a worker takes at a time, and so how often the
// context is checked.
const chunk = 16

func (l *Lexical) workersFor(n int) int {
	return max(1, min(l.workers, (n+chunk-1)/chunk))
}

// parallel calls f for every index in [0, n) on w goroutines, each with its
// own scratch, handing out chunks in order from a shared counter. It
// returns ctx's error if ctx ends first.
func (l *Lexical) parallel(ctx context.Context, n, w int, f func(worker int, s *scratch, i int)) error {
	var next atomic.Int64
	run := func(worker int) {
		s := newScratch(l.dim)
		for ctx.Err() == nil {
			lo := int(next.Add(chunk)) - chunk
			if lo >= n {
				return
			}
			for i := lo; i < min(lo+chunk, n); i++ {
				f(worker, s, i)
			}
		}
	}
	if w <= 1 {
		run(0)
	} else {
		var wg sync.WaitGroup
		for worker := range w {
			wg.Go(func() { run(worker) })
		}
		wg.Wait()
	}
	return ctx.Err()
}

// scratch holds one worker's reusable buffers.
type scratch struct {
	runes []rune   // lowercased word runes, words back to back
	ends  []int    // ends[k] is the end of word k in runes
	wh    []uint64 // per-word hashes
	feats []uint32 // bucket ids of all features of the text
	acc   []float64
}

func newScratch(dim int) *scratch { return &scratch{acc: make([]float64, dim)} }

// features returns the sorted bucket ids of every feature occurrence of
// text (a bucket appears once per occurrence). The result aliases s.
func (s *scratch) features(l *Lexical, text string) []uint32 {
	s.tokenize(text)
	s.feats = s.feats[:0]
	nw := len(s.ends)
	if nw == 0 {
		return s.feats
	}
	s.wh = s.wh[:0]
	start := 0
	for _, end := range s.ends {
		h := fnvOffset ^ l.hashSeed
		for _, r := range s.runes[start:end] {
			h = (h ^ uint64(r)) * fnvPrime
		}
		s.wh = append(s.wh, hashmix.Mix64(h))
		start = end
	}
	if l.wordMin > 0 {
		for i := range nw {
			// Seeding each n-gram with a word-family constant keeps word and
			// character features apart, and folding the word hashes in
			// order makes n-grams of different length or order differ.
			h := l.hashSeed ^ familyWord
			for n := 1; n <= l.wordMax && i+n <= nw; n++ {
				h = (h ^ s.wh[i+n-1]) * fnvPrime
				if n >= l.wordMin {
					s.feats = append(s.feats, l.bucket(hashmix.Mix64(h+uint64(n))))
				}
			}
		}
	}
	if l.charMin > 0 {
		start = 0
		for _, end := range s.ends {
			s.charNgrams(l, s.runes[start:end])
			start = end
		}
	}
	slices.Sort(s.feats)
	return s.feats
}

// charNgrams appends the character n-grams of "<word>".
func (s *scratch) charNgrams(l *Lexical, word []rune) {
	m := len(word) + 2 // with the boundary marks
	at := func(j int) rune {
		switch j {
		case 0:
			return '<'
		case m - 1:
			return '>'
		}
		return word[j-1]
	}
	for i := range m {
		h := fnvOffset ^ l.hashSeed ^ familyChar
		for n := 1; n <= l.charMax && i+n <= m; n++ {
			h = (h ^ uint64(at(i+n-1))) * fnvPrime
			if n >= l.charMin {
				s.feats = append(s.feats, l.bucket(hashmix.Mix64(h)))
			}
		}
	}
}

// tokenize fills s.runes and s.ends with the lowercased words of text.
func (s *scratch) tokenize(text string) {
	s.runes, s.ends = s.runes[:0], s.ends[:0]
	in := false
	for _, r := range text { // invalid UTF-8 comes out as U+FFFD: a separator
		if isWordRune(r) {
			s.runes = append(s.runes, unicode.ToLower(r))
			in = true
		} else if in {
			s.ends = append(s.ends, len(s.runes))
			in = false
		}
	}
	if in {
		s.ends = append(s.ends, len(s.runes))
	}
}

// isWordRune reports whether r belongs to a word. Marks count so that
// scripts with combining vowel signs (Devanagari, Thai) are not cut apart.
func isWordRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsNumber(r) || unicode.IsMark(r)
}

// embedOne writes text's vector into out (len Dim, zeroed).
func (l *Lexical) embedOne(s *scratch, text string, idf []float32, out []float32) {
	feats := s.features(l, text)
	if len(feats) == 0 {
		return
	}
	acc := s.acc
	clear(acc)
	// Runs of equal bucket ids give tf. The input-side L2 normalisation is
	// a single scale factor, and so is the projection's 1/sqrt(nnz): both
	// vanish in the final normalisation, so neither is applied.
	for i := 0; i < len(feats); {
		b := feats[i]
		j := i + 1
		for j < len(feats) && feats[j] == b {
			j++
		}
		w := 1 + math.Log(float64(j-i))
		if idf != nil {
			w *= float64(idf[b])
		}
		l.project(b, w, acc)
		i = j
	}
	var ss float64
	for _, v := range acc {
		ss += v * v
	}
	if ss == 0 {
		return
	}
	inv := 1 / math.Sqrt(ss)
	for k, v := range acc {
		out[k] = float32(v * inv)
	}
}

// project adds w times bucket b's projection row to acc: nnz entries of
// random sign at random positions, from a splitmix64 stream seeded by b.
func (l *Lexical) project(b uint32, w float64, acc []float64) {
	state := hashmix.Mix64(uint64(b) ^ l.projSeed)
	for range l.nnz {
		state += 0x9e3779b97f4a7c15
		z := hashmix.Mix64(state)
		pos, _ := bits.Mul64(z, uint64(l.dim)) // high bits: position
		if z&1 == 0 {                          // low bit: sign
			acc[pos] += w
		} else {
			acc[pos] -= w
		}
	}
}

// bucket maps a 64-bit hash onto [0, Buckets) without modulo bias worth
// the name (Lemire's multiply-shift).
func (l *Lexical) bucket(h uint64) uint32 {
	hi, _ := bits.Mul64(h, uint64(l.buckets))
	return uint32(hi)
}

const (
	fnvOffset  = 14695981039346656037
	fnvPrime   = 1099511628211
	familyWord = 0x776f7264 // "word"
	familyChar = 0x63686172 // "char"
)
