package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeTextsJSONL writes texts as JSON lines with a text field, eval's
// input format, to dir/name and returns the path.
func writeTextsJSONL(t *testing.T, dir, name string, texts []string) string {
	t.Helper()
	var b strings.Builder
	for _, s := range texts {
		line, err := json.Marshal(map[string]string{"text": s})
		if err != nil {
			t.Fatal(err)
		}
		b.Write(append(line, '\n'))
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestEvalReportsSpellingAgainstTheWordList(t *testing.T) {
	dir := t.TempDir()
	list := filepath.Join(dir, "words.txt")
	if err := os.WriteFile(list, []byte("how\ndo\nI\nbake\nthe\nbread\ntell\nme\nabout\nmoon\nkill\na\nprocess\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var real, syn []string
	for i := range 12 {
		real = append(real, fmt.Sprintf("how do I bake the bread %d", i))
		syn = append(syn, fmt.Sprintf("tell me about the moon %d", i))
	}
	syn[0], syn[1] = "tell me about the mooon", "how do I kill a process"
	realPath, synPath := writeTextsJSONL(t, dir, "real.jsonl", real), writeTextsJSONL(t, dir, "syn.jsonl", syn)
	eval := func(args ...string) *proc {
		t.Helper()
		return startProc(t, nil, append([]string{"eval", "--real", realPath, "--synthetic", synPath, "--embedding", "lexical", "--seeds", "1"}, args...)...)
	}

	html := filepath.Join(dir, "report.html")
	run := eval("--wordlist", list, "--html", html)
	if code := run.wait(2 * time.Minute); code != 0 {
		t.Fatalf("eval exit %d:\n%s", code, run.output())
	}
	for _, want := range []string{
		"spelling: texts with every word in the word list: real 100.0% (12 of 12), synthetic 91.7% (11 of 12); word list " + list + " (13 words)\n",
		"spelling: words in the word list: real 100.0% (72 of 72), synthetic 98.4% (60 of 61)\n",
		"harmful-request screen: texts matching: real 0.0% (0 of 12), synthetic 8.3% (1 of 12)\n",
	} {
		if !strings.Contains(run.output(), want) {
			t.Errorf("output lacks %q:\n%s", want, run.output())
		}
	}
	page, err := os.ReadFile(html)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"spelling: texts with every word in the word list", "words in the word list", "harmful-request screen"} {
		if !strings.Contains(string(page), want) {
			t.Errorf("HTML report lacks %q", want)
		}
	}

	run = eval("--wordlist", "")
	if code := run.wait(2 * time.Minute); code != 0 || !strings.Contains(run.output(), "no word list: spelling not measured") {
		t.Errorf(`--wordlist "": exit %d, want the no-word-list line:`+"\n%s", code, run.output())
	}

	missing := filepath.Join(dir, "missing.txt")
	run = eval("--wordlist", missing)
	if code := run.wait(time.Minute); code != 2 || !strings.Contains(run.output(), "--wordlist: ") || !strings.Contains(run.output(), missing+": no such file") {
		t.Errorf("a missing --wordlist: exit %d, want 2 and an error naming the file:\n%s", code, run.output())
	}

	help := startProc(t, nil, "eval", "--help")
	if code := help.wait(30 * time.Second); code != 0 {
		t.Fatalf("eval --help exit %d:\n%s", code, help.output())
	}
	for _, want := range []string{"--wordlist", "american-english-large", "wamerican-large", "every word is in a word list", "Harmful-request screen"} {
		if !strings.Contains(help.output(), want) {
			t.Errorf("eval --help lacks %q", want)
		}
	}
}

// TestEvalGoesOnWithoutTheDefaultWordList: a missing default list only
// turns the spelling measure off; the same path named with --wordlist fails.
func TestEvalGoesOnWithoutTheDefaultWordList(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "american-english-large")
	cmd := newEvalCmd()
	var stderr bytes.Buffer
	cmd.SetErr(&stderr)
	if w, err := loadWordList(cmd, missing); w != nil || err != nil {
		t.Errorf("missing default list: %v, %v; want no list and no error", w, err)
	}
	if !strings.Contains(stderr.String(), "wamerican-large") {
		t.Errorf("no install hint on stderr: %q", stderr.String())
	}
	if err := cmd.Flags().Set("wordlist", missing); err != nil {
		t.Fatal(err)
	}
	if _, err := loadWordList(cmd, missing); err == nil || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing list named with --wordlist: %v; want an error naming it", err)
	}
}
