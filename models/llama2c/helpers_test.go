package llama2c

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/dpinstruct/dpinstruct/internal/shared"
)

// EnvStories260K names the folder holding stories260K.bin and tok512.bin,
// overriding <repo>/../shared/models/stories260K.
const EnvStories260K = "DPINSTRUCT_STORIES260K"

// stories260K returns the stories260K folder, skipping the test when it is
// absent.
func stories260K(t testing.TB) string {
	t.Helper()
	dir := stories260KDir()
	if dir == "" {
		t.Skipf("stories260K: no go.mod above the working directory; set %s", EnvStories260K)
	}
	for _, f := range []string{"stories260K.bin", "tok512.bin"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Skipf("stories260K not found (set %s to the folder holding stories260K.bin and tok512.bin): %v", EnvStories260K, err)
		}
	}
	return dir
}

// stories260KDir is $DPINSTRUCT_STORIES260K, else
// <repo>/../shared/models/stories260K with <repo> the first folder holding
// go.mod from the working directory up ("" when there is none).
func stories260KDir() string { return shared.Path(EnvStories260K, "models", "stories260K") }

// loadStories260K reads the real checkpoint and tokenizer.
func loadStories260K(t testing.TB) (*Checkpoint, *Tokenizer) {
	t.Helper()
	dir := stories260K(t)
	c, err := ReadCheckpointFile(filepath.Join(dir, "stories260K.bin"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := ReadTokenizer(filepath.Join(dir, "tok512.bin"), c.Config.Vocab)
	if err != nil {
		t.Fatal(err)
	}
	return c, tok
}

// header encodes a legacy checkpoint header.
func header(dim, hidden, layers, heads, kvHeads, vocab, seqLen int32) []byte {
	var b bytes.Buffer
	_ = binary.Write(&b, binary.LittleEndian, []int32{dim, hidden, layers, heads, kvHeads, vocab, seqLen})
	return b.Bytes()
}

// synthCheckpoint builds a complete legacy checkpoint for the header, its
// weights a deterministic small pattern, and returns the file bytes.
func synthCheckpoint(t testing.TB, dim, hidden, layers, heads, kvHeads, vocab, seqLen int32) []byte {
	t.Helper()
	h := header(dim, hidden, layers, heads, kvHeads, vocab, seqLen)
	cfg, err := configFromHeader([7]int32{dim, hidden, layers, heads, kvHeads, vocab, seqLen})
	if err != nil {
		t.Fatalf("synthCheckpoint: %v", err)
	}
	sizes, err := cfg.tensorSizes()
	if err != nil {
		t.Fatalf("synthCheckpoint: %v", err)
	}
	var n int64
	for _, s := range sizes {
		n += s
	}
	w := make([]float32, n)
	for i := range w {
		w[i] = float32((i*7919)%200-100) / 400
	}
	var b bytes.Buffer
	b.Write(h)
	_ = binary.Write(&b, binary.LittleEndian, w)
	return b.Bytes()
}
