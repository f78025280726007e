package lm

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
)

// FormatVersion is the version of the model-folder format (config.json plus
// the safetensors files) written by this package. Load refuses folders with
// a higher version.
const FormatVersion = 1

// LoRAConfig configures the low-rank adapters added to the attention
// projections. Rank 0 means "no adapters" (pre-training).
type LoRAConfig struct {
	// Rank r of the adapters (A is d x r, B is r x d). 0 disables LoRA.
	Rank int `json:"rank"`
	// Alpha: the adapter output is scaled by Alpha/Rank (PEFT convention).
	Alpha float64 `json:"alpha"`
	// Targets: which attention projections get adapters, a subset of
	// "q", "k", "v", "o".
	Targets []string `json:"targets"`
	// Dropout on the adapter input (PEFT's lora_dropout). Stored and
	// validated but NOT applied: see doc.go ("What is not implemented").
	Dropout float64 `json:"dropout"`
}

// DefaultLoRA is the paper's setting: rank 8, alpha 16, q/k/v/o, dropout 0.05.
func DefaultLoRA() LoRAConfig {
	return LoRAConfig{Rank: 8, Alpha: 16, Targets: []string{"q", "k", "v", "o"}, Dropout: 0.05}
}

// Scale is Alpha/Rank (0 when Rank is 0).
func (l LoRAConfig) Scale() float64 {
	if l.Rank == 0 {
		return 0
	}
	return l.Alpha / float64(l.Rank)
}

// Has reports whether projection p ("q", "k", "v" or "o") carries an adapter.
func (l LoRAConfig) Has(p string) bool {
	return l.Rank > 0 && slices.Contains(l.Targets, p)
}

// Config describes a decoder-only transformer. It is written to config.json
// in a model folder.
type Config struct {
	FormatVersion int `json:"format_version"`
	// VocabSize: number of token ids (ids are 0..VocabSize-1).
	VocabSize int `json:"vocab_size"`
	// Context: maximum sequence length the model sees (size of the learned
	// positional-embedding table). Training sequences are BOS + tokens,
	// truncated to Context positions.
	Context int `json:"context"`
	Layers  int `json:"layers"`
	// Width is d_model.
	Width int `json:"width"`
	Heads int `json:"heads"`
	// MLPRatio: the MLP hidden width is MLPRatio*Width.
	MLPRatio int `json:"mlp_ratio"`
	// EOS is the <|endoftext|> id. It also serves as BOS (the first input
	// position of every sequence, as in GPT-2) and as the pad id in inputs.
	EOS int32 `json:"eos"`
	// TiedEmbeddings: the output head reuses the token-embedding table
	// (logits = h · E^T). When false the head is a separate [Width, VocabSize]
	// matrix without bias.
	TiedEmbeddings bool `json:"tied_embeddings"`
	// LayerNormEpsilon (default 1e-5).
	LayerNormEpsilon float64 `json:"layer_norm_epsilon"`
	// LoRA adapters. Rank 0 for a plain model.
	LoRA LoRAConfig `json:"lora"`
}

// DefaultConfig returns a small model: width 256, 4 layers, 4 heads, context
// 64, tied head (4.2M parameters with vocab 4096).
// The LoRA rank is 0: call Model.AddLoRA before fine-tuning.
func DefaultConfig(vocabSize int, eos int32) Config {
	return Config{
		FormatVersion:    FormatVersion,
		VocabSize:        vocabSize,
		Context:          64,
		Layers:           4,
		Width:            256,
		Heads:            4,
		MLPRatio:         4,
		EOS:              eos,
		TiedEmbeddings:   true,
		LayerNormEpsilon: 1e-5,
	}
}

// withDefaults fills zero fields with defaults.
func (c Config) withDefaults() Config {
	if c.FormatVersion == 0 {
		c.FormatVersion = FormatVersion
	}
	if c.MLPRatio == 0 {
		c.MLPRatio = 4
	}
	if c.LayerNormEpsilon == 0 {
		c.LayerNormEpsilon = 1e-5
	}
	if c.LoRA.Rank > 0 {
		if c.LoRA.Alpha == 0 {
			c.LoRA.Alpha = 2 * float64(c.LoRA.Rank)
		}
		if len(c.LoRA.Targets) == 0 {
			c.LoRA.Targets = []string{"q", "k", "v", "o"}
		}
	}
	return c
}

// Validate reports the first invalid field.
func (c Config) Validate() error {
	switch {
	case c.FormatVersion > FormatVersion:
		return fmt.Errorf("lm: config format_version %d is newer than this build supports (%d)", c.FormatVersion, FormatVersion)
	case c.VocabSize < 2:
		return errors.New("lm: vocab_size must be >= 2")
	case c.Context < 2:
		return errors.New("lm: context must be >= 2")
	case c.Layers < 1:
		return errors.New("lm: layers must be >= 1")
	case c.Width < 1 || c.Heads < 1 || c.Width%c.Heads != 0:
		return fmt.Errorf("lm: width (%d) must be a positive multiple of heads (%d)", c.Width, c.Heads)
	case c.MLPRatio < 1:
		return errors.New("lm: mlp_ratio must be >= 1")
	case c.EOS < 0 || int(c.EOS) >= c.VocabSize:
		return fmt.Errorf("lm: eos id %d outside vocab [0,%d)", c.EOS, c.VocabSize)
	case c.LayerNormEpsilon <= 0:
		return errors.New("lm: layer_norm_epsilon must be > 0")
	}
	return c.LoRA.validate()
}

func (l LoRAConfig) validate() error {
	if l.Rank < 0 {
		return errors.New("lm: lora.rank must be >= 0")
	}
	if l.Rank == 0 {
		return nil
	}
	if l.Alpha <= 0 {
		return errors.New("lm: lora.alpha must be > 0")
	}
	if l.Dropout < 0 || l.Dropout >= 1 {
		return errors.New("lm: lora.dropout must be in [0,1)")
	}
	if len(l.Targets) == 0 {
		return errors.New("lm: lora.targets is empty")
	}
	seen := map[string]bool{}
	for _, t := range l.Targets {
		if t != "q" && t != "k" && t != "v" && t != "o" {
			return fmt.Errorf("lm: lora.targets: unknown projection %q (want q, k, v, o)", t)
		}
		if seen[t] {
			return fmt.Errorf("lm: lora.targets: %q listed twice", t)
		}
		seen[t] = true
	}
	return nil
}

// HeadDim is Width/Heads.
func (c Config) HeadDim() int { return c.Width / c.Heads }

// MarshalIndent returns the config as indented JSON.
func (c Config) MarshalIndent() ([]byte, error) { return json.MarshalIndent(c, "", "  ") }
