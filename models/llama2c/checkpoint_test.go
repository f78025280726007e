package llama2c

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"strings"
	"testing"
)

func TestReadCheckpointHeaderErrors(t *testing.T) {
	good := synthCheckpoint(t, 8, 12, 2, 2, 1, 16, 4)
	var magic bytes.Buffer
	_ = binary.Write(&magic, binary.LittleEndian, []uint32{versionedMagic, 2})
	magic.Write(make([]byte, 256))
	for _, tc := range []struct {
		name string
		data []byte
		want string // substring of the error
	}{
		{"empty", nil, "truncated"},
		{"short header", header(8, 12, 2, 2, 1, 16, 4)[:10], "truncated"},
		{"zero dim", header(0, 12, 2, 2, 1, 16, 4), "dim = 0"},
		{"negative hidden", header(8, -1, 2, 2, 1, 16, 4), "hidden_dim = -1"},
		{"zero layers", header(8, 12, 0, 2, 1, 16, 4), "n_layers = 0"},
		{"zero heads", header(8, 12, 2, 0, 1, 16, 4), "n_heads = 0"},
		{"zero kv heads", header(8, 12, 2, 2, 0, 16, 4), "n_kv_heads = 0"},
		{"zero vocab", header(8, 12, 2, 2, 1, 0, 4), "vocab_size = 0"},
		{"zero seq_len", header(8, 12, 2, 2, 1, 16, 0), "seq_len = 0"},
		{"heads do not divide dim", header(8, 12, 2, 3, 1, 16, 4), "n_heads 3 does not divide dim 8"},
		{"kv heads do not divide heads", header(8, 12, 2, 4, 3, 16, 4), "n_kv_heads 3 does not divide n_heads 4"},
		{"odd head size", header(6, 12, 2, 2, 1, 16, 4), "head size 3"},
		{"huge", header(1<<30, 1<<30, 1<<30, 2, 1, 16, 4), "claims more than"},
		{"no weights", header(8, 12, 2, 2, 1, 16, 4), "truncated"},
		{"truncated weights", good[:len(good)-3], "truncated"},
		{"trailing bytes", append(bytes.Clone(good), 0), "trailing bytes"},
		{"versioned format", magic.Bytes(), "version 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadCheckpoint(bytes.NewReader(tc.data))
			if err == nil {
				t.Fatalf("ReadCheckpoint: no error, want one containing %q", tc.want)
			}
			if !errors.Is(err, ErrFormat) {
				t.Errorf("error %v does not wrap ErrFormat", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestReadCheckpointSynthetic(t *testing.T) {
	for _, tc := range []struct {
		name   string
		vocab  int32
		shared bool
	}{{"shared classifier", 16, true}, {"own classifier", -16, false}} {
		t.Run(tc.name, func(t *testing.T) {
			data := synthCheckpoint(t, 8, 12, 2, 2, 1, tc.vocab, 4)
			c, err := ReadCheckpoint(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			want := Config{Dim: 8, Hidden: 12, Layers: 2, Heads: 2, KVHeads: 1, Vocab: 16, SeqLen: 4, SharedClassifier: tc.shared}
			if c.Config != want {
				t.Errorf("Config = %+v, want %+v", c.Config, want)
			}
			hs, kv := 4, 4
			for _, s := range []struct {
				name string
				got  []float32
				n    int
			}{
				{"TokenEmbedding", c.TokenEmbedding, 16 * 8}, {"RMSAtt", c.RMSAtt, 2 * 8},
				{"WQ", c.WQ, 2 * 8 * 8}, {"WK", c.WK, 2 * 8 * kv}, {"WV", c.WV, 2 * 8 * kv},
				{"WO", c.WO, 2 * 8 * 8}, {"RMSFFN", c.RMSFFN, 2 * 8}, {"W1", c.W1, 2 * 12 * 8},
				{"W2", c.W2, 2 * 8 * 12}, {"W3", c.W3, 2 * 12 * 8}, {"RMSFinal", c.RMSFinal, 8},
				{"FreqCisReal", c.FreqCisReal, 4 * hs / 2}, {"FreqCisImag", c.FreqCisImag, 4 * hs / 2},
				{"WCls", c.WCls, 16 * 8},
			} {
				if len(s.got) != s.n {
					t.Errorf("len(%s) = %d, want %d", s.name, len(s.got), s.n)
				}
			}
			// The tensors follow one another: W3 starts where W2 ended.
			if n := len(c.TokenEmbedding) + len(c.RMSAtt) + len(c.WQ) + len(c.WK) + len(c.WV) + len(c.WO) + len(c.RMSFFN) + len(c.W1) + len(c.W2); c.W3[0] != float32((n*7919)%200-100)/400 {
				t.Errorf("W3[0] = %v, not the float at offset %d", c.W3[0], n)
			}
			if tc.shared != (&c.WCls[0] == &c.TokenEmbedding[0]) {
				t.Errorf("WCls aliases TokenEmbedding = %v, want %v", !tc.shared, tc.shared)
			}
			// A forward runs over every position without panicking and
			// gives finite logits.
			s := c.NewState()
			for pos := range 4 {
				for _, v := range c.Forward(s, pos%16, pos) {
					if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
						t.Fatalf("pos %d: logit %v", pos, v)
					}
				}
			}
		})
	}
}

func TestReadCheckpointFileMissing(t *testing.T) {
	_, err := ReadCheckpointFile(t.TempDir() + "/nope.bin")
	if err == nil || !strings.Contains(err.Error(), "nope.bin") {
		t.Errorf("ReadCheckpointFile(missing) = %v, want an error naming the file", err)
	}
}

func TestStories260KConfig(t *testing.T) {
	c, _ := loadStories260K(t)
	want := Config{Dim: 64, Hidden: 172, Layers: 5, Heads: 8, KVHeads: 4, Vocab: 512, SeqLen: 512, SharedClassifier: true}
	if c.Config != want {
		t.Errorf("Config = %+v, want %+v", c.Config, want)
	}
}

// TestStories260KFreqCis checks the RoPE rotation Forward computes against
// the legacy tables export.py wrote into the file (cos and sin of pos *
// 1/10000^(2j/head_size)): the two must agree for the checkpoint's
// positions to mean what run.c thinks they mean.
func TestStories260KFreqCis(t *testing.T) {
	c, _ := loadStories260K(t)
	half := c.Config.HeadSize() / 2
	for pos := range c.Config.SeqLen {
		for j := range half {
			freq := 1.0 / math.Pow(ropeTheta, float64(float32(2*j)/float32(c.Config.HeadSize())))
			val := float64(float32(pos) * float32(freq))
			re, im := c.FreqCisReal[pos*half+j], c.FreqCisImag[pos*half+j]
			if math.Abs(float64(re)-math.Cos(val)) > 1e-3 || math.Abs(float64(im)-math.Sin(val)) > 1e-3 {
				t.Fatalf("pos %d pair %d: file has (%v, %v), rotation uses (%v, %v)", pos, j, re, im, math.Cos(val), math.Sin(val))
			}
		}
	}
}
