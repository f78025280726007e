// Package golden is the golden-file step the tests share: with -update the
// current output is written to the file first; then the file is read back
// for the caller to compare (byte for byte, as JSON with a tolerance, ...).
// The -update flag is registered here, once per test binary.
package golden

import (
	"flag"
	"os"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/ with the current output")

// Read writes got to path when -update is set, then returns the file's
// contents; a missing file fails the test with the command that creates it.
func Read(t testing.TB, path string, got []byte) []byte {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run %s -update to create it)", err, t.Name())
	}
	return want
}
