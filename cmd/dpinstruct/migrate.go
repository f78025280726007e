package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/dpinstruct/dpinstruct/connector"
)

func newMigrateCmd() *cobra.Command {
	var dsn string
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Create or upgrade the ClickHouse schema",
		Long: `Applies the schema migrations embedded in this binary (sink/migrations) that the
database does not have yet, creating the database if needed. Safe to run any
number of times. The connector also migrates at start unless
clickhouse.migrate is false.

Works with ClickHouse 18.16 (Debian 12's package) and current releases.`,
		Example: `  dpinstruct migrate --clickhouse clickhouse://default@127.0.0.1:19000/dpinstruct`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			full, err := connector.LoadConfig("")
			if err != nil {
				return usageError{err}
			}
			cfg := full.ClickHouse
			if dsn != "" {
				cfg.DSN = dsn
			}
			ch, err := connector.OpenSink(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			defer ch.Close()
			applied, err := ch.Migrate(cmd.Context())
			if err != nil {
				return err
			}
			if len(applied) == 0 {
				fmt.Fprintln(cmd.OutOrStdout(), "schema is up to date")
				return nil
			}
			for _, m := range applied {
				fmt.Fprintln(cmd.OutOrStdout(), "applied", m)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dsn, "clickhouse", "", "ClickHouse DSN, clickhouse://user:password@host:port/database (default: $DPINSTRUCT_CLICKHOUSE_DSN or the local one)")
	return cmd
}
