package textstats

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/dpinstruct/dpinstruct/internal/golden"
)

const fox = "the quick brown fox jumps over the lazy dog near the river bank"

func leakage(t *testing.T, real, synth []string, tokenize func(string) []string, minTokens, maxReported int) *LeakReport {
	t.Helper()
	rep, err := Leakage(context.Background(), real, synth, tokenize, minTokens, maxReported)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestLeakage(t *testing.T) {
	many := make([]string, 5)
	for i := range many {
		many[i] = fmt.Sprintf("copy %d of %s", i, fox)
	}
	boiler := make([]string, 3*maxPostings)
	for i := range boiler {
		boiler[i] = fmt.Sprintf("given a reference text about topic %d what is it", i)
	}
	tests := []struct {
		name        string
		real, synth []string
		tokenize    func(string) []string
		minTokens   int
		maxReported int
		want        LeakReport
	}{
		{
			name:      "exact match",
			real:      []string{"Tell me a joke.", "Write a poem."},
			synth:     []string{"Something else entirely.", "Write a poem."},
			minTokens: 8, maxReported: -1,
			want: LeakReport{Exact: 1, Checked: 2, Leaks: []Leak{{SyntheticIndex: 1, RealIndex: 1, Kind: KindExact, NgramLen: 3}}},
		},
		{
			name:      "exact after whitespace normalisation",
			real:      []string{"Tell me a joke."},
			synth:     []string{"  Tell\tme   a\njoke. "},
			minTokens: 8, maxReported: -1,
			want: LeakReport{Exact: 1, Checked: 1, Leaks: []Leak{{0, 0, KindExact, 4}}},
		},
		{
			name:      "case-sensitive",
			real:      []string{"Tell me a joke."},
			synth:     []string{"tell me a joke."},
			minTokens: 8, maxReported: -1,
			want: LeakReport{Checked: 1},
		},
		{
			name:      "case differs but a run is shared",
			real:      []string{"Tell me a joke."},
			synth:     []string{"tell me a joke."},
			minTokens: 3, maxReported: -1,
			want: LeakReport{Ngram: 1, Checked: 1, Leaks: []Leak{{0, 0, KindNgram, 3}}},
		},
		{
			name:      "8-token run found",
			real:      []string{"unrelated words here", fox},
			synth:     []string{"yesterday I saw the quick brown fox jumps over the lazy cat"},
			minTokens: 8, maxReported: -1,
			want: LeakReport{Ngram: 1, Checked: 1, Leaks: []Leak{{0, 1, KindNgram, 8}}},
		},
		{
			name:      "7-token run not reported at 8",
			real:      []string{fox},
			synth:     []string{"yesterday I saw the quick brown fox jumps over the sleepy dog"},
			minTokens: 8, maxReported: -1,
			want: LeakReport{Checked: 1},
		},
		{
			name:      "run extended to its full length",
			real:      []string{"a b c d e f g h i j k l m n"},
			synth:     []string{"x b c d e f g h i j k l y"},
			minTokens: 3, maxReported: -1,
			want: LeakReport{Ngram: 1, Checked: 1, Leaks: []Leak{{0, 0, KindNgram, 11}}},
		},
		{
			name:      "longest run across real texts wins",
			real:      []string{"p q r s t u", "a p q r s t u v w z"},
			synth:     []string{"p q r s t u v w"},
			minTokens: 4, maxReported: -1,
			want: LeakReport{Ngram: 1, Checked: 1, Leaks: []Leak{{0, 1, KindNgram, 8}}},
		},
		{
			name:      "longest of two runs in one text",
			real:      []string{"a b c d e f g h i j"},
			synth:     []string{"a b c X d e f g h i j"},
			minTokens: 3, maxReported: -1,
			want: LeakReport{Ngram: 1, Checked: 1, Leaks: []Leak{{0, 0, KindNgram, 7}}},
		},
		{
			name:      "equal runs: lowest real index",
			real:      []string{"zz a b c", "a b c yy", "a b c"},
			synth:     []string{"a b c d", "q a b c"},
			minTokens: 3, maxReported: -1,
			want: LeakReport{Exact: 0, Ngram: 2, Checked: 2, Leaks: []Leak{{0, 0, KindNgram, 3}, {1, 0, KindNgram, 3}}},
		},
		{
			name:      "counts exact when Leaks is capped",
			real:      []string{fox, "Tell me a joke."},
			synth:     append([]string{"Tell me a joke.", "clean text", "Tell me a joke."}, many...),
			minTokens: 8, maxReported: 2,
			want: LeakReport{Exact: 2, Ngram: 5, Checked: 8, Leaks: []Leak{{0, 1, KindExact, 4}, {2, 1, KindExact, 4}}},
		},
		{
			name:      "counts only",
			real:      []string{fox},
			synth:     many,
			minTokens: 8, maxReported: 0,
			want: LeakReport{Ngram: 5, Checked: 5},
		},
		{
			name:      "empty texts are not exact copies",
			real:      []string{"", "   "},
			synth:     []string{"", "\n"},
			minTokens: 1, maxReported: -1,
			want: LeakReport{Checked: 2},
		},
		{
			name:      "short exact copy below minTokens",
			real:      []string{"Hi"},
			synth:     []string{"Hi"},
			minTokens: 8, maxReported: -1,
			want: LeakReport{Exact: 1, Checked: 1, Leaks: []Leak{{0, 0, KindExact, 1}}},
		},
		{
			name:      "boilerplate in more real texts than kept postings",
			real:      boiler,
			synth:     []string{"given a reference text about topic 50 what is it", "given a reference text about"},
			minTokens: 5, maxReported: -1,
			want: LeakReport{Exact: 1, Ngram: 1, Checked: 2, Leaks: []Leak{{0, 50, KindExact, 10}, {1, 0, KindNgram, 5}}},
		},
		{
			name:      "custom tokenizer",
			real:      []string{"abcdefgh"},
			synth:     []string{"xxcdefgyy"},
			tokenize:  chars,
			minTokens: 4, maxReported: -1,
			want: LeakReport{Ngram: 1, Checked: 1, Leaks: []Leak{{0, 0, KindNgram, 5}}},
		},
		{
			name:      "repetitive texts",
			real:      []string{strings.Repeat("a ", 100)},
			synth:     []string{strings.Repeat("a ", 60) + "b"},
			minTokens: 8, maxReported: -1,
			want: LeakReport{Ngram: 1, Checked: 1, Leaks: []Leak{{0, 0, KindNgram, 60}}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := leakage(t, tt.real, tt.synth, tt.tokenize, tt.minTokens, tt.maxReported)
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", *got, tt.want)
			}
		})
	}
}

func TestLeakageErrors(t *testing.T) {
	secret := "my secret instruction text"
	_, err := Leakage(context.Background(), []string{secret}, []string{secret}, nil, 0, -1)
	if err == nil {
		t.Error("minTokens 0: want an error")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = Leakage(ctx, []string{secret}, []string{secret}, nil, 3, -1)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: err %v, want context.Canceled", err)
	}
	if err != nil && strings.Contains(err.Error(), "secret") {
		t.Error("error message contains input text")
	}
}

type leakGolden struct {
	MinTokens int        `json:"min_tokens"`
	Report    LeakReport `json:"report"`
}

func readLines(t *testing.T, name string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimRight(string(b), "\n"), "\n")
}

// TestLeakageGolden runs a small hand-written corpus (testdata/*.txt, one
// text a line) and compares the full report.
func TestLeakageGolden(t *testing.T) {
	real, synth := readLines(t, "leak_real.txt"), readLines(t, "leak_synthetic.txt")
	got := leakGolden{MinTokens: 6, Report: *leakage(t, real, synth, nil, 6, -1)}
	path := filepath.Join("testdata", "leakage.golden.json")
	cur, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	b := golden.Read(t, path, append(cur, '\n'))
	var want leakGolden
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("report differs from %s (rerun with -update if intended)\ngot  %+v\nwant %+v", path, got, want)
	}
}

// longestRun is the brute-force longest common run of tokens.
func longestRun(a, b []string) int {
	best := 0
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for i := range a {
		for j := range b {
			cur[j+1] = 0
			if a[i] == b[j] {
				cur[j+1] = prev[j] + 1
				best = max(best, cur[j+1])
			}
		}
		prev, cur = cur, prev
	}
	return best
}

// FuzzLeakage checks Leakage against brute force on arbitrary strings, one
// text per line.
func FuzzLeakage(f *testing.F) {
	f.Add(fox+"\nTell me a joke.", "Tell me a joke.\nI saw "+fox, uint8(3), false)
	f.Add("a a a a a a\n\xff\xfe b", "a a a a\n\xff\xfe b", uint8(1), true)
	f.Add("", "", uint8(0), false)
	f.Fuzz(func(t *testing.T, realText, synthText string, m uint8, byChar bool) {
		real, synth := strings.Split(realText, "\n"), strings.Split(synthText, "\n")
		minTokens := int(m%8) + 1
		tokenize := strings.Fields
		if byChar {
			tokenize = chars
		}
		rep, err := Leakage(context.Background(), real, synth, tokenize, minTokens, -1)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Checked != len(synth) || rep.Exact+rep.Ngram != len(rep.Leaks) {
			t.Fatalf("inconsistent report %+v", rep)
		}
		if len(realText)+len(synthText) > 4096 {
			t.Skip("long input: the brute force would be slow")
		}
		realTokens := 0
		for _, r := range real {
			realTokens += len(tokenize(r))
		}
		k := 0
		for j, s := range synth {
			exact := -1
			for i, r := range real {
				if n := normalize(r); n != "" && n == normalize(s) {
					exact = i
					break
				}
			}
			longest, at := 0, -1
			for i, r := range real {
				if n := longestRun(tokenize(s), tokenize(r)); n > longest {
					longest, at = n, i
				}
			}
			var want *Leak
			switch {
			case exact >= 0:
				want = &Leak{j, exact, KindExact, len(tokenize(s))}
			case longest >= minTokens:
				want = &Leak{j, at, KindNgram, longest}
			}
			var got *Leak
			if k < len(rep.Leaks) && rep.Leaks[k].SyntheticIndex == j {
				got = &rep.Leaks[k]
				k++
			}
			if (got == nil) != (want == nil) {
				t.Fatalf("synthetic %d: got %+v, want %+v", j, got, want)
			}
			if got == nil {
				continue
			}
			// With few real tokens neither the posting cap nor the work
			// budget applies, so the run found must be the longest;
			// otherwise it must still be a real run.
			if realTokens <= maxPostings && *got != *want {
				t.Fatalf("synthetic %d: got %+v, want %+v", j, *got, *want)
			}
			if got.Kind == KindNgram && (got.NgramLen < minTokens || got.NgramLen > longestRun(tokenize(s), tokenize(real[got.RealIndex]))) {
				t.Fatalf("synthetic %d: run %d not shared with real %d", j, got.NgramLen, got.RealIndex)
			}
		}
	})
}
