package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/dpinstruct/dpinstruct/models/hfconvert"
	"github.com/dpinstruct/dpinstruct/models/llama2c"
)

func newConvertCmd() *cobra.Command {
	var from, checkpoint, tokenizer, out string
	cmd := &cobra.Command{
		Use:   "convert",
		Short: "Convert a model from another format into a Hugging Face folder",
		Long: `Converts a pretrained model into a Hugging Face Llama folder (config.json,
model.safetensors in float32, tokenizer.json, tokenizer_config.json), the
layout Llama-family loaders read.

--from llama2c reads a llama2.c checkpoint (legacy version-0 format: a
7-int header, then float32 weights in run.c's order) and its tokenizer
export (tokenizer.bin). The query and key rows are permuted from run.c's
interleaved rotary pairs to Hugging Face's rotate-half layout, the
tokenizer becomes a SentencePiece-style BPE with byte fallback whose ids
match run.c's encoder (see models/hfconvert). The output folder must not
exist or be empty: nothing is overwritten.`,
		Example: `  dpinstruct convert --from llama2c --checkpoint ../shared/models/stories260K/stories260K.bin \
      --tokenizer ../shared/models/stories260K/tok512.bin --out /tmp/stories260K-hf`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if from != "llama2c" {
				return usageError{fmt.Errorf("--from must be llama2c (the only format converted so far), not %q", from)}
			}
			if checkpoint == "" || tokenizer == "" || out == "" {
				return usageError{errors.New("--checkpoint, --tokenizer and --out are required")}
			}
			if entries, err := os.ReadDir(out); err == nil && len(entries) > 0 {
				return usageError{fmt.Errorf("--out %s exists and is not empty: choose a new folder", out)}
			}
			ck, err := llama2c.ReadCheckpointFile(checkpoint)
			if err != nil {
				return usageError{fmt.Errorf("--checkpoint: %w", err)}
			}
			tok, err := llama2c.ReadTokenizer(tokenizer, ck.Config.Vocab)
			if err != nil {
				return usageError{fmt.Errorf("--tokenizer: %w", err)}
			}
			if err := hfconvert.FromLlama2c(ck, tok, out); err != nil {
				return err
			}
			c := ck.Config
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s: llama, %d layers, width %d, %d heads (%d key/value), vocabulary %d, context %d\n",
				out, c.Layers, c.Dim, c.Heads, c.KVHeads, c.Vocab, c.SeqLen)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&from, "from", "llama2c", "source format: llama2c")
	f.StringVar(&checkpoint, "checkpoint", "", "the source checkpoint file")
	f.StringVar(&tokenizer, "tokenizer", "", "the source tokenizer file (llama2c: tokenizer.bin / tok512.bin)")
	f.StringVar(&out, "out", "", "the folder to write (must not exist or be empty)")
	return cmd
}
