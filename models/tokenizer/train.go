package tokenizer

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"iter"
	"runtime"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"
)

// DefaultVocabSize is TrainOptions.VocabSize's default.
const DefaultVocabSize = 4096

// TrainOptions configure Train.
type TrainOptions struct {
	// VocabSize is the total number of ids: the 256 byte tokens, the
	// learned merges and the specials. 0 means DefaultVocabSize. Training
	// stops earlier when no pair reaches MinFrequency.
	VocabSize int
	// MinFrequency is the least number of occurrences (in the corpus) of
	// a pair for it to be merged; 0 means 2.
	MinFrequency int
	// Specials are special tokens, appended after the learned tokens in
	// this order; "<|endoftext|>" is always one (added first if missing).
	Specials []string
	// Workers pre-tokenise texts in parallel; 0 means GOMAXPROCS.
	Workers int
}

// Train learns a byte-level BPE tokenizer from texts. Ids 0-255 are the
// single bytes (id == byte value), then one id per merge in the order they
// were learned, then the specials. It is deterministic: the same texts (in
// any order) and options give the same tokenizer; among pairs of equal
// count, the lexicographically smallest (left token bytes, then right
// token bytes) is merged first.
func Train(ctx context.Context, texts iter.Seq2[string, error], opts TrainOptions) (*Tokenizer, error) {
	if opts.VocabSize == 0 {
		opts.VocabSize = DefaultVocabSize
	}
	if opts.MinFrequency <= 0 {
		opts.MinFrequency = 2
	}
	specials := opts.Specials
	if !slices.Contains(specials, EndOfText) {
		specials = append([]string{EndOfText}, specials...)
	}
	seen := map[string]bool{}
	for _, s := range specials {
		if err := checkSpecial(s); err != nil {
			return nil, err
		}
		if seen[s] {
			return nil, fmt.Errorf("tokenizer: special token %q given twice", s)
		}
		seen[s] = true
	}
	maxMerges := opts.VocabSize - 256 - len(specials)
	if maxMerges < 0 {
		return nil, fmt.Errorf("tokenizer: vocab size %d is below 256 bytes + %d specials", opts.VocabSize, len(specials))
	}
	words, err := countWords(ctx, texts, opts.Workers)
	if err != nil {
		return nil, err
	}
	merges, err := learnMerges(ctx, words, maxMerges, int64(opts.MinFrequency))
	if err != nil {
		return nil, err
	}

	t := &Tokenizer{merges: make(map[uint64]mergeInfo, len(merges))}
	for b := 0; b < 256; b++ {
		t.raw = append(t.raw, string([]byte{byte(b)}))
		t.vocab = append(t.vocab, byteTok[b])
	}
	for rank, m := range merges {
		id := int32(len(t.raw))
		raw := t.raw[m[0]] + t.raw[m[1]]
		t.raw = append(t.raw, raw)
		t.vocab = append(t.vocab, toVocab([]byte(raw)))
		t.merges[pairKey(m[0], m[1])] = mergeInfo{int32(rank), id}
		t.mergeSeq = append(t.mergeSeq, m)
	}
	t.special = make([]bool, len(t.raw), len(t.raw)+len(specials))
	for _, s := range specials {
		t.raw = append(t.raw, s)
		t.vocab = append(t.vocab, s)
		t.special = append(t.special, true)
	}
	t.finish()
	return t, nil
}

// checkSpecial refuses specials that BPE could also learn (a single
// pre-token such as "hello" could collide with a learned token).
func checkSpecial(s string) error {
	if s == "" || !utf8.ValidString(s) {
		return fmt.Errorf("tokenizer: special token %q must be non-empty valid UTF-8", s)
	}
	n := 0
	preTokenize(s, func(int, int) { n++ })
	if n < 2 {
		return fmt.Errorf("tokenizer: special token %q could collide with a learned token; use a marker such as <|name|>", s)
	}
	return nil
}

// countWords pre-tokenises every text and counts the pieces.
func countWords(ctx context.Context, texts iter.Seq2[string, error], workers int) (map[string]int64, error) {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	const batch = 256
	ch := make(chan []string, workers*2)
	maps := make([]map[string]int64, workers)
	var wg sync.WaitGroup
	for w := range workers {
		m := make(map[string]int64)
		maps[w] = m
		wg.Go(func() {
			for b := range ch {
				for _, s := range b {
					preTokenize(s, func(i, j int) {
						if c, ok := m[s[i:j]]; ok {
							m[s[i:j]] = c + 1
						} else {
							m[strings.Clone(s[i:j])] = 1
						}
					})
				}
			}
		})
	}
	var err error
	cur := make([]string, 0, batch)
	for s, e := range texts {
		if e != nil {
			err = e
			break
		}
		if cur = append(cur, s); len(cur) == batch {
			if err = ctx.Err(); err != nil {
				break
			}
			ch <- cur
			cur = make([]string, 0, batch)
		}
	}
	if len(cur) > 0 && err == nil {
		ch <- cur
	}
	close(ch)
	wg.Wait()
	if err != nil {
		return nil, fmt.Errorf("tokenizer: reading training texts: %w", err)
	}
	total := maps[0]
	for _, m := range maps[1:] {
		for k, v := range m {
			total[k] += v
		}
	}
	return total, nil
}

// pairEntry is a heap entry: a pair and its count when pushed. Entries
// whose count no longer matches the current one are stale and skipped.
type pairEntry struct {
	count int64
	a, b  int32
}

type pairHeap struct {
	e   []pairEntry
	tok [][]byte // id -> raw bytes, for tie-breaking
}

func (h *pairHeap) Len() int { return len(h.e) }
func (h *pairHeap) Less(i, j int) bool {
	x, y := h.e[i], h.e[j]
	if x.count != y.count {
		return x.count > y.count
	}
	if c := compareBytes(h.tok[x.a], h.tok[y.a]); c != 0 {
		return c < 0
	}
	return compareBytes(h.tok[x.b], h.tok[y.b]) < 0
}
func (h *pairHeap) Swap(i, j int) { h.e[i], h.e[j] = h.e[j], h.e[i] }
func (h *pairHeap) Push(x any)    { h.e = append(h.e, x.(pairEntry)) }
func (h *pairHeap) Pop() any {
	x := h.e[len(h.e)-1]
	h.e = h.e[:len(h.e)-1]
	return x
}

func compareBytes(a, b []byte) int { return strings.Compare(string(a), string(b)) }

// learnMerges runs BPE on the word counts: count every adjacent pair once,
// then repeatedly merge the most frequent pair, updating the counts of the
// pairs around each occurrence only (an index pair -> words holding it
// finds them).
func learnMerges(ctx context.Context, counts map[string]int64, maxMerges int, minFreq int64) ([][2]int32, error) {
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	words := make([][]int32, len(keys))
	freq := make([]int64, len(keys))
	pairCount := make(map[uint64]int64)
	where := make(map[uint64][]int32)
	for w, k := range keys {
		sym := make([]int32, len(k))
		for i := 0; i < len(k); i++ {
			sym[i] = int32(k[i])
		}
		words[w], freq[w] = sym, counts[k]
		for i := 0; i+1 < len(sym); i++ {
			p := pairKey(sym[i], sym[i+1])
			pairCount[p] += freq[w]
			if l := where[p]; len(l) == 0 || l[len(l)-1] != int32(w) {
				where[p] = append(l, int32(w))
			}
		}
	}
	tok := make([][]byte, 256, 256+maxMerges)
	for b := range 256 {
		tok[b] = []byte{byte(b)}
	}
	h := &pairHeap{tok: tok}
	for p, c := range pairCount {
		h.e = append(h.e, pairEntry{c, int32(p >> 32), int32(uint32(p))})
	}
	heap.Init(h)

	merges := make([][2]int32, 0, maxMerges)
	changed := make(map[uint64]struct{})
	lastSeen := make([]int32, len(words)) // merge number+1 that last visited each word
	for len(merges) < maxMerges && h.Len() > 0 {
		if len(merges)%64 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		top := heap.Pop(h).(pairEntry)
		p := pairKey(top.a, top.b)
		if pairCount[p] != top.count {
			continue // stale
		}
		if top.count < minFreq {
			break
		}
		a, b := top.a, top.b
		n := int32(len(h.tok))
		h.tok = append(h.tok, append(append([]byte(nil), h.tok[a]...), h.tok[b]...))
		merges = append(merges, [2]int32{a, b})
		stamp := int32(len(merges))
		add := func(x, y int32, d int64, w int32) {
			q := pairKey(x, y)
			pairCount[q] += d
			changed[q] = struct{}{}
			if d > 0 {
				if l := where[q]; len(l) == 0 || l[len(l)-1] != w {
					where[q] = append(l, w)
				}
			}
		}
		for _, w := range where[p] {
			if lastSeen[w] == stamp {
				continue
			}
			lastSeen[w] = stamp
			sym, f := words[w], freq[w]
			for i := 0; i+1 < len(sym); i++ {
				if sym[i] != a || sym[i+1] != b {
					continue
				}
				if i > 0 {
					add(sym[i-1], a, -f, w)
					add(sym[i-1], n, f, w)
				}
				if i+2 < len(sym) {
					add(b, sym[i+2], -f, w)
					add(n, sym[i+2], f, w)
				}
				sym[i] = n
				sym = append(sym[:i+1], sym[i+2:]...)
			}
			words[w] = sym
		}
		delete(pairCount, p)
		delete(where, p)
		delete(changed, p)
		for q := range changed {
			c := pairCount[q]
			if c <= 0 {
				delete(pairCount, q)
				delete(where, q)
				continue
			}
			heap.Push(h, pairEntry{c, int32(q >> 32), int32(uint32(q))})
		}
		clear(changed)
	}
	if len(merges) == 0 && maxMerges > 0 && len(counts) == 0 {
		return nil, errors.New("tokenizer: no training text")
	}
	return merges, nil
}
