package corpus

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzReadVisible feeds arbitrary bytes to the JSON-lines reader that
// `dpinstruct eval` uses on user files: it must return texts or an error
// naming the line, never panic, and never put file content in the error.
func FuzzReadVisible(f *testing.F) {
	for _, seed := range []string{
		`{"text":"hello"}` + "\n" + `{"text":""}` + "\n\n" + `{"id":1}`,
		`{"text":"a\u0000b"}`,
		`{"text":"SECRET-` + "\xff" + `"}`,
		`{"text":` + strings.Repeat("[", 5000),
		"not json SECRET-x\n",
		`{"text":"x"}` + "\r\n" + `{"text":"y"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "in.jsonl")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		texts, err := ReadVisible(context.Background(), p)
		if err != nil {
			if strings.Contains(err.Error(), "SECRET-") {
				t.Fatalf("error quotes the file: %v", err)
			}
			return
		}
		for _, s := range texts {
			if s == "" {
				t.Fatal("an empty text was yielded")
			}
		}
	})
}
