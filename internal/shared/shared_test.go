package shared

import (
	"os"
	"path/filepath"
	"testing"
)

func TestPath(t *testing.T) {
	t.Setenv("DPINSTRUCT_TEST_SHARED", "")
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	repo := filepath.Dir(filepath.Dir(wd)) // internal/shared -> repo
	tests := []struct {
		name, env string
		elem      []string
		want      string
	}{
		{"beside the repository", "", []string{"models", "x"}, filepath.Join(repo, "..", "shared", "models", "x")},
		{"the variable wins", "/somewhere/else", []string{"data"}, "/somewhere/else"},
	}
	for _, tc := range tests {
		t.Setenv("DPINSTRUCT_TEST_SHARED", tc.env)
		if got := Path("DPINSTRUCT_TEST_SHARED", tc.elem...); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
