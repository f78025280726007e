package connector

import (
	"strings"
	"testing"
)

// FuzzConfigYAML feeds arbitrary files to the config loader: it must
// never panic, and a file it parses is either valid or rejected with the
// name of the field at fault.
func FuzzConfigYAML(f *testing.F) {
	for _, s := range []string{
		"",
		"kafka:\n  topic: t\n",
		"window:\n  max_records: 10\n  lease: 5s\n",
		"kafka:\n  brokers: [a:1, b:2]\n  queue_capacity: lots\n",
		"processor: {name: count, rows_per_records: -1}\n",
		"&a [*a, *a]\n",
		"kafka: !!binary AAAA\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		cfg := DefaultConfig()
		err := decodeYAML([]byte(body), &cfg)
		if err != nil {
			return
		}
		if verr := cfg.Validate(); verr != nil && !strings.Contains(verr.Error(), "config: ") {
			t.Fatalf("validation error without a field name: %v", verr)
		}
	})
}
