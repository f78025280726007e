package connector

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestPruneCheckpointsKeepsTheNewest(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		keep int
		want []string // what dir holds afterwards, sorted
	}{
		{"keep 0 keeps all", 0, []string{"notes.txt", "partial", "w1", "w2", "w3", "w4"}},
		{"keep 2", 2, []string{"notes.txt", "partial", "w3", "w4"}},
		{"keep more than there are", 10, []string{"notes.txt", "partial", "w1", "w2", "w3", "w4"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			base := time.Now().Add(-time.Hour)
			// w1 .. w4 saved in that order; "partial" has no provenance yet
			// (a save in progress) and notes.txt is not a checkpoint.
			for _, name := range []string{"w3", "w1", "w4", "w2"} {
				order := map[string]int{"w1": 1, "w2": 2, "w3": 3, "w4": 4}[name]
				prov := filepath.Join(dir, name, checkpointProvenance)
				writeTestFile(t, prov)
				writeTestFile(t, filepath.Join(dir, name, "model.safetensors"))
				at := base.Add(time.Duration(order) * time.Minute)
				if err := os.Chtimes(prov, at, at); err != nil {
					t.Fatal(err)
				}
			}
			writeTestFile(t, filepath.Join(dir, "partial", "model.safetensors"))
			writeTestFile(t, filepath.Join(dir, "notes.txt"))
			if err := pruneCheckpoints(dir, tt.keep); err != nil {
				t.Fatal(err)
			}
			entries, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, e := range entries {
				got = append(got, e.Name())
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("after pruning: %v, want %v", got, tt.want)
			}
		})
	}
}

func writeTestFile(t *testing.T, path string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
}
