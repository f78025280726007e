package corpus

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"os"
	"path/filepath"
	"strings"

	"github.com/dpinstruct/dpinstruct/internal/shared"
)

// EnvDataDir is the environment variable naming the shared data directory
// (the one holding public/ and dolly/).
const EnvDataDir = "DPINSTRUCT_DATA"

// ErrPrivate is wrapped by the error Open returns for a path under a
// "dolly" directory: private data must never be used for pre-training.
var ErrPrivate = errors.New("private data (a path under /dolly/) must not be used for pre-training")

// PublicDir returns the public part of the shared data directory dataDir.
func PublicDir(dataDir string) string { return filepath.Join(dataDir, "public") }

type format int

const (
	formatJSONL format = iota
	formatText
)

type file struct {
	path string
	fmt  format
	gz   bool
}

// Reader iterates over the texts of a fixed, ordered list of files.
type Reader struct {
	files []file
}

// formatOf tells the format of a file from its name.
func formatOf(name string) (f format, gz, ok bool) {
	base := strings.ToLower(filepath.Base(name))
	if strings.HasSuffix(base, ".gz") {
		gz = true
		base = strings.TrimSuffix(base, ".gz")
	}
	switch {
	case strings.HasSuffix(base, ".jsonl"):
		return formatJSONL, gz, true
	case strings.HasSuffix(base, ".txt"):
		return formatText, gz, true
	}
	return 0, false, false
}

// checkPublic refuses a path with a "dolly" element, as given and after
// resolving symbolic links.
func checkPublic(p string) error {
	abs, err := filepath.Abs(p)
	if err != nil {
		return fmt.Errorf("corpus: %s: %w", p, err)
	}
	candidates := []string{abs}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		candidates = append(candidates, real)
	}
	for _, c := range candidates {
		if strings.Contains(filepath.ToSlash(c)+"/", "/dolly/") {
			return fmt.Errorf("corpus: refusing %s: %w", p, ErrPrivate)
		}
	}
	return nil
}

// Open lists the texts files under paths (files, or directories walked
// recursively) without reading them yet. It fails if a path is missing, if
// a named file has an unknown suffix, if nothing readable is found, or if
// any path lies under a "dolly" directory (ErrPrivate).
func Open(paths ...string) (*Reader, error) { return open(true, paths) }

// OpenVisible is Open without the refusal of dolly/ paths, for commands
// that read data the user is allowed to see in full (dpinstruct eval, the
// demo's evaluation), never for pre-training the public base model.
func OpenVisible(paths ...string) (*Reader, error) { return open(false, paths) }

func open(publicOnly bool, paths []string) (*Reader, error) {
	check := checkPublic
	if !publicOnly {
		check = func(string) error { return nil }
	}
	if len(paths) == 0 {
		return nil, errors.New("corpus: no paths given")
	}
	r := &Reader{}
	for _, p := range paths {
		if err := check(p); err != nil {
			return nil, err
		}
		st, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("corpus: %w", err)
		}
		if !st.IsDir() {
			f, gz, ok := formatOf(p)
			if !ok {
				return nil, fmt.Errorf("corpus: %s: unknown format (want *.jsonl, *.jsonl.gz, *.txt or *.txt.gz)", p)
			}
			r.files = append(r.files, file{p, f, gz})
			continue
		}
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if err := check(path); err != nil {
				return err
			}
			if d.IsDir() {
				return nil
			}
			f, gz, ok := formatOf(path)
			if !ok {
				return nil
			}
			if d.Type()&fs.ModeSymlink != 0 {
				if st, err := os.Stat(path); err != nil || st.IsDir() {
					return nil // dangling link or link to a directory: not followed
				}
			}
			r.files = append(r.files, file{path, f, gz})
			return nil
		})
		if err != nil {
			if errors.Is(err, ErrPrivate) {
				return nil, err
			}
			return nil, fmt.Errorf("corpus: walking %s: %w", p, err)
		}
	}
	if len(r.files) == 0 {
		return nil, fmt.Errorf("corpus: no *.jsonl, *.jsonl.gz, *.txt or *.txt.gz files under %s", strings.Join(paths, ", "))
	}
	return r, nil
}

// Files returns the files the Reader reads, in order.
func (r *Reader) Files() []string {
	out := make([]string, len(r.files))
	for i, f := range r.files {
		out[i] = f.path
	}
	return out
}

// Texts iterates over every text of every file, in order. On an error
// (unreadable file, bad JSON line, ctx done) it yields ("", err) once and
// stops. Breaking out of the loop early is fine.
func (r *Reader) Texts(ctx context.Context) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		for _, f := range r.files {
			cont, err := readFile(ctx, f, yield)
			if err != nil {
				yield("", err)
				return
			}
			if !cont {
				return
			}
		}
	}
}

// readFile yields the texts of f; cont is false when the consumer stopped.
func readFile(ctx context.Context, f file, yield func(string, error) bool) (cont bool, err error) {
	fh, err := os.Open(f.path)
	if err != nil {
		return false, fmt.Errorf("corpus: %w", err)
	}
	defer fh.Close()
	var in io.Reader = fh
	if f.gz {
		zr, err := gzip.NewReader(bufio.NewReaderSize(fh, 1<<16))
		if err != nil {
			return false, fmt.Errorf("corpus: %s: %w", f.path, err)
		}
		defer zr.Close()
		in = zr
	}
	br := bufio.NewReaderSize(in, 1<<16)
	lineNo := 0
	var para []string // text format: lines of the current paragraph
	flush := func() bool {
		if len(para) == 0 {
			return true
		}
		t := strings.Join(para, "\n")
		para = para[:0]
		return yield(t, nil)
	}
	for {
		line, rerr := br.ReadBytes('\n')
		if len(line) > 0 || rerr == nil {
			lineNo++
			if err := ctx.Err(); err != nil {
				return false, err
			}
			line = bytes.TrimSuffix(line, []byte("\n"))
			line = bytes.TrimSuffix(line, []byte("\r"))
			switch f.fmt {
			case formatJSONL:
				if len(bytes.TrimSpace(line)) == 0 {
					break
				}
				var rec struct {
					Text *string `json:"text"`
				}
				if err := json.Unmarshal(line, &rec); err != nil {
					return false, fmt.Errorf("corpus: %s:%d: %w", f.path, lineNo, err)
				}
				if rec.Text == nil || *rec.Text == "" {
					break
				}
				if !yield(*rec.Text, nil) {
					return false, nil
				}
			case formatText:
				if len(bytes.Trim(line, " \t")) == 0 {
					if !flush() {
						return false, nil
					}
					break
				}
				para = append(para, string(line))
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return false, fmt.Errorf("corpus: %s: %w", f.path, rerr)
		}
	}
	if f.fmt == formatText && !flush() {
		return false, nil
	}
	return true, nil
}

// DataDir is where the shared data sets live: $DPINSTRUCT_DATA, else
// ../shared/data next to the repository root (the folder holding go.mod,
// found from the working directory up). It does not check the folder
// exists.
func DataDir() string { return shared.Path(EnvDataDir, "data") }

// ReadVisible returns every text of the files under paths, read with
// OpenVisible: for data the user may see in full (evaluation, the demo,
// benchmarks), never for pre-training.
func ReadVisible(ctx context.Context, paths ...string) ([]string, error) {
	r, err := OpenVisible(paths...)
	if err != nil {
		return nil, err
	}
	var out []string
	for t, err := range r.Texts(ctx) {
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// DollyPrompts is the path of the Dolly prompts in the shared data
// directory: the demo's and the tests' stand-in for a private stream.
func DollyPrompts() string { return filepath.Join(DataDir(), "dolly", "prompts.jsonl") }
