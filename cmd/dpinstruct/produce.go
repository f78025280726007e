package main

import (
	"fmt"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/dpinstruct/dpinstruct/stream"
)

func newProduceCmd() *cobra.Command {
	var (
		opts stream.ProduceOptions
		file string
	)
	cmd := &cobra.Command{
		Use:   "produce",
		Short: "Load a JSONL file of instructions into a Kafka topic",
		Long: `Reads a JSONL file, one JSON object per line with a string "text" and optional
"id", "user_id" and "ts", and produces each line unchanged as one message.
With --key, the named field becomes the message key: keying by user_id keeps
each user's instructions in one partition, which the privacy accounting of
several replicas relies on. Blank lines are skipped; a line that is not an
object with a text field stops the load with its line number (the text
itself is never printed).`,
		Example: `  dpinstruct produce --brokers 127.0.0.1:9092 --topic instructions \
      --file ../shared/data/dolly/prompts.jsonl --key user_id`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := os.Open(file)
			if err != nil {
				return usageError{fmt.Errorf("--file: %w", err)}
			}
			defer f.Close()
			st, err := f.Stat()
			if err != nil {
				return err
			}
			bar := newProgressBar(cmd.ErrOrStderr(), st.Size(), "producing "+opts.Topic,
				progressbar.OptionShowBytes(true), progressbar.OptionClearOnFinish())
			reader := progressbar.NewReader(f, bar)
			start := time.Now()
			n, err := stream.ProduceJSONL(cmd.Context(), &reader, opts)
			_ = bar.Finish()
			if err != nil {
				return fmt.Errorf("produced %d messages, then: %w", n, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "produced %d messages to %s in %s\n", n, opts.Topic, time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
	cmd.Flags().StringSliceVar(&opts.Brokers, "brokers", []string{"127.0.0.1:9092"}, "Kafka bootstrap brokers, host:port")
	cmd.Flags().StringVar(&opts.Topic, "topic", "instructions", "topic to produce to (created if missing)")
	cmd.Flags().StringVar(&file, "file", "", "JSONL file to load (required)")
	cmd.Flags().StringVar(&opts.KeyField, "key", "", "JSON field to use as the message key, e.g. user_id")
	_ = cmd.MarkFlagRequired("file")
	return cmd
}
