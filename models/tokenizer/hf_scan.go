package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

// The HF loader's pre-tokenizers reproduce HF's JavaScript tokenizers
// (the reference of the goldens), whose regexes differ from Go's unicode
// package in what "\s" is: the ByteLevel pre-tokenizer's hard-coded regex
// uses JavaScript's own \s (which counts U+FEFF and not U+0085), while a
// Split regex from a tokenizer.json is rewritten to \p{White_Space} (U+0085
// yes, U+FEFF no, as Go's unicode.IsSpace). Hence two space predicates.

// jsSpace is JavaScript's \s.
func jsSpace(r rune) bool {
	switch r {
	case 0x85:
		return false
	case 0xFEFF:
		return true
	}
	return unicode.IsSpace(r)
}

// whiteSpace is \p{White_Space}.
func whiteSpace(r rune) bool { return unicode.IsSpace(r) }

// hfClassAt is classAt with a chosen space predicate.
func hfClassAt(s string, i int, space func(rune) bool) (class, rune, int) {
	r, w := rune(s[i]), 1
	if r >= utf8.RuneSelf {
		r, w = utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && w <= 1 {
			return clsOther, r, 1
		}
	}
	switch {
	case unicode.IsLetter(r):
		return clsLetter, r, w
	case unicode.IsNumber(r):
		return clsNumber, r, w
	case space(r):
		return clsSpace, r, w
	}
	return clsOther, r, w
}

// splitGPT2JS splits s as the ByteLevel pre-tokenizer of HF's JavaScript
// tokenizers does: GPT-2's pattern (see preTokenize) with JavaScript's \s.
func splitGPT2JS(s string, emit func(string)) {
	i := 0
	for i < len(s) {
		if s[i] == '\'' {
			if n := contraction(s[i+1:]); n > 0 {
				emit(s[i : i+1+n])
				i += 1 + n
				continue
			}
		}
		cls, _, w := hfClassAt(s, i, jsSpace)
		runStart := i
		if s[i] == ' ' && i+1 < len(s) {
			if next, _, _ := hfClassAt(s, i+1, jsSpace); next != clsSpace {
				cls, runStart, w = next, i+1, 0
			}
		}
		if cls != clsSpace {
			k := runStart + w
			for k < len(s) {
				cl, _, cw := hfClassAt(s, k, jsSpace)
				if cl != cls {
					break
				}
				k += cw
			}
			emit(s[i:k])
			i = k
			continue
		}
		k, last := spaceRun(s, i, jsSpace)
		if k == len(s) || last == i {
			emit(s[i:k])
			i = k
			continue
		}
		emit(s[i:last])
		i = last
	}
}

// spaceRun returns the end of the whitespace run starting at i and the
// start of its last character.
func spaceRun(s string, i int, space func(rune) bool) (end, last int) {
	k, last := i, i
	for k < len(s) {
		cl, _, cw := hfClassAt(s, k, space)
		if cl != clsSpace {
			break
		}
		last = k
		k += cw
	}
	return k, last
}

// qwen2Pattern is the Split regex of Qwen2's tokenizer.json (as HF's
// converter writes it); splitQwen2 is its scanner.
const qwen2Pattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`

// contractionFold is contraction case-insensitively, as (?i:...) with
// Unicode folding (U+017F, long s, folds to s; U+212A is no contraction).
func contractionFold(rest string) int {
	if rest == "" {
		return 0
	}
	switch rest[0] {
	case 's', 'S', 't', 'T', 'm', 'M', 'd', 'D':
		return 1
	case 'r', 'R', 'v', 'V':
		if len(rest) > 1 && (rest[1] == 'e' || rest[1] == 'E') {
			return 2
		}
	case 'l', 'L':
		if len(rest) > 1 && (rest[1] == 'l' || rest[1] == 'L') {
			return 2
		}
	case 0xC5: // U+017F (long s) folds to s
		if len(rest) > 1 && rest[1] == 0xBF {
			return 2
		}
	}
	return 0
}

func isCRLF(r rune) bool { return r == '\r' || r == '\n' }

// splitQwen2 splits s as qwen2Pattern does (leftmost-first alternation,
// greedy, \s as \p{White_Space}), without lookahead. Alternatives, tried in
// order at each position:
//
//  1. a contraction, any case;
//  2. a letter run, optionally led by one character that is not \r, \n, a
//     letter or a number (so " word", "(word", "\tword");
//  3. one number character;
//  4. a run of "other" characters, optionally led by one space, then any
//     \r\n run;
//  5. whitespace up to and including its last \r or \n;
//  6. whitespace not followed by a non-space: all of a run that ends the
//     text, else the run less its last character (if that leaves any);
//  7. whitespace (the single character left by 6).
func splitQwen2(s string, emit func(string)) {
	i := 0
	for i < len(s) {
		if s[i] == '\'' {
			if n := contractionFold(s[i+1:]); n > 0 {
				emit(s[i : i+1+n])
				i += 1 + n
				continue
			}
		}
		cls, r, w := hfClassAt(s, i, whiteSpace)
		// 2: [^\r\n\p{L}\p{N}]?\p{L}+
		start := -1
		if cls == clsLetter {
			start = i
		} else if cls != clsNumber && !isCRLF(r) && i+w < len(s) {
			if next, _, _ := hfClassAt(s, i+w, whiteSpace); next == clsLetter {
				start = i + w
			}
		}
		if start >= 0 {
			k := start
			for k < len(s) {
				cl, _, cw := hfClassAt(s, k, whiteSpace)
				if cl != clsLetter {
					break
				}
				k += cw
			}
			emit(s[i:k])
			i = k
			continue
		}
		// 3: \p{N}
		if cls == clsNumber {
			emit(s[i : i+w])
			i += w
			continue
		}
		// 4: ' ?[^\s\p{L}\p{N}]+[\r\n]*'
		start = -1
		if cls == clsOther {
			start = i
		} else if s[i] == ' ' && i+1 < len(s) {
			if next, _, _ := hfClassAt(s, i+1, whiteSpace); next == clsOther {
				start = i + 1
			}
		}
		if start >= 0 {
			k := start
			for k < len(s) {
				cl, _, cw := hfClassAt(s, k, whiteSpace)
				if cl != clsOther {
					break
				}
				k += cw
			}
			for k < len(s) && (s[k] == '\r' || s[k] == '\n') {
				k++
			}
			emit(s[i:k])
			i = k
			continue
		}
		// cls is clsSpace from here.
		end, last := spaceRun(s, i, whiteSpace)
		// 5: \s*[\r\n]+ ends after the run's last \r or \n.
		nl := -1
		for k := i; k < end; {
			_, r, cw := hfClassAt(s, k, whiteSpace)
			if isCRLF(r) {
				nl = k + cw
			}
			k += cw
		}
		if nl >= 0 {
			emit(s[i:nl])
			i = nl
			continue
		}
		// 6 and 7.
		if end == len(s) || last == i {
			emit(s[i:end])
			i = end
			continue
		}
		emit(s[i:last])
		i = last
	}
}

// splitDigitsJS splits s as HF's JavaScript Digits pre-tokenizer does with
// individual_digits (pattern [^\d]+|\d, where JavaScript's \d is ASCII
// 0-9 only), or into digit runs without it.
func splitDigitsJS(s string, individual bool, emit func(string)) {
	i := 0
	for i < len(s) {
		k := i
		if isDigit(s[i]) {
			k++
			for !individual && k < len(s) && isDigit(s[k]) {
				k++
			}
		} else {
			for k < len(s) && !isDigit(s[k]) {
				k++
			}
		}
		emit(s[i:k])
		i = k
	}
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
