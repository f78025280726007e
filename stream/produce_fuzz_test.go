package stream

import (
	"bytes"
	"testing"
)

// FuzzLineKey feeds arbitrary lines to the JSONL loader's line check: it
// must never panic, and its errors (shown to the operator with a line
// number) must never quote the line.
func FuzzLineKey(f *testing.F) {
	for _, s := range []string{
		`{"text":"hi","user_id":"u1"}`,
		`{"text":"hi","user_id":42}`,
		`{"text":1}`,
		`{"user_id":"u"}`,
		`[1,2]`,
		`{"text":"a\u00e9","user_id":null}`,
		`{"text":"x",`,
		"{\"text\":\"\xff\"}",
	} {
		f.Add([]byte(s), "user_id")
	}
	f.Fuzz(func(t *testing.T, line []byte, field string) {
		marker := []byte("ZQXJ-private-marker")
		in := append(append([]byte{}, line...), marker...)
		key, err := lineKey(in, field)
		if err != nil {
			if bytes.Contains([]byte(err.Error()), marker) {
				t.Fatalf("error quotes the line: %v", err)
			}
			return
		}
		_ = key
	})
}
