package tokenizer

import (
	"container/heap"
	"strings"
	"sync"
)

// EndOfText is the end-of-sequence special token.
const EndOfText = "<|endoftext|>"

// mergeInfo is what a merge rule gives a pair of adjacent tokens: its rank
// (lower applies first) and the id of the merged token.
type mergeInfo struct {
	rank int32
	id   int32
}

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

// Tokenizer is a byte-level BPE tokenizer. It is safe for concurrent use.
type Tokenizer struct {
	vocab    []string         // id -> vocabulary string (ByteLevel spelling; specials as is); "" for unused ids
	raw      []string         // id -> raw bytes the id decodes to
	ids      map[string]int32 // vocabulary string -> id (model tokens and specials)
	byteID   [256]int32       // byte -> id of its single-byte token
	merges   map[uint64]mergeInfo
	mergeSeq [][2]int32 // merges in rank order
	specials []int32    // ids of special (added) tokens, in id order
	special  []bool     // id -> is special
	eos      int32

	mu    sync.Mutex
	cache map[string][]int32
}

const maxCache = 1 << 17

// finish builds the lookup tables; vocab, raw and special must be filled.
func (t *Tokenizer) finish() {
	t.ids = make(map[string]int32, len(t.vocab))
	t.eos = -1
	for id, v := range t.vocab {
		if v == "" && !t.special[id] {
			continue
		}
		t.ids[v] = int32(id)
		if t.special[id] {
			t.specials = append(t.specials, int32(id))
			if v == EndOfText {
				t.eos = int32(id)
			}
		}
	}
	for b := 0; b < 256; b++ {
		t.byteID[b] = t.ids[byteTok[b]]
	}
	t.cache = make(map[string][]int32)
}

// VocabSize is the number of token ids, specials included (ids are
// 0..VocabSize()-1).
func (t *Tokenizer) VocabSize() int { return len(t.vocab) }

// EOS is the id of the special token "<|endoftext|>", or -1 if the
// tokenizer (a loaded one) has none. The generator appends it after each
// instruction and stops sampling on it.
func (t *Tokenizer) EOS() int32 { return t.eos }

// Specials returns the ids of the special tokens.
func (t *Tokenizer) Specials() []int32 { return append([]int32(nil), t.specials...) }

// IsSpecial tells whether id is a special token.
func (t *Tokenizer) IsSpecial(id int32) bool {
	return id >= 0 && int(id) < len(t.special) && t.special[id]
}

// NumMerges is the number of merge rules.
func (t *Tokenizer) NumMerges() int { return len(t.mergeSeq) }

// TokenString returns the token's string as stored in tokenizer.json: the
// ByteLevel spelling for model tokens (a leading space shows as "Ġ", a
// newline as "Ċ"), the literal text for specials, "" for an unknown id.
// Use Decode([]int32{id}) for the raw text.
func (t *Tokenizer) TokenString(id int32) string {
	if id < 0 || int(id) >= len(t.vocab) {
		return ""
	}
	return t.vocab[id]
}

// TokenID returns the id of a token given as TokenString spells it.
func (t *Tokenizer) TokenID(tok string) (int32, bool) {
	id, ok := t.ids[tok]
	return id, ok
}

// Decode concatenates the raw bytes of the tokens; a special token decodes
// to its literal text, an id out of range to nothing. For any string s,
// Decode(Encode(s)) == s, byte for byte (invalid UTF-8 included).
func (t *Tokenizer) Decode(ids []int32) string {
	n := 0
	for _, id := range ids {
		if id >= 0 && int(id) < len(t.raw) {
			n += len(t.raw[id])
		}
	}
	var sb strings.Builder
	sb.Grow(n)
	for _, id := range ids {
		if id >= 0 && int(id) < len(t.raw) {
			sb.WriteString(t.raw[id])
		}
	}
	return sb.String()
}

// Encode returns the token ids of text. It never produces a special token:
// text holding "<|endoftext|>" is encoded as ordinary bytes (append EOS()
// yourself).
func (t *Tokenizer) Encode(text string) []int32 {
	return t.AppendEncode(make([]int32, 0, len(text)/3+1), text)
}

// AppendEncode appends the ids of text to dst.
func (t *Tokenizer) AppendEncode(dst []int32, text string) []int32 {
	var scratch []int32
	preTokenize(text, func(start, end int) {
		word := text[start:end]
		t.mu.Lock()
		ids, ok := t.cache[word]
		t.mu.Unlock()
		if ok {
			dst = append(dst, ids...)
			return
		}
		scratch = scratch[:0]
		for i := 0; i < len(word); i++ {
			scratch = append(scratch, t.byteID[word[i]])
		}
		scratch = t.mergeWord(scratch)
		dst = append(dst, scratch...)
		if len(word) <= 256 { // long pieces (runs of spaces, dashes) are rare: don't cache
			cp := append([]int32(nil), scratch...)
			t.mu.Lock()
			if len(t.cache) >= maxCache {
				clear(t.cache)
			}
			t.cache[strings.Clone(word)] = cp
			t.mu.Unlock()
		}
	})
	return dst
}

// mergeWord applies the merge rules to the symbols of one piece: always the
// adjacent pair of lowest rank, leftmost first among equals, which is what
// HF's BPE model does.
func (t *Tokenizer) mergeWord(sym []int32) []int32 { return applyMerges(t.merges, sym) }

// mergeWordHeap is applyMergesHeap with t's merges.
func (t *Tokenizer) mergeWordHeap(sym []int32) []int32 { return applyMergesHeap(t.merges, sym) }

// applyMerges is mergeWord for any merge table (the HF loader shares it).
// Symbols with no entry in merges (negative placeholders included) never
// merge.
func applyMerges(merges map[uint64]mergeInfo, sym []int32) []int32 {
	if len(sym) > 48 {
		return applyMergesHeap(merges, sym)
	}
	for len(sym) > 1 {
		best, bestRank := -1, int32(0)
		var bestID int32
		for i := 0; i+1 < len(sym); i++ {
			if m, ok := merges[pairKey(sym[i], sym[i+1])]; ok && (best < 0 || m.rank < bestRank) {
				best, bestRank, bestID = i, m.rank, m.id
			}
		}
		if best < 0 {
			break
		}
		sym[best] = bestID
		sym = append(sym[:best+1], sym[best+2:]...)
	}
	return sym
}

type candidate struct {
	rank, pos, id int32
}

type candHeap []candidate

func (h candHeap) Len() int { return len(h) }
func (h candHeap) Less(i, j int) bool {
	if h[i].rank != h[j].rank {
		return h[i].rank < h[j].rank
	}
	return h[i].pos < h[j].pos
}
func (h candHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *candHeap) Push(x any)   { *h = append(*h, x.(candidate)) }
func (h *candHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// applyMergesHeap is applyMerges in O(n log n) for long pieces: a linked
// list of symbols and a heap of candidate merges ordered by (rank,
// position), stale candidates being skipped when popped.
func applyMergesHeap(merges map[uint64]mergeInfo, sym []int32) []int32 {
	n := len(sym)
	prev := make([]int32, n)
	next := make([]int32, n)
	alive := make([]bool, n)
	for i := range n {
		prev[i], next[i], alive[i] = int32(i-1), int32(i+1), true
	}
	next[n-1] = -1
	h := make(candHeap, 0, n)
	for i := 0; i+1 < n; i++ {
		if m, ok := merges[pairKey(sym[i], sym[i+1])]; ok {
			h = append(h, candidate{m.rank, int32(i), m.id})
		}
	}
	heap.Init(&h)
	push := func(i int32) {
		if i < 0 || next[i] < 0 {
			return
		}
		if m, ok := merges[pairKey(sym[i], sym[next[i]])]; ok {
			heap.Push(&h, candidate{m.rank, i, m.id})
		}
	}
	for h.Len() > 0 {
		c := heap.Pop(&h).(candidate)
		i := c.pos
		if !alive[i] || next[i] < 0 {
			continue
		}
		j := next[i]
		if m, ok := merges[pairKey(sym[i], sym[j])]; !ok || m.id != c.id || m.rank != c.rank {
			continue
		}
		sym[i] = c.id
		alive[j] = false
		next[i] = next[j]
		if next[j] >= 0 {
			prev[next[j]] = i
		}
		push(prev[i])
		push(i)
	}
	out := sym[:0]
	for i := int32(0); i >= 0; i = next[i] {
		out = append(out, sym[i])
	}
	return out
}
