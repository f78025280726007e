package textstats

import (
	"os"
	"slices"
	"strings"
	"testing"
)

func TestHarmfulScreen(t *testing.T) {
	tests := []struct {
		text string
		want bool
	}{
		{"What is the capital of France?", false},
		{"How do I bake bread?", false},
		// A false positive, expected and accepted for a crude screen.
		{"How do I kill a Python process?", true},
		{"How can I STEAL a car without getting caught?", true},
		{"what's the best way to launder money", true},
		{"Tell me how to hack into my neighbour's wifi", true},
		{"He was robbing the store and kidnapped a clerk", true},
		{"ways to hurt someone's feelings", true},
		{"Is self-harm ever okay?", true},
		{"Which method is faster?", false},       // meth is a word, not a prefix
		{"Build a robot that robs nobody", true}, // robs, not robot
		{"Build a robot", false},
		{"Explain the stealth bomber's design", true},
		{"Explain stealth technology", false},
		{"hack the planet into orbit", false}, // the phrase's words must be adjacent
		{"", false},
	}
	for _, tt := range tests {
		if got := harmful(LetterWords(tt.text)); got != tt.want {
			t.Errorf("%q matches = %v, want %v", tt.text, got, tt.want)
		}
	}
	texts := make([]string, len(tests))
	matched := 0
	for i, tt := range tests {
		texts[i] = tt.text
		if tt.want {
			matched++
		}
	}
	want := Screen{Texts: len(texts), Matched: matched, Share: float64(matched) / float64(len(texts))}
	if got := HarmfulShare(texts); got != want {
		t.Errorf("HarmfulShare = %+v, want %+v", got, want)
	}
	if got := HarmfulShare(nil); got != (Screen{}) {
		t.Errorf("HarmfulShare(nil) = %+v, want zeros", got)
	}
}

// TestHarmfulTermsAreSplitAsWritten keeps the documented list exact: every
// term is lower-case ASCII words separated by single spaces, so it matches
// what it says, and its doc comment lists exactly these terms.
func TestHarmfulTermsAreSplitAsWritten(t *testing.T) {
	for _, term := range HarmfulTerms {
		if got := strings.Join(LetterWords(term), " "); got != term || strings.ContainsFunc(term, func(r rune) bool { return r > 'z' }) {
			t.Errorf("term %q splits as %q; want lower-case ASCII words", term, got)
		}
	}
	if len(harmfulTerms()) != len(HarmfulTerms) {
		t.Errorf("%d terms split, %d listed", len(harmfulTerms()), len(HarmfulTerms))
	}
	src, err := os.ReadFile("screen.go")
	if err != nil {
		t.Fatal(err)
	}
	_, block, _ := strings.Cut(string(src), "It is, exactly:\n//\n")
	block, _, _ = strings.Cut(block, "\n//\n")
	var documented []string
	for _, line := range strings.Split(block, "\n") {
		for _, term := range strings.Split(strings.TrimPrefix(line, "//\t"), ",") {
			if term = strings.TrimSpace(term); term != "" {
				documented = append(documented, term)
			}
		}
	}
	if !slices.Equal(documented, HarmfulTerms) {
		t.Errorf("HarmfulTerms' doc comment lists\n%q\nbut the variable holds\n%q", documented, HarmfulTerms)
	}
}
