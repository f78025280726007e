package main

import (
	"fmt"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/dpinstruct/dpinstruct/connector"
)

func newConfigCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Check a configuration file, or print the effective one",
	}
	var path string
	check := &cobra.Command{
		Use:   "check",
		Short: "Validate a configuration file (and DPINSTRUCT_* overrides) and print the result",
		Long: `Loads the file, applies environment overrides, validates every field and prints
the effective configuration as YAML, so you see exactly what run would use.
A wrong field is reported by its dotted name. The ClickHouse DSN is printed
with its password masked.`,
		Example: "  dpinstruct config check --config deploy/local/example.yaml",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := connector.LoadConfig(path)
			if err != nil {
				return usageError{err}
			}
			cfg.ClickHouse.DSN = connector.RedactDSN(cfg.ClickHouse.DSN)
			out, err := yaml.Marshal(cfg)
			if err != nil {
				return err
			}
			fmt.Fprint(cmd.OutOrStdout(), string(out))
			return nil
		},
	}
	check.Flags().StringVar(&path, "config", "", "YAML configuration file")
	cmd.AddCommand(check)
	return cmd
}
