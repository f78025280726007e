package llama2c

import (
	"slices"
	"strings"
)

// Argmax returns the index of the largest value, the first on ties (run.c's
// sample_argmax, i.e. temperature 0).
func Argmax(v []float32) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}

// Greedy is run.c's generate at temperature 0: it encodes prompt with BOS,
// feeds the prompt tokens, then the argmax of each step's logits, for at
// most steps positions in all (run.c's -n: prompt included, capped at
// SeqLen), stopping early when the model emits BOS. It returns what run.c
// prints: the prompt and the generated pieces, each through Decode and
// SafePiece.
func Greedy(c *Checkpoint, tok *Tokenizer, prompt string, steps int) string {
	if steps <= 0 || steps > c.Config.SeqLen {
		steps = c.Config.SeqLen
	}
	ids := tok.Encode(prompt, true, false)
	ids = slices.DeleteFunc(ids, func(id int) bool { return id < 0 || id >= c.Config.Vocab })
	if len(ids) == 0 { // a vocabulary too small to hold BOS
		return ""
	}
	var out strings.Builder
	s := c.NewState()
	token := ids[0]
	for pos := 0; pos < steps; pos++ {
		logits := c.Forward(s, token, pos)
		var next int
		if pos+1 < len(ids) {
			next = ids[pos+1] // still forcing the prompt
		} else {
			next = Argmax(logits)
		}
		if next == BOS { // run.c stops at BOS, its sequence delimiter
			break
		}
		out.WriteString(SafePiece(tok.Decode(token, next)))
		token = next
	}
	return out.String()
}
