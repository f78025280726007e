package llama2c

import (
	"bytes"
	"encoding/binary"
	"errors"
	"slices"
	"strings"
	"testing"
)

// tokFile encodes a llama2.c tokenizer file.
func tokFile(maxLen int32, pieces []string, scores []float32) []byte {
	var b bytes.Buffer
	_ = binary.Write(&b, binary.LittleEndian, maxLen)
	for i, p := range pieces {
		_ = binary.Write(&b, binary.LittleEndian, scores[i])
		_ = binary.Write(&b, binary.LittleEndian, int32(len(p)))
		b.WriteString(p)
	}
	return b.Bytes()
}

// decodeAll joins Decode of each token after its predecessor, as run.c
// prints a sequence (ids[0] is the first context token, not printed).
func decodeAll(tok *Tokenizer, ids []int) string {
	var b strings.Builder
	for i := 1; i < len(ids); i++ {
		b.WriteString(tok.Decode(ids[i-1], ids[i]))
	}
	return b.String()
}

func TestReadTokenizerErrors(t *testing.T) {
	good := tokFile(3, []string{"a", "bc", ""}, []float32{0, -1, 2})
	for _, tc := range []struct {
		name  string
		data  []byte
		vocab int
		want  string
	}{
		{"empty", nil, 3, "truncated"},
		{"zero vocab", good, 0, "vocabulary size 0"},
		{"zero max length", tokFile(0, nil, nil), 3, "max_token_length 0"},
		{"negative length", append(tokFile(3, nil, nil), 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff), 1, "length -1"},
		{"too long", tokFile(1, []string{"ab"}, []float32{0}), 1, "length 2, want 0..1"},
		{"truncated piece", good[:len(good)-9], 3, "truncated"},
		// A corrupt length must fail on the missing bytes, not allocate 1 GiB.
		{"huge length", append(tokFile(1<<30, nil, nil), 0, 0, 0, 0, 0, 0, 0, 0x40, 'x'), 1, "truncated"},
		{"fewer tokens", good, 4, "token 3 of 4"},
		{"more tokens", good, 2, "trailing bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadTokenizerFrom(bytes.NewReader(tc.data), tc.vocab)
			if err == nil {
				t.Fatalf("no error, want one containing %q", tc.want)
			}
			if !errors.Is(err, ErrFormat) {
				t.Errorf("error %v does not wrap ErrFormat", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
	tok, err := ReadTokenizerFrom(bytes.NewReader(good), 3)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(tok.Vocab, []string{"a", "bc", ""}) || !slices.Equal(tok.Scores, []float32{0, -1, 2}) || tok.MaxTokenLength != 3 {
		t.Errorf("read %q %v %d", tok.Vocab, tok.Scores, tok.MaxTokenLength)
	}
}

// TestEncodeMergeOrder checks, on a hand-made vocabulary, that merges go
// by best score rather than left to right, and that unknown code points
// fall back to byte tokens (id byte+3).
func TestEncodeMergeOrder(t *testing.T) {
	pieces := make([]string, 259+5)
	scores := make([]float32, len(pieces))
	pieces[0], pieces[1], pieces[2] = "<unk>", "\n<s>\n", "\n</s>\n"
	for b := range 256 {
		pieces[b+3] = string([]byte{'<', '0', 'x', "0123456789ABCDEF"[b>>4], "0123456789ABCDEF"[b&15], '>'})
	}
	// 259 " ", 260 "a", 261 "b", 262 "ab" (score 1), 263 " a" (score 5).
	copy(pieces[259:], []string{" ", "a", "b", "ab", " a"})
	copy(scores[259:], []float32{0, 0, 0, 1, 5})
	tok, err := ReadTokenizerFrom(bytes.NewReader(tokFile(6, pieces, scores)), len(pieces))
	if err != nil {
		t.Fatal(err)
	}
	// " "+"a" (5) beats "a"+"b" (1): " a", "b", not " ", "ab".
	if got, want := tok.Encode("ab", true, true), []int{BOS, 263, 261, EOS}; !slices.Equal(got, want) {
		t.Errorf("Encode(ab) = %v, want %v", got, want)
	}
	// "é" is not in the vocabulary: its two UTF-8 bytes fall back.
	if got, want := tok.Encode("bé", false, false), []int{259, 261, 0xC3 + 3, 0xA9 + 3}; !slices.Equal(got, want) {
		t.Errorf("Encode(bé) = %v, want %v", got, want)
	}
	if got := tok.Encode("", true, false); !slices.Equal(got, []int{BOS}) {
		t.Errorf("Encode(\"\") = %v, want just BOS (no dummy prefix)", got)
	}
	if got := decodeAll(tok, tok.Encode("bé ab", true, false)); got != "bé ab" {
		t.Errorf("round trip = %q", got)
	}
}

func TestDecode(t *testing.T) {
	tok := &Tokenizer{Vocab: []string{"<unk>", "\n<s>\n", "\n</s>\n", "<0x0A>", " Once", "<0xe9>", "<0x4G>"}}
	for _, tc := range []struct {
		prev, id int
		want     string
	}{
		{BOS, 4, "Once"}, // dummy prefix dropped after BOS
		{4, 4, " Once"},  // kept elsewhere
		{4, 3, "\n"},     // raw byte
		{4, 5, "\xe9"},   // lower-case hex
		{4, 6, "<0x4G>"}, // not a byte token
		{4, 99, ""},      // out of range
		{BOS, 3, "\n"},
	} {
		if got := tok.Decode(tc.prev, tc.id); got != tc.want {
			t.Errorf("Decode(%d, %d) = %q, want %q", tc.prev, tc.id, got, tc.want)
		}
	}
	for p, want := range map[string]string{"\n": "\n", "\x01": "", "\xe9": "", "ab": "ab", "a": "a"} {
		if got := SafePiece(p); got != want {
			t.Errorf("SafePiece(%q) = %q, want %q", p, got, want)
		}
	}
}

func TestStories260KEncode(t *testing.T) {
	_, tok := loadStories260K(t)
	// SentencePiece gives the four whole words, each with its "▁" prefix
	// (a space in llama2.c's export): " Once" " upon" " a" " time".
	got := tok.Encode("Once upon a time", true, false)
	want := []int{BOS, tok.Lookup(" Once"), tok.Lookup(" upon"), tok.Lookup(" a"), tok.Lookup(" time")}
	if !slices.Equal(got, want) || slices.Contains(want, -1) {
		t.Errorf("Encode(Once upon a time) = %v, want %v", got, want)
	}
	// Pinned ids, so a change of lookup or merge order shows.
	if !slices.Equal(got, []int{1, 403, 407, 261, 378}) {
		t.Errorf("Encode(Once upon a time) = %v, want [1 403 407 261 378]", got)
	}
	if got := tok.Encode("Once upon a time", false, true); got[len(got)-1] != EOS || got[0] == BOS {
		t.Errorf("Encode(bos=false, eos=true) = %v", got)
	}
}

func TestStories260KRoundTrip(t *testing.T) {
	_, tok := loadStories260K(t)
	for _, text := range []string{
		"Once upon a time",
		readmeSentence,
		" leading and  double  spaces ",
		"Lily's dog said: \"Hello!\"\nNew line\ttab.",
		"héllo wörld 日本語 🙂",
		"\x00\x01\xff\x80 broken utf-8 \xc3",
		"12345 + 678 = 7023",
	} {
		ids := tok.Encode(text, true, false)
		for _, id := range ids {
			if id < 0 || id >= len(tok.Vocab) {
				t.Fatalf("Encode(%q) gave id %d outside the %d-token vocabulary", text, id, len(tok.Vocab))
			}
		}
		if got := decodeAll(tok, ids); got != text {
			t.Errorf("round trip of %q gave %q (ids %v)", text, got, ids)
		}
		assertMerged(t, tok, ids)
	}
}

// assertMerged checks encode ran to completion: no two adjacent tokens
// concatenate to a vocabulary piece.
func assertMerged(t *testing.T, tok *Tokenizer, ids []int) {
	t.Helper()
	for i := 0; i+1 < len(ids); i++ {
		if id := tok.Lookup(tok.piece(ids[i]) + tok.piece(ids[i+1])); id >= 0 {
			t.Errorf("tokens %d %d (%q %q) were left unmerged though %d is in the vocabulary", ids[i], ids[i+1], tok.piece(ids[i]), tok.piece(ids[i+1]), id)
		}
	}
}
