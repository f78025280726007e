package textstats

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"unicode"
	"unicode/utf8"
)

// DefaultWordListPath is Debian's large American English word list
// (package wamerican-large), the word list eval uses by default.
const DefaultWordListPath = "/usr/share/dict/american-english-large"

// WordList is a set of lower-cased words for Spelling. A nil *WordList
// has no list: Spelling on it says so (Spelling.NoList) rather than
// counting every word as unknown.
type WordList struct {
	words map[string]struct{}
	path  string
}

// LoadWordList reads a word list with one word per line, UTF-8, like
// /usr/share/dict/words. Entries are trimmed of surrounding white space,
// lower-cased and stored with ’ as '; empty lines are skipped and every
// other entry is kept as it is, including ones with apostrophes ("don't")
// and possessives ("dog's"). A file without any word is an error: every
// text would count as misspelt.
func LoadWordList(path string) (*WordList, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("textstats: word list: %w", err)
	}
	defer f.Close()
	w := &WordList{words: make(map[string]struct{}), path: path}
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		if !utf8.Valid(sc.Bytes()) {
			return nil, fmt.Errorf("textstats: word list %s: line %d is not UTF-8", path, line)
		}
		w.add(sc.Text())
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("textstats: word list %s: %w", path, err)
	}
	if len(w.words) == 0 {
		return nil, fmt.Errorf("textstats: word list %s: no words", path)
	}
	return w, nil
}

// NewWordList returns a word list of the given words, normalised as
// LoadWordList does; its Path is "".
func NewWordList(words ...string) *WordList {
	w := &WordList{words: make(map[string]struct{}, len(words))}
	for _, s := range words {
		w.add(s)
	}
	return w
}

func (w *WordList) add(entry string) {
	if e := strings.TrimSpace(entry); e != "" {
		w.words[strings.ToLower(strings.ReplaceAll(e, "’", "'"))] = struct{}{}
	}
}

// Len is the number of distinct entries (0 for a nil list).
func (w *WordList) Len() int {
	if w == nil {
		return 0
	}
	return len(w.words)
}

// Path is the file the list was loaded from ("" for a nil list or one
// made by NewWordList).
func (w *WordList) Path() string {
	if w == nil {
		return ""
	}
	return w.path
}

// Known reports whether word, as LetterWords returns it (lower-case,
// apostrophes as '), counts as spelt correctly: it is in the list, or it
// ends in 's and the rest is in the list (lists do not hold every
// possessive), or it is a single letter ("I", "a", "x" in "solve for x",
// "B" in "plan B"), which every list would otherwise get wrong in some way.
func (w *WordList) Known(word string) bool {
	if w == nil {
		return false
	}
	if _, ok := w.words[word]; ok {
		return true
	}
	if stem, ok := strings.CutSuffix(word, "'s"); ok {
		if _, ok := w.words[stem]; ok {
			return true
		}
	}
	return utf8.RuneCountInString(word) == 1
}

// LetterWords splits s into the words Spelling checks: maximal runs of
// letters (unicode.IsLetter) that may be joined by single apostrophes
// inside them (' or ’, returned as '), lower-cased. Digits, punctuation,
// symbols, combining marks and invalid UTF-8 separate words and are never
// part of one, so "mp3" gives "mp", "https://go.dev/doc" gives "https",
// "go", "dev" and "doc", "rock'n'roll" stays whole, and the quotes of
// 'hello' or the trailing apostrophe of "dogs'" are dropped.
func LetterWords(s string) []string {
	var (
		out  []string
		b    strings.Builder
		apos bool // an apostrophe follows the letters in b
	)
	flush := func() {
		if b.Len() > 0 {
			out = append(out, b.String())
			b.Reset()
		}
		apos = false
	}
	for _, r := range s {
		if r == '’' {
			r = '\''
		}
		switch {
		case unicode.IsLetter(r):
			if apos {
				b.WriteByte('\'')
				apos = false
			}
			b.WriteRune(unicode.ToLower(r))
		case r == '\'' && b.Len() > 0 && !apos:
			apos = true
		default:
			flush()
		}
	}
	flush()
	return out
}

// Spelling is how many texts and words of a set a word list knows.
type Spelling struct {
	// NoList is set when there was no word list (a nil or empty
	// *WordList); then only Texts is counted.
	NoList bool
	// Texts is the number of texts; CleanTexts those whose every word is
	// known. A text without words (empty, digits or punctuation only)
	// counts as clean: it has nothing misspelt.
	Texts, CleanTexts int
	CleanShare        float64 // CleanTexts / Texts; 0 with no texts
	// Words is the number of words (LetterWords) over all texts,
	// KnownWords those the list knows (WordList.Known).
	Words, KnownWords int
	KnownShare        float64 // KnownWords / Words; 0 with no words
}

// Spelling measures texts against the list: the share of texts whose every
// word is known and the share of words that are known, with words as
// LetterWords splits them and known as Known decides. It is a crude
// measure of how much of a text set is real English: a word list misses
// names and new words, so real human texts do not score 100% either; the
// point is comparing sets against the same list.
func (w *WordList) Spelling(texts []string) Spelling {
	s := Spelling{Texts: len(texts)}
	if w.Len() == 0 {
		s.NoList = true
		return s
	}
	for _, t := range texts {
		clean := true
		for _, word := range LetterWords(t) {
			s.Words++
			if w.Known(word) {
				s.KnownWords++
			} else {
				clean = false
			}
		}
		if clean {
			s.CleanTexts++
		}
	}
	if s.Texts > 0 {
		s.CleanShare = float64(s.CleanTexts) / float64(s.Texts)
	}
	if s.Words > 0 {
		s.KnownShare = float64(s.KnownWords) / float64(s.Words)
	}
	return s
}
