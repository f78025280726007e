package textstats

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode"
)

// testWords is testdata/words.txt: a few words, with capitals, an
// apostrophe, a possessive, an accent and a typographic apostrophe.
func testWords(t *testing.T) *WordList {
	t.Helper()
	w, err := LoadWordList(filepath.Join("testdata", "words.txt"))
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func TestLoadWordListNormalises(t *testing.T) {
	w := testWords(t)
	if w.Len() != 15 || w.Path() != filepath.Join("testdata", "words.txt") {
		t.Errorf("Len %d, Path %q; want 15 and testdata/words.txt", w.Len(), w.Path())
	}
	for word, want := range map[string]bool{
		"france": true, "i": true, "don't": true, "dog's": true, "café": true,
		"it's":    true, // stored from it’s
		"bread's": true, // possessive of a listed word
		"x":       true, // single letter
		"é":       true,
		"France":  false, // Known takes LetterWords' lower-case words
		"dogs":    false, "dog": false, "breads": false, "xy": false, "": false,
	} {
		if got := w.Known(word); got != want {
			t.Errorf("Known(%q) = %v, want %v", word, got, want)
		}
	}
}

func TestLoadWordListErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	missing := filepath.Join(dir, "missing.txt")
	if _, err := LoadWordList(missing); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing file: %v; want fs.ErrNotExist naming the path", err)
	}
	if _, err := LoadWordList(write("empty.txt", "\n \n\n")); err == nil || !strings.Contains(err.Error(), "no words") {
		t.Errorf("empty list: %v; want a no-words error", err)
	}
	if _, err := LoadWordList(write("latin1.txt", "word\ncaf\xe9\n")); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("Latin-1 list: %v; want an error naming line 2", err)
	}
}

func TestLetterWords(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"What is the capital of France?", []string{"what", "is", "the", "capital", "of", "france"}},
		{"I don't know, it’s the dog's", []string{"i", "don't", "know", "it's", "the", "dog's"}},
		{"'quoted' dogs' rock'n'roll", []string{"quoted", "dogs", "rock'n'roll"}},
		{"don''t", []string{"don", "t"}},
		{"mp3 2024 x86_64 3.14", []string{"mp", "x"}},
		{"https://go.dev/doc?q=1", []string{"https", "go", "dev", "doc", "q"}},
		{"e-mail self-harm", []string{"e", "mail", "self", "harm"}},
		// Letters are lower-cased one by one: no final sigma.
		{"Ünïcödé ΣΊΣΥΦΟΣ 東京", []string{"ünïcödé", "σίσυφοσ", "東京"}},
		{"cafe\u0301", []string{"cafe"}}, // a combining mark is not a letter
		{"bad\xffutf8", []string{"bad", "utf"}},
		{"", nil},
		{"123 !?", nil},
	}
	for _, tt := range tests {
		if got := LetterWords(tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("LetterWords(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// checkSpelling compares w.Spelling(texts) with want.
func checkSpelling(t *testing.T, w *WordList, texts []string, want Spelling) {
	t.Helper()
	if got := w.Spelling(texts); got != want {
		t.Errorf("Spelling(%q) =\n%+v, want\n%+v", texts, got, want)
	}
}

func TestSpelling(t *testing.T) {
	w := testWords(t)
	tests := []struct {
		name  string
		texts []string
		want  Spelling
	}{
		{"clean", []string{"What is the capital of France?"},
			Spelling{Texts: 1, CleanTexts: 1, CleanShare: 1, Words: 6, KnownWords: 6, KnownShare: 1}},
		{"one unknown word", []string{"How do I bake brad?", "How do I bake bread?"},
			Spelling{Texts: 2, CleanTexts: 1, CleanShare: 0.5, Words: 10, KnownWords: 9, KnownShare: 0.9}},
		{"apostrophes, possessives, single letters", []string{"I don’t bake the bread's crust", "Bake bread, X!"},
			Spelling{Texts: 2, CleanTexts: 1, CleanShare: 0.5, Words: 9, KnownWords: 8, KnownShare: 8.0 / 9}},
		{"texts without words are clean", []string{"", "42 + 7", "???"},
			Spelling{Texts: 3, CleanTexts: 3, CleanShare: 1}},
		{"no texts", nil, Spelling{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkSpelling(t, w, tt.texts, tt.want) })
	}
}

func TestSpellingWithoutAList(t *testing.T) {
	texts := []string{"What is the capital of France?", "x"}
	checkSpelling(t, nil, texts, Spelling{NoList: true, Texts: 2})
	checkSpelling(t, &WordList{}, texts, Spelling{NoList: true, Texts: 2})
	checkSpelling(t, NewWordList(" ", ""), texts, Spelling{NoList: true, Texts: 2})
	if (*WordList)(nil).Known("a") || (*WordList)(nil).Path() != "" {
		t.Error("a nil list knows a word or has a path")
	}
}

// TestSpellingDebianList runs on the list eval uses by default, when it is
// installed (apt-get install wamerican-large).
func TestSpellingDebianList(t *testing.T) {
	w, err := LoadWordList(DefaultWordListPath)
	if errors.Is(err, fs.ErrNotExist) {
		t.Skipf("%s not installed (Debian package wamerican-large)", DefaultWordListPath)
	}
	if err != nil {
		t.Fatal(err)
	}
	if w.Len() < 100_000 {
		t.Errorf("%d words; the large list has over 100,000", w.Len())
	}
	for text, clean := range map[string]bool{
		"What is the capital of France?":                true,
		"Don't forget the dog's bowl; it's Tom's turn.": true,
		"How do I intropose a snort?":                   false,
		"Whta is teh captial of Frnace?":                false,
	} {
		if got := w.Spelling([]string{text}).CleanTexts == 1; got != clean {
			t.Errorf("%q clean = %v, want %v", text, got, clean)
		}
	}
}

// FuzzSpelling checks that LetterWords never panics and returns only
// well-formed words, and that Spelling's counts agree with it.
func FuzzSpelling(f *testing.F) {
	for _, s := range []string{"What is the capital of France?", "don''t 'x' dogs'", "\xff’a’’b’", "İSTANBUL ǅ ß", ""} {
		f.Add(s)
	}
	w := NewWordList("what", "is", "the", "a", "don't", "istanbul")
	f.Fuzz(func(t *testing.T, s string) {
		words := LetterWords(s)
		for _, word := range words {
			if word == "" || word[0] == '\'' || word[len(word)-1] == '\'' || strings.Contains(word, "''") {
				t.Fatalf("malformed word %q", word)
			}
			for _, r := range word {
				if r != '\'' && !unicode.IsLetter(r) {
					t.Fatalf("word %q holds %q", word, r)
				}
			}
		}
		if again := LetterWords(strings.Join(words, " ")); !slices.Equal(again, words) {
			t.Fatalf("splitting the words again gives %q, not %q", again, words)
		}
		known := 0
		for _, word := range words {
			if w.Known(word) {
				known++
			}
		}
		sp := w.Spelling([]string{s, s})
		clean := 0
		if known == len(words) {
			clean = 2
		}
		if sp.Texts != 2 || sp.Words != 2*len(words) || sp.KnownWords != 2*known || sp.CleanTexts != clean {
			t.Fatalf("Spelling %+v; want %d words, %d known, %d clean texts", sp, 2*len(words), 2*known, clean)
		}
	})
}
