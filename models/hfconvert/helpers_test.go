package hfconvert

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/dpinstruct/dpinstruct/models/llama2c"

	"github.com/dpinstruct/dpinstruct/internal/shared"
)

// envStories260K names the folder holding stories260K.bin and tok512.bin,
// overriding <repo>/../shared/models/stories260K (as in models/llama2c).
const envStories260K = "DPINSTRUCT_STORIES260K"

// stories260KDir is $DPINSTRUCT_STORIES260K, else
// <repo>/../shared/models/stories260K ("" when no go.mod is above).
func stories260KDir() string { return shared.Path(envStories260K, "models", "stories260K") }

// loadStories260K reads the real checkpoint and tokenizer, skipping the
// test when they are absent.
func loadStories260K(t testing.TB) (*llama2c.Checkpoint, *llama2c.Tokenizer) {
	t.Helper()
	dir := stories260KDir()
	for _, f := range []string{"stories260K.bin", "tok512.bin"} {
		if _, err := os.Stat(filepath.Join(dir, f)); dir == "" || err != nil {
			t.Skipf("stories260K not found in %q (set %s to the folder holding stories260K.bin and tok512.bin): %v", dir, envStories260K, err)
		}
	}
	ck, err := llama2c.ReadCheckpointFile(filepath.Join(dir, "stories260K.bin"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := llama2c.ReadTokenizer(filepath.Join(dir, "tok512.bin"), ck.Config.Vocab)
	if err != nil {
		t.Fatal(err)
	}
	return ck, tok
}

// synthCheckpoint builds a random llama2.c model in memory: small normal
// weights (norm weights near 1) so the logits are not flat.
func synthCheckpoint(t testing.TB, cfg llama2c.Config, seed uint64) *llama2c.Checkpoint {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 1))
	randn := func(n int, scale float32) []float32 {
		w := make([]float32, n)
		for i := range w {
			w[i] = float32(r.NormFloat64()) * scale
		}
		return w
	}
	norm := func(n int) []float32 {
		w := randn(n, 0.1)
		for i := range w {
			w[i]++
		}
		return w
	}
	hs := cfg.HeadSize()
	q, kv, L, d, h := cfg.Heads*hs, cfg.KVDim(), cfg.Layers, cfg.Dim, cfg.Hidden
	ck := &llama2c.Checkpoint{
		Config:         cfg,
		TokenEmbedding: randn(cfg.Vocab*d, 1),
		RMSAtt:         norm(L * d),
		WQ:             randn(L*q*d, 0.3),
		WK:             randn(L*kv*d, 0.3),
		WV:             randn(L*kv*d, 0.3),
		WO:             randn(L*d*q, 0.3),
		RMSFFN:         norm(L * d),
		W1:             randn(L*h*d, 0.3),
		W2:             randn(L*d*h, 0.3),
		W3:             randn(L*h*d, 0.3),
		RMSFinal:       norm(d),
	}
	if cfg.SharedClassifier {
		ck.WCls = ck.TokenEmbedding
	} else {
		ck.WCls = randn(cfg.Vocab*d, 0.3)
	}
	return ck
}

// synthTokenizer is a minimal SentencePiece-like llama2.c vocabulary of n
// pieces (n >= 259 + 4): specials, the 256 byte tokens, then a few pieces.
func synthTokenizer(t testing.TB, n int) *llama2c.Tokenizer {
	t.Helper()
	var buf []byte
	put := func(score float32, p string) {
		buf = appendPiece(buf, score, p)
	}
	buf = appendInt32(buf, 16)
	put(0, "<unk>")
	put(0, "\n<s>\n")
	put(0, "\n</s>\n")
	for b := range 256 {
		put(0, byteName(b))
	}
	extra := []string{" ", "a", "b", " a", "ab", " ab", "c", "d", "e", "f"}
	for i := 259; i < n; i++ {
		p := extra[(i-259)%len(extra)]
		if i-259 >= len(extra) {
			p = p + string(rune('g'+(i-259)/len(extra)))
		}
		put(-float32(i-259), p)
	}
	tok, err := llama2c.ReadTokenizerFrom(bytesReader(buf), n)
	if err != nil {
		t.Fatalf("synthTokenizer: %v", err)
	}
	return tok
}

// appendInt32 and appendPiece encode llama2.c's tokenizer records.
func appendInt32(b []byte, v int32) []byte { return binary.LittleEndian.AppendUint32(b, uint32(v)) }

func appendPiece(b []byte, score float32, p string) []byte {
	b = binary.LittleEndian.AppendUint32(b, math.Float32bits(score))
	b = appendInt32(b, int32(len(p)))
	return append(b, p...)
}

// byteName is the byte-fallback piece of b.
func byteName(b int) string { return fmt.Sprintf("<0x%02X>", b) }

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
