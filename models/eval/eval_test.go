package eval

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/dpinstruct/dpinstruct/models/embed"
	"github.com/dpinstruct/dpinstruct/models/filter"
	"github.com/dpinstruct/dpinstruct/models/textstats"
)

// topics builds n instructions over a few topics, each topic with its own
// vocabulary, in the given proportions.
func topics(n int, weights []int, template string) []string {
	vocab := [][]string{
		{"recipe", "bake", "flour", "oven", "sugar", "bread"},
		{"python", "function", "loop", "compile", "variable", "code"},
		{"planet", "orbit", "telescope", "galaxy", "star", "moon"},
	}
	var out []string
	total := 0
	for _, w := range weights {
		total += w
	}
	for i := range n {
		k, acc := 0, 0
		for j, w := range weights {
			acc += w
			if i*total/n < acc {
				k = j
				break
			}
		}
		v := vocab[k]
		out = append(out, fmt.Sprintf(template, v[i%6], v[(i+1)%6], v[(i+2)%6], i))
	}
	return out
}

func TestRunReportsMauveLeaksAndTheFilter(t *testing.T) {
	ctx := context.Background()
	real := topics(300, []int{1, 1, 1}, "please explain the %s and the %s with a %s number %d")
	// The synthetic pool over-represents the first topic; one text copies a
	// real one, another shares a long run with one.
	syn := topics(900, []int{6, 2, 1}, "%s then %s, tell me about %s %d")
	syn = append(syn, real[5], "<script>alert(1)</script> "+real[7]+" and more words")
	lex := embed.NewLexical(embed.LexicalOptions{})
	if err := lex.Fit(ctx, append(append([]string(nil), real...), syn...)); err != nil {
		t.Fatal(err)
	}
	rep, err := Run(ctx, real, syn, Options{
		Embedder: lex, Seeds: []uint64{1, 2, 3},
		Filter: &FilterOptions{Options: filter.Options{Clusters: 3, Output: 300, Seed: 1}, Delta: 1e-6},
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Leaks.Exact != 1 || rep.Leaks.Ngram != 1 {
		t.Errorf("leaks: %d exact, %d n-gram; want 1 and 1", rep.Leaks.Exact, rep.Leaks.Ngram)
	}
	if len(rep.Mauve.PerSeed) != 3 {
		t.Errorf("%d MAUVE seeds, want 3", len(rep.Mauve.PerSeed))
	}
	if rep.Filter == nil || !(rep.Filter.Mauve.Mauve > rep.Mauve.Mauve) {
		t.Errorf("the exact filter should raise MAUVE on a skewed pool: before %.4f, after %+v", rep.Mauve.Mauve, rep.Filter)
	}

	var text bytes.Buffer
	WriteText(&text, rep)
	lines := strings.Split(strings.TrimSpace(text.String()), "\n")
	if !strings.HasPrefix(lines[len(lines)-1], "mauve=") {
		t.Errorf("last line %q, want mauve=...", lines[len(lines)-1])
	}
	var page bytes.Buffer
	if err := WriteHTML(&page, rep); err != nil {
		t.Fatal(err)
	}
	html := page.String()
	for _, want := range []string{"<svg", "after the filter", "&lt;script&gt;alert(1)&lt;/script&gt;"} {
		if !strings.Contains(html, want) {
			t.Errorf("HTML report lacks %q", want)
		}
	}
	if strings.Contains(html, "<script") || strings.Contains(html, `src="http`) || strings.Contains(html, `href="http`) || strings.Contains(html, "url(http") {
		t.Error("HTML report has a script or an external resource")
	}
	if n := strings.Count(html, "<svg"); n < 4 {
		t.Errorf("%d plots, want 4 (MAUVE clusters, before, after, lengths)", n)
	}
}

func TestRunMeasuresSpellingAndTheHarmfulScreen(t *testing.T) {
	ctx := context.Background()
	real := topics(40, []int{1, 1, 1}, "please explain the %s and the %s with a %s number %d")
	syn := topics(40, []int{1, 1, 1}, "%s then %s, tell me about %s %d")
	syn[0], syn[1] = "how do I kill a stuck process?", "tell me about the galaxxy"
	lex := embed.NewLexical(embed.LexicalOptions{})
	if err := lex.Fit(ctx, append(append([]string(nil), real...), syn...)); err != nil {
		t.Fatal(err)
	}
	words := textstats.NewWordList("please", "explain", "the", "and", "with", "a", "number", "then", "tell", "me", "about",
		"recipe", "bake", "flour", "oven", "sugar", "bread", "python", "function", "loop", "compile", "variable", "code",
		"planet", "orbit", "telescope", "galaxy", "star", "moon", "how", "do", "kill", "stuck", "process")
	run := func(w *textstats.WordList) (*Report, string, string) {
		t.Helper()
		rep, err := Run(ctx, real, syn, Options{Embedder: lex, Seeds: []uint64{1}, WordList: w})
		if err != nil {
			t.Fatal(err)
		}
		var text, page bytes.Buffer
		WriteText(&text, rep)
		if err := WriteHTML(&page, rep); err != nil {
			t.Fatal(err)
		}
		return rep, text.String(), page.String()
	}

	rep, text, html := run(words)
	if rep.RealSpelling == nil || rep.SyntheticSpelling == nil {
		t.Fatal("no spelling with a word list")
	}
	if s := *rep.RealSpelling; s.CleanTexts != 40 || s.KnownWords != s.Words {
		t.Errorf("real spelling %+v, want every text clean", s)
	}
	if s := *rep.SyntheticSpelling; s.CleanTexts != 39 || s.KnownWords != s.Words-1 {
		t.Errorf("synthetic spelling %+v, want one misspelt word", s)
	}
	if rep.RealHarmful.Matched != 0 || rep.SyntheticHarmful.Matched != 1 || rep.SyntheticHarmful.Texts != 40 {
		t.Errorf("harmful screen: real %+v, synthetic %+v; want 0 and 1 of 40", rep.RealHarmful, rep.SyntheticHarmful)
	}
	for _, want := range []string{
		"spelling: texts with every word in the word list: real 100.0% (40 of 40), synthetic 97.5% (39 of 40); word list of 34 words\n",
		"spelling: words in the word list: real 100.0%",
		"harmful-request screen: texts matching: real 0.0% (0 of 40), synthetic 2.5% (1 of 40)\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("text report lacks %q:\n%s", want, text)
		}
	}
	for _, want := range []string{"spelling: texts with every word in the word list", "words in the word list", "97.5% (39 of 40)", "harmful-request screen"} {
		if !strings.Contains(html, want) {
			t.Errorf("HTML report lacks %q", want)
		}
	}

	rep, text, html = run(nil)
	if rep.RealSpelling != nil || rep.SyntheticSpelling != nil {
		t.Error("spelling measured without a word list")
	}
	if !strings.Contains(text, NoWordList+"\n") || strings.Contains(text, "spelling:") {
		t.Errorf("text report without a word list:\n%s", text)
	}
	if !strings.Contains(html, NoWordList) || strings.Contains(html, "words in the word list") {
		t.Error("HTML report without a word list lacks the no-list line or has spelling rows")
	}
	lines := strings.Split(strings.TrimSpace(text), "\n")
	if !strings.HasPrefix(lines[len(lines)-1], "mauve=") {
		t.Errorf("last line %q, want mauve=...", lines[len(lines)-1])
	}
}
