package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dpinstruct/dpinstruct/internal/shared"
	"github.com/dpinstruct/dpinstruct/models/tokenizer"
)

// stories260KForCLI is the real llama2.c fixture (../shared/models/stories260K
// beside the repository, or $DPINSTRUCT_STORIES260K); the test skips without it.
func stories260KForCLI(t *testing.T) string {
	t.Helper()
	dir := shared.Path("DPINSTRUCT_STORIES260K", "models", "stories260K")
	if _, err := os.Stat(filepath.Join(dir, "stories260K.bin")); err != nil {
		t.Skipf("stories260K not found (set DPINSTRUCT_STORIES260K): %v", err)
	}
	return dir
}

// TestConvertLlama2cWritesAnHFFolder: `convert --from llama2c` on the real
// stories260K writes a Hugging Face folder whose tokenizer loads and
// encodes as run.c does; it refuses to write into a non-empty folder and
// names a wrong --from.
func TestConvertLlama2cWritesAnHFFolder(t *testing.T) {
	src := stories260KForCLI(t)
	out := filepath.Join(t.TempDir(), "stories260K-hf")
	args := []string{"convert", "--from", "llama2c", "--checkpoint", filepath.Join(src, "stories260K.bin"),
		"--tokenizer", filepath.Join(src, "tok512.bin"), "--out", out}
	run := startProc(t, nil, args...)
	if code := run.wait(time.Minute); code != 0 || !strings.Contains(run.output(), "5 layers, width 64, 8 heads (4 key/value), vocabulary 512") {
		t.Fatalf("exit %d:\n%s", code, run.output())
	}
	for _, f := range []string{"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("missing %s: %v", f, err)
		}
	}
	tok, err := tokenizer.LoadHF(out)
	if err != nil {
		t.Fatal(err)
	}
	// run.c: BOS, then " Once", " upon", " a", " time".
	if got, want := tok.Encode("Once upon a time"), []int32{403, 407, 261, 378}; !slices.Equal(got, want) {
		t.Errorf("encode: %v, want %v", got, want)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"into the same folder", args, "not empty"},
		{"unknown format", []string{"convert", "--from", "gguf", "--checkpoint", "x", "--tokenizer", "y", "--out", t.TempDir()}, "--from must be llama2c"},
		{"missing checkpoint", []string{"convert", "--checkpoint", filepath.Join(t.TempDir(), "none.bin"), "--tokenizer", "y", "--out", filepath.Join(t.TempDir(), "o")}, "--checkpoint"},
	}
	for _, tc := range tests {
		run := startProc(t, nil, tc.args...)
		if code := run.wait(time.Minute); code != 2 || !strings.Contains(run.output(), tc.want) {
			t.Errorf("%s: exit %d, want 2 and %q:\n%s", tc.name, code, tc.want, run.output())
		}
	}
}
