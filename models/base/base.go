// Package base ships the public base generator inside the binary: a small
// language model and its tokenizer, trained by `dpinstruct pretrain` on
// public data only (docs/MODELS.md says how to re-create it). It is public,
// so carrying it costs no privacy; every DP window fine-tunes a copy of it.
package base

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/dpinstruct/dpinstruct/models/lm"
	"github.com/dpinstruct/dpinstruct/models/pretrain"
	"github.com/dpinstruct/dpinstruct/models/tokenizer"
)

// Dir is the model folder in the repository, relative to its root: the
// target of the documented pretrain command.
const Dir = "models/base/model"

// The optimizer state of a pretraining run stays out: only what sampling
// and fine-tuning need is shipped.
//
//go:embed model/config.json model/model.safetensors model/tokenizer.json model/pretrain.json
var files embed.FS

// Extract writes the shipped model folder to a new temporary directory and
// returns it with a function that removes it.
func Extract() (dir string, cleanup func(), err error) {
	dir, err = os.MkdirTemp("", "dpinstruct-base-")
	if err != nil {
		return "", nil, fmt.Errorf("base model: %w", err)
	}
	cleanup = func() { _ = os.RemoveAll(dir) }
	entries, err := fs.ReadDir(files, "model")
	if err != nil {
		cleanup()
		return "", nil, fmt.Errorf("base model: %w", err)
	}
	for _, e := range entries {
		data, err := files.ReadFile("model/" + e.Name())
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, e.Name()), data, 0o644)
		}
		if err != nil {
			cleanup()
			return "", nil, fmt.Errorf("base model: %w", err)
		}
	}
	return dir, cleanup, nil
}

// Folder returns dir when it is set (a model folder chosen by the user),
// else the shipped model extracted to a temporary folder; cleanup removes
// what was extracted and is always safe to call.
func Folder(dir string) (folder string, cleanup func(), err error) {
	if dir != "" {
		if _, err := os.Stat(dir); err != nil {
			return "", func() {}, fmt.Errorf("model folder: %w", err)
		}
		return dir, func() {}, nil
	}
	return Extract()
}

// Open loads the model folder dir (empty: the shipped model) with opts and
// the tokenizer saved next to it. Both are read into memory, so nothing
// extracted outlives the call.
func Open(dir string, opts ...lm.Option) (*lm.Model, *tokenizer.Tokenizer, error) {
	folder, cleanup, err := Folder(dir)
	if err != nil {
		return nil, nil, err
	}
	defer cleanup()
	m, err := lm.Load(folder, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("model: %w", err)
	}
	tok, err := tokenizer.Load(filepath.Join(folder, pretrain.TokenizerFile))
	if err != nil {
		return nil, nil, fmt.Errorf("tokenizer: %w", err)
	}
	return m, tok, nil
}
