package main

import (
	"crypto/tls"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dpinstruct/dpinstruct/stream/broker"
)

func newBrokerCmd() *cobra.Command {
	var (
		opts                            broker.Options
		saslMechanism, saslUser, pwFile string
		tlsCert, tlsKey                 string
	)
	cmd := &cobra.Command{
		Use:   "broker",
		Short: "Run an embedded Kafka-protocol broker (for trials, demos and tests)",
		Long: `Runs franz-go's in-process Kafka-protocol broker (kfake) on one address until
SIGTERM or Ctrl-C. Any Kafka client, kafka-go and kcat included, can talk to it.
Topics are created on first use with --partitions partitions.

It keeps messages in memory only: use a real Kafka cluster for anything that
must survive a restart of this process.

To try secured connections, --sasl-mechanism with --sasl-user and
--sasl-password-file makes every client authenticate first, and --tls-cert
with --tls-key serves TLS only (give clients the CA that signed the
certificate). The password is read from a file so that it never appears in
the process list or shell history.`,
		Example: `  dpinstruct broker --listen 127.0.0.1:9092 --partitions 3
  dpinstruct broker --listen 127.0.0.1:0 --topic instructions   # pick a free port
  dpinstruct broker --sasl-mechanism SCRAM-SHA-256 --sasl-user connector \
      --sasl-password-file kafka.pw --tls-cert server.pem --tls-key server-key.pem`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if saslMechanism != "" || saslUser != "" || pwFile != "" {
				if saslMechanism == "" || saslUser == "" || pwFile == "" {
					return usageError{fmt.Errorf("--sasl-mechanism, --sasl-user and --sasl-password-file go together")}
				}
				pw, err := readSecretFile(pwFile)
				if err != nil {
					return usageError{fmt.Errorf("--sasl-password-file: %w", err)}
				}
				opts.SASLUsers = []broker.SASLUser{{Mechanism: strings.ToUpper(saslMechanism), Username: saslUser, Password: pw}}
			}
			if tlsCert != "" || tlsKey != "" {
				cert, err := tls.LoadX509KeyPair(tlsCert, tlsKey)
				if err != nil {
					return usageError{fmt.Errorf("--tls-cert/--tls-key: %w", err)}
				}
				opts.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
			}
			b, err := broker.Start(opts)
			if err != nil {
				return err
			}
			defer b.Close()
			fmt.Fprintf(cmd.OutOrStdout(), "broker listening on %s\n", b.Addr())
			<-cmd.Context().Done()
			fmt.Fprintln(cmd.ErrOrStderr(), "broker stopping")
			return nil
		},
	}
	cmd.Flags().StringVar(&opts.Listen, "listen", "127.0.0.1:9092", "host:port to listen on (port 0 picks a free one)")
	cmd.Flags().IntVar(&opts.Partitions, "partitions", 1, "partitions of each topic it creates")
	cmd.Flags().StringSliceVar(&opts.Topics, "topic", nil, "topics to create at start (repeatable)")
	cmd.Flags().StringVar(&saslMechanism, "sasl-mechanism", "", "require SASL: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
	cmd.Flags().StringVar(&saslUser, "sasl-user", "", "the SASL user clients authenticate as")
	cmd.Flags().StringVar(&pwFile, "sasl-password-file", "", "file holding that user's password")
	cmd.Flags().StringVar(&tlsCert, "tls-cert", "", "serve TLS with this PEM certificate (chain)")
	cmd.Flags().StringVar(&tlsKey, "tls-key", "", "PEM private key of --tls-cert")
	return cmd
}
