package llama2c

import (
	"strings"
	"testing"
)

// readmeSentence is how stories260K's README says a greedy decode from BOS
// begins.
const readmeSentence = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park."

func TestStories260KGreedy(t *testing.T) {
	c, tok := loadStories260K(t)
	got := Greedy(c, tok, "", 60)
	t.Logf("greedy: %q", got)
	if !strings.HasPrefix(got, readmeSentence) {
		t.Errorf("greedy decode from BOS\n got %q\nwant prefix %q", got, readmeSentence)
	}
}
