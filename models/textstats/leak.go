package textstats

import (
	"context"
	"fmt"
	"strings"

	"github.com/dpinstruct/dpinstruct/internal/hashmix"
)

// Leak kinds.
const (
	KindExact = "exact" // the whole synthetic text equals a real text
	KindNgram = "ngram" // a run of at least minTokens tokens is shared
)

// Leak is one synthetic text that copies from a real one.
type Leak struct {
	SyntheticIndex, RealIndex int
	Kind                      string // KindExact or KindNgram
	// NgramLen is the longest run of consecutive tokens shared with
	// RealIndex; for KindExact it is the text's token count.
	NgramLen int
}

// LeakReport is the result of Leakage. Exact and Ngram count synthetic
// texts (each leaking text is counted once, as exact if it is one), and
// stay exact when Leaks is capped.
type LeakReport struct {
	Exact, Ngram int
	Leaks        []Leak // in synthetic-index order, at most maxReported
	Checked      int    // synthetic texts examined
}

// maxPostings caps how many occurrences of one token window are kept. A
// window repeated across many real texts (boilerplate such as "Given a
// reference text about") would otherwise make the scan quadratic. The cap
// never hides a leak, since one occurrence is enough to detect it, but for
// such windows NgramLen is the longest run among the kept occurrences, so
// a lower bound (as it is when the extension budget in Leakage runs out).
const maxPostings = 32

// Leakage finds synthetic texts that copy real ones: equal to a real text
// after whitespace normalisation (runs of Unicode white space collapsed to
// one space, ends trimmed; case-sensitive; texts empty after that are never
// exact matches), or sharing a run of at least minTokens consecutive tokens
// with a real text, with tokens from tokenize (nil: whitespace-separated
// words).
//
// The real texts' minTokens-token windows are indexed by a rolling hash, so
// the work and memory are linear in the total number of tokens (the real
// texts are held tokenized for the extension); hash hits are checked
// token by token, so there are no false positives. For each leaking text
// the report gives the longest shared run, extended in both directions,
// and the real text it is shared with (the lowest index among equally long
// runs; the lowest index for exact copies). Detection and the counts are
// always exact, but NgramLen (and so the real index) may be a lower bound
// for windows repeated in more than 32 real texts or for highly periodic
// texts, where the search is bounded to stay linear. maxReported caps
// Leaks (< 0: no cap, 0: counts only).
func Leakage(ctx context.Context, real, synthetic []string, tokenize func(string) []string, minTokens, maxReported int) (*LeakReport, error) {
	if minTokens < 1 {
		return nil, fmt.Errorf("textstats: leakage: minTokens %d, want at least 1", minTokens)
	}
	if tokenize == nil {
		tokenize = words
	}
	exact := make(map[string]int, len(real))
	realToks := make([][]string, len(real))
	idx := newWindowIndex()
	var hashes []uint64
	for i, t := range real {
		if i%256 == 0 && ctx.Err() != nil {
			return nil, fmt.Errorf("textstats: leakage: indexing real text %d of %d: %w", i, len(real), ctx.Err())
		}
		if n := normalize(t); n != "" {
			if _, ok := exact[n]; !ok {
				exact[n] = i
			}
		}
		realToks[i] = tokenize(t)
		hashes = windowHashes(hashes[:0], realToks[i], minTokens)
		for p, h := range hashes {
			idx.add(h, i, p)
		}
	}

	rep := &LeakReport{}
	type diagonal struct{ real, offset int } // offset = real pos - synthetic pos
	covered := make(map[diagonal]int)        // end of the run already extended on a diagonal
	for j, t := range synthetic {
		if j%256 == 0 && ctx.Err() != nil {
			return nil, fmt.Errorf("textstats: leakage: checking synthetic text %d of %d: %w", j, len(synthetic), ctx.Err())
		}
		rep.Checked++
		toks := tokenize(t)
		if r, ok := exact[normalize(t)]; ok {
			rep.Exact++
			rep.add(Leak{SyntheticIndex: j, RealIndex: r, Kind: KindExact, NgramLen: len(toks)}, maxReported)
			continue
		}
		hashes = windowHashes(hashes[:0], toks, minTokens)
		clear(covered)
		best := Leak{SyntheticIndex: j, RealIndex: -1, Kind: KindNgram}
		// Periodic texts ("a a a ...") match on many diagonals, each with a
		// long run, which would make the extension quadratic. Once a leak
		// is found, extension work beyond the budget only refines
		// NgramLen, so it stops there (NgramLen is then a lower bound).
		// The work is at most len(toks) times the real tokens, so the
		// budget is never hit with at most maxPostings real tokens.
		work, budget := 0, 2*maxPostings*(len(toks)+minTokens)
	scan:
		for i, h := range hashes {
			l, ok := idx.head[h]
			if !ok {
				continue
			}
			for q := l.first; q >= 0; q = idx.next[q] {
				r, p := idx.real[q], idx.pos[q]
				d := diagonal{r, p - i}
				if end, ok := covered[d]; ok && end >= i+minTokens {
					continue // inside a run already measured
				}
				rt := realToks[r]
				if !equal(toks[i:i+minTokens], rt[p:p+minTokens]) {
					continue // hash collision
				}
				a, b := i, p
				for a > 0 && b > 0 && toks[a-1] == rt[b-1] {
					a, b = a-1, b-1
				}
				e, f := i+minTokens, p+minTokens
				for e < len(toks) && f < len(rt) && toks[e] == rt[f] {
					e, f = e+1, f+1
				}
				covered[d] = e
				if n := e - a; n > best.NgramLen || n == best.NgramLen && r < best.RealIndex {
					best.NgramLen, best.RealIndex = n, r
				}
				if work += e - a; work > budget {
					break scan
				}
			}
		}
		if best.NgramLen > 0 {
			rep.Ngram++
			rep.add(best, maxReported)
		}
	}
	return rep, nil
}

func (r *LeakReport) add(l Leak, maxReported int) {
	if maxReported < 0 || len(r.Leaks) < maxReported {
		r.Leaks = append(r.Leaks, l)
	}
}

// normalize collapses white space for the exact comparison.
func normalize(s string) string { return strings.Join(strings.Fields(s), " ") }

func equal(a, b []string) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// windowIndex maps a window hash to its occurrences (real text, token
// position) in insertion order, as singly linked lists in flat slices, at
// most maxPostings per hash. Insertion order means lower real indices are
// met first, which the tie-break and the work budget rely on.
type windowIndex struct {
	head      map[uint64]list
	real, pos []int
	next      []int // index of the next occurrence, -1 at the end
}

type list struct{ first, last, n int }

func newWindowIndex() *windowIndex {
	return &windowIndex{head: make(map[uint64]list)}
}

func (x *windowIndex) add(h uint64, real, pos int) {
	l, ok := x.head[h]
	if l.n >= maxPostings {
		return
	}
	at := len(x.real)
	x.real = append(x.real, real)
	x.pos = append(x.pos, pos)
	x.next = append(x.next, -1)
	if ok {
		x.next[l.last] = at
		l.last, l.n = at, l.n+1
	} else {
		l = list{first: at, last: at, n: 1}
	}
	x.head[h] = l
}

// windowHashes appends the hash of every m-token window of toks, by a
// polynomial rolling hash over per-token hashes (mod 2^64), finalised so
// that map buckets spread well.
func windowHashes(dst []uint64, toks []string, m int) []uint64 {
	if len(toks) < m {
		return dst
	}
	const base = 0x100000001b3 // odd, so multiplication is invertible mod 2^64
	var top uint64 = 1         // base^(m-1)
	for range m - 1 {
		top *= base
	}
	var h uint64
	for i := range toks {
		if i >= m {
			h -= tokenHash(toks[i-m]) * top // each token is hashed entering and leaving the window
		}
		h = h*base + tokenHash(toks[i])
		if i >= m-1 {
			dst = append(dst, hashmix.Mix64(h))
		}
	}
	return dst
}

// tokenHash is FNV-1a of the token's bytes, finalised.
func tokenHash(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h = (h ^ uint64(s[i])) * 1099511628211
	}
	return hashmix.Mix64(h)
}
