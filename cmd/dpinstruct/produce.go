package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/segmentio/kafka-go"
	"github.com/spf13/cobra"

	"github.com/dpinstruct/dpinstruct/stream"
)

func newProduceCmd() *cobra.Command {
	var (
		opts stream.ProduceOptions
		file string
		sec  kafkaSecurityFlags
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
itself is never printed).

A secured cluster takes the connector's settings as flags: --sasl-mechanism,
--sasl-user and the password from --sasl-password-file or
$DPINSTRUCT_KAFKA_SASL_PASSWORD (never a flag, which would show in the
process list), and --tls with --tls-ca (or --tls-insecure-skip-verify).`,
		Example: `  dpinstruct produce --brokers 127.0.0.1:9092 --topic instructions \
      --file ../shared/data/dolly/prompts.jsonl --key user_id
  dpinstruct produce --brokers kafka:9093 --file prompts.jsonl --key user_id \
      --sasl-mechanism SCRAM-SHA-512 --sasl-user connector --sasl-password-file kafka.pw \
      --tls --tls-ca ca.pem`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := os.Open(file)
			if err != nil {
				return usageError{fmt.Errorf("--file: %w", err)}
			}
			defer f.Close()
			security, err := sec.build()
			if err != nil {
				return usageError{err}
			}
			// A wrong password or CA fails here with a clear error; the
			// writer would only see the broker hang up.
			if err := stream.CheckBrokers(cmd.Context(), opts.Brokers, security.Dialer(), 10*time.Second); err != nil {
				return err
			}
			opts.Transport = security.Transport()
			st, err := f.Stat()
			if err != nil {
				return err
			}
			bar := newProgressBar(cmd.ErrOrStderr(), st.Size(), "producing "+opts.Topic,
				progressbar.OptionShowBytes(true), progressbar.OptionClearOnFinish())
			reader := progressbar.NewReader(f, bar)
			start := time.Now()
			n, err := stream.ProduceJSONL(cmd.Context(), &reader, opts)
			if t, ok := opts.Transport.(*kafka.Transport); ok {
				t.CloseIdleConnections()
			}
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
	sec.register(cmd)
	_ = cmd.MarkFlagRequired("file")
	return cmd
}

// kafkaSecurityFlags are a Kafka client's SASL and TLS settings as flags,
// with the meaning of the connector's kafka.sasl and kafka.tls.
type kafkaSecurityFlags struct {
	mechanism, user, passwordFile string
	tls                           bool
	tlsFiles                      stream.TLSFiles
}

func (f *kafkaSecurityFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.mechanism, "sasl-mechanism", "", "SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (default: none)")
	fl.StringVar(&f.user, "sasl-user", "", "SASL username")
	fl.StringVar(&f.passwordFile, "sasl-password-file", "", "file holding the SASL password (default: $DPINSTRUCT_KAFKA_SASL_PASSWORD)")
	fl.BoolVar(&f.tls, "tls", false, "connect over TLS")
	fl.StringVar(&f.tlsFiles.CAFile, "tls-ca", "", "PEM CA certificates that sign the broker's certificate (default: system roots)")
	fl.StringVar(&f.tlsFiles.CertFile, "tls-cert", "", "PEM client certificate, for mutual TLS")
	fl.StringVar(&f.tlsFiles.KeyFile, "tls-key", "", "PEM key of --tls-cert")
	fl.StringVar(&f.tlsFiles.ServerName, "tls-server-name", "", "name the broker's certificate must carry (default: the host dialed)")
	fl.BoolVar(&f.tlsFiles.InsecureSkipVerify, "tls-insecure-skip-verify", false, "accept any broker certificate (encrypted, not authenticated: trials only)")
}

func (f *kafkaSecurityFlags) build() (*stream.Security, error) {
	var sec stream.Security
	if f.mechanism != "" {
		password := os.Getenv("DPINSTRUCT_KAFKA_SASL_PASSWORD")
		if f.passwordFile != "" {
			p, err := readSecretFile(f.passwordFile)
			if err != nil {
				return nil, fmt.Errorf("--sasl-password-file: %w", err)
			}
			password = p
		}
		if f.user == "" || password == "" {
			return nil, fmt.Errorf("--sasl-mechanism needs --sasl-user and a password (--sasl-password-file or $DPINSTRUCT_KAFKA_SASL_PASSWORD)")
		}
		m, err := stream.NewSASL(f.mechanism, f.user, password)
		if err != nil {
			return nil, err
		}
		sec.SASL = m
	} else if f.user != "" || f.passwordFile != "" {
		return nil, fmt.Errorf("--sasl-user and --sasl-password-file need --sasl-mechanism")
	}
	if f.tls {
		c, err := stream.NewTLSConfig(f.tlsFiles)
		if err != nil {
			return nil, err
		}
		sec.TLS = c
	} else if f.tlsFiles != (stream.TLSFiles{}) {
		return nil, fmt.Errorf("--tls-* flags need --tls")
	}
	return &sec, nil
}

// readSecretFile reads a password file, dropping surrounding whitespace.
// Errors name the file, never its content.
func readSecretFile(path string) (string, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(raw))
	if s == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return s, nil
}
