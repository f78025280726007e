package llama2c

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
)

// ErrFormat is wrapped by every error about a malformed or unsupported
// checkpoint or tokenizer file, so callers can tell bad input from I/O
// failures with errors.Is.
var ErrFormat = errors.New("llama2c: bad file format")

// versionedMagic opens the newer llama2.c exports (export.py --version 1
// and 2: "ak42" little-endian, then an int32 version). run.c reads only the
// legacy header, and so does this package.
const versionedMagic = 0x616b3432

// Config is the legacy llama2.c header: seven int32, with the sign of
// vocab_size saying whether the classifier shares the token embedding.
type Config struct {
	Dim     int // transformer width
	Hidden  int // SwiGLU hidden width
	Layers  int
	Heads   int // query heads
	KVHeads int // key/value heads (grouped-query attention when < Heads)
	Vocab   int
	SeqLen  int // positions the KV cache holds
	// SharedClassifier is true when the header's vocab_size is positive:
	// the output projection is the token embedding table and the file
	// holds no separate wcls.
	SharedClassifier bool
}

// HeadSize is Dim / Heads.
func (c Config) HeadSize() int { return c.Dim / c.Heads }

// KVDim is the width of the keys and values of one position.
func (c Config) KVDim() int { return c.KVHeads * c.HeadSize() }

// Checkpoint is a llama2.c model: its Config and float32 weights, each a
// row-major slice in run.c's layout. Per-layer tensors are stacked along
// the first axis.
type Checkpoint struct {
	Config Config

	TokenEmbedding []float32 // [Vocab, Dim]
	RMSAtt         []float32 // [Layers, Dim]
	WQ             []float32 // [Layers, Heads*HeadSize, Dim]: q = WQ @ x
	WK             []float32 // [Layers, KVHeads*HeadSize, Dim]
	WV             []float32 // [Layers, KVHeads*HeadSize, Dim]
	WO             []float32 // [Layers, Dim, Heads*HeadSize]
	RMSFFN         []float32 // [Layers, Dim]
	W1             []float32 // [Layers, Hidden, Dim]
	W2             []float32 // [Layers, Dim, Hidden]
	W3             []float32 // [Layers, Hidden, Dim]
	RMSFinal       []float32 // [Dim]
	// FreqCisReal and FreqCisImag are the legacy RoPE tables
	// ([SeqLen, HeadSize/2] each). run.c ignores them and recomputes the
	// rotation; they are kept so a converter can check or drop them.
	FreqCisReal []float32
	FreqCisImag []float32
	// WCls is the classifier [Vocab, Dim]; it aliases TokenEmbedding when
	// Config.SharedClassifier.
	WCls []float32
}

// maxFloats bounds the weights a header may claim (16 GiB of float32), so
// a corrupt header fails with a clear error instead of an overflow.
const maxFloats = 1 << 32

// ReadCheckpointFile reads a legacy llama2.c checkpoint from path.
func ReadCheckpointFile(path string) (*Checkpoint, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("llama2c: checkpoint: %w", err)
	}
	defer f.Close()
	c, err := ReadCheckpoint(bufio.NewReaderSize(f, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// ReadCheckpoint reads a legacy (version 0) llama2.c checkpoint: the header,
// the weights in run.c's order, and nothing after them.
func ReadCheckpoint(r io.Reader) (*Checkpoint, error) {
	var hdr [7]int32
	if err := binary.Read(r, binary.LittleEndian, hdr[:1]); err != nil {
		return nil, fmt.Errorf("llama2c: checkpoint header: %w", truncated(err))
	}
	if uint32(hdr[0]) == versionedMagic {
		var version int32
		if err := binary.Read(r, binary.LittleEndian, &version); err != nil {
			return nil, fmt.Errorf("llama2c: checkpoint: magic \"ak42\" without a version: %w", truncated(err))
		}
		return nil, fmt.Errorf("%w: checkpoint has magic \"ak42\" (0x%08x) and version %d; only the legacy version-0 format (a bare 7-int32 header, as run.c reads) is supported", ErrFormat, uint32(versionedMagic), version)
	}
	if err := binary.Read(r, binary.LittleEndian, hdr[1:]); err != nil {
		return nil, fmt.Errorf("llama2c: checkpoint header: %w", truncated(err))
	}
	cfg, err := configFromHeader(hdr)
	if err != nil {
		return nil, err
	}
	sizes, err := cfg.tensorSizes()
	if err != nil {
		return nil, err
	}
	ck := &Checkpoint{Config: cfg}
	dst := []*[]float32{
		&ck.TokenEmbedding, &ck.RMSAtt, &ck.WQ, &ck.WK, &ck.WV, &ck.WO,
		&ck.RMSFFN, &ck.W1, &ck.W2, &ck.W3, &ck.RMSFinal,
		&ck.FreqCisReal, &ck.FreqCisImag, &ck.WCls,
	}
	for i, n := range sizes {
		if n == 0 { // wcls when shared
			continue
		}
		w, err := readFloats(r, n)
		if err != nil {
			return nil, fmt.Errorf("llama2c: checkpoint tensor %s (%d floats): %w", tensorNames[i], n, err)
		}
		*dst[i] = w
	}
	if cfg.SharedClassifier {
		ck.WCls = ck.TokenEmbedding
	}
	if err := expectEnd(r, "checkpoint", fmt.Sprintf("after the last tensor (header %+v)", cfg)); err != nil {
		return nil, err
	}
	return ck, nil
}

// expectEnd checks that r holds nothing more: a file with trailing bytes
// is not the format it claims (a wrong size in its header, or a wrong
// vocabulary size given for a tokenizer), so it is refused.
func expectEnd(r io.Reader, what, where string) error {
	var one [1]byte
	switch n, err := io.ReadFull(r, one[:]); {
	case n > 0:
		return fmt.Errorf("%w: %s has trailing bytes %s", ErrFormat, what, where)
	case err != nil && !errors.Is(err, io.EOF):
		return fmt.Errorf("llama2c: %s: %w", what, err)
	}
	return nil
}

var tensorNames = []string{
	"token_embedding_table", "rms_att_weight", "wq", "wk", "wv", "wo",
	"rms_ffn_weight", "w1", "w2", "w3", "rms_final_weight",
	"freq_cis_real", "freq_cis_imag", "wcls",
}

func configFromHeader(h [7]int32) (Config, error) {
	c := Config{
		Dim: int(h[0]), Hidden: int(h[1]), Layers: int(h[2]), Heads: int(h[3]),
		KVHeads: int(h[4]), Vocab: int(h[5]), SeqLen: int(h[6]),
		SharedClassifier: h[5] > 0,
	}
	if c.Vocab < 0 {
		c.Vocab = -c.Vocab
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"dim", c.Dim}, {"hidden_dim", c.Hidden}, {"n_layers", c.Layers}, {"n_heads", c.Heads}, {"n_kv_heads", c.KVHeads}, {"vocab_size", c.Vocab}, {"seq_len", c.SeqLen}} {
		if f.v <= 0 {
			return c, fmt.Errorf("%w: checkpoint header %s = %d, want > 0", ErrFormat, f.name, f.v)
		}
	}
	if c.Dim%c.Heads != 0 {
		return c, fmt.Errorf("%w: checkpoint header n_heads %d does not divide dim %d", ErrFormat, c.Heads, c.Dim)
	}
	if c.Heads%c.KVHeads != 0 {
		return c, fmt.Errorf("%w: checkpoint header n_kv_heads %d does not divide n_heads %d", ErrFormat, c.KVHeads, c.Heads)
	}
	// RoPE rotates pairs (i, i+1) within a head, and the legacy tables hold
	// head_size/2 frequencies: an odd head size has no meaning there.
	if c.HeadSize()%2 != 0 {
		return c, fmt.Errorf("%w: checkpoint head size %d (dim %d / n_heads %d) is odd; RoPE needs it even", ErrFormat, c.HeadSize(), c.Dim, c.Heads)
	}
	return c, nil
}

// tensorSizes gives the float count of each tensor in tensorNames order
// (wcls 0 when shared), refusing totals beyond maxFloats.
func (c Config) tensorSizes() ([]int64, error) {
	hs := int64(c.HeadSize())
	dim, hid, L := int64(c.Dim), int64(c.Hidden), int64(c.Layers)
	kv := int64(c.KVHeads) * hs
	q := int64(c.Heads) * hs
	var total int64
	overflow := false
	mul := func(xs ...int64) int64 {
		p := int64(1)
		for _, x := range xs {
			if x != 0 && p > maxFloats/x {
				overflow = true
				return 0
			}
			p *= x
		}
		return p
	}
	sizes := []int64{
		mul(int64(c.Vocab), dim), mul(L, dim), mul(L, dim, q), mul(L, dim, kv), mul(L, dim, kv),
		mul(L, q, dim), mul(L, dim), mul(L, dim, hid), mul(L, hid, dim), mul(L, dim, hid), dim,
		mul(int64(c.SeqLen), hs/2), mul(int64(c.SeqLen), hs/2), 0,
	}
	if !c.SharedClassifier {
		sizes[13] = mul(int64(c.Vocab), dim)
	}
	for _, s := range sizes {
		total += s
	}
	if overflow || total > maxFloats {
		return nil, fmt.Errorf("%w: checkpoint header %+v claims more than %d float32 weights", ErrFormat, c, int64(maxFloats))
	}
	return sizes, nil
}

// readFloats reads n little-endian float32 values. It reads in chunks so
// memory grows with the bytes actually present, not with what a corrupt
// header claims.
func readFloats(r io.Reader, n int64) ([]float32, error) {
	const chunk = 1 << 16
	out := make([]float32, 0, min(n, chunk))
	buf := make([]byte, 4*chunk)
	for left := n; left > 0; {
		k := min(left, chunk)
		if _, err := io.ReadFull(r, buf[:4*k]); err != nil {
			return nil, truncated(err)
		}
		for i := range k {
			out = append(out, math.Float32frombits(binary.LittleEndian.Uint32(buf[4*i:])))
		}
		left -= k
	}
	return out, nil
}

// truncated turns a short read into an ErrFormat error that says so.
func truncated(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: file is truncated (%w)", ErrFormat, err)
	}
	return err
}
