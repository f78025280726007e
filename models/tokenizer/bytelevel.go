package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

// byteChar[b] is the printable character GPT-2 (and HF's ByteLevel) uses to
// spell byte b inside vocabulary strings: printable Latin-1 bytes stand for
// themselves, the other 68 bytes map to U+0100... in byte order.
var byteChar [256]rune

// charByte inverts byteChar.
var charByte = map[rune]byte{}

// byteTok[b] is string(byteChar[b]).
var byteTok [256]string

func init() {
	n := 0
	for b := 0; b < 256; b++ {
		if (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF) {
			byteChar[b] = rune(b)
		} else {
			byteChar[b] = rune(256 + n)
			n++
		}
		charByte[byteChar[b]] = byte(b)
		byteTok[b] = string(byteChar[b])
	}
}

// toVocab spells raw bytes the ByteLevel way.
func toVocab(raw []byte) string {
	out := make([]rune, len(raw))
	for i, b := range raw {
		out[i] = byteChar[b]
	}
	return string(out)
}

// fromVocab turns a ByteLevel-spelled token back into raw bytes; ok is false
// if it holds a character outside the 256-character alphabet.
func fromVocab(s string) (raw []byte, ok bool) {
	raw = make([]byte, 0, len(s))
	for _, r := range s {
		b, found := charByte[r]
		if !found {
			return nil, false
		}
		raw = append(raw, b)
	}
	return raw, true
}

// Character classes of the GPT-2 pre-tokenisation pattern.
type class uint8

const (
	clsOther  class = iota // [^\s\p{L}\p{N}], and any invalid UTF-8 byte
	clsLetter              // \p{L}
	clsNumber              // \p{N}
	clsSpace               // \s (Unicode White_Space)
)

var asciiClass [utf8.RuneSelf]class

func init() {
	for c := 0; c < utf8.RuneSelf; c++ {
		asciiClass[c] = classOf(rune(c))
	}
}

func classOf(r rune) class {
	switch {
	case unicode.IsLetter(r):
		return clsLetter
	case unicode.IsNumber(r):
		return clsNumber
	case unicode.IsSpace(r):
		return clsSpace
	}
	return clsOther
}

// classAt returns the class of the character starting at s[i] and its
// width in bytes. An invalid UTF-8 byte is one "other" character.
func classAt(s string, i int) (class, int) {
	if c := s[i]; c < utf8.RuneSelf {
		return asciiClass[c], 1
	}
	r, w := utf8.DecodeRuneInString(s[i:])
	if r == utf8.RuneError && w <= 1 {
		return clsOther, 1
	}
	return classOf(r), w
}

// contraction returns the length of 's|'t|'re|'ve|'m|'ll|'d after the
// apostrophe at the start of rest (rest excludes the apostrophe), or 0.
func contraction(rest string) int {
	if rest == "" {
		return 0
	}
	switch rest[0] {
	case 's', 't', 'm', 'd':
		return 1
	case 'r', 'v':
		if len(rest) > 1 && rest[1] == 'e' {
			return 2
		}
	case 'l':
		if len(rest) > 1 && rest[1] == 'l' {
			return 2
		}
	}
	return 0
}

// preTokenize splits s the way GPT-2's pattern
//
//	's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//
// does (leftmost-first alternation, as in HF's ByteLevel pre-tokenizer with
// use_regex), without a regexp engine and so without needing lookahead. It
// calls emit with the byte range of each piece; the pieces cover s exactly,
// in order. Invalid UTF-8 bytes count as "other" characters.
func preTokenize(s string, emit func(start, end int)) {
	i := 0
	for i < len(s) {
		c := s[i]
		// 's 't 're 've 'm 'll 'd
		if c == '\'' {
			if n := contraction(s[i+1:]); n > 0 {
				emit(i, i+1+n)
				i += 1 + n
				continue
			}
		}
		cls, w := classAt(s, i)
		runStart := i
		if c == ' ' && i+1 < len(s) {
			// " ?X+": a single space attaches to a following non-space run.
			if next, _ := classAt(s, i+1); next != clsSpace {
				cls, runStart, w = next, i+1, 0
			}
		}
		if cls != clsSpace {
			k := runStart + w
			for k < len(s) {
				cl, cw := classAt(s, k)
				if cl != cls {
					break
				}
				k += cw
			}
			emit(i, k)
			i = k
			continue
		}
		// Whitespace run [i, k); last is the start of its last character.
		k, last := i, i
		for k < len(s) {
			cl, cw := classAt(s, k)
			if cl != clsSpace {
				break
			}
			last = k
			k += cw
		}
		if k == len(s) || last == i {
			// \s+(?!\S) to the end, or a lone \s before \S (\s+).
			emit(i, k)
			i = k
			continue
		}
		// \s+(?!\S): all but the last whitespace character, which then
		// starts the next piece (and, if it is a space, joins the word).
		emit(i, last)
		i = last
	}
}
