package corpus

import (
	"compress/gzip"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// dataDir locates the shared data: $DPINSTRUCT_DATA, else
// <repo>/../shared/data. It skips the test when the data is absent.
func dataDir(t testing.TB) string {
	t.Helper()
	d := DataDir()
	if _, err := os.Stat(PublicDir(d)); err != nil {
		t.Skipf("shared data not found at %q (set %s to the folder holding public/): %v", d, EnvDataDir, err)
	}
	return d
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if strings.HasSuffix(path, ".gz") {
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		zw := gzip.NewWriter(f)
		if _, err := zw.Write([]byte(content)); err != nil {
			t.Fatal(err)
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		return
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func collect(t *testing.T, r *Reader) ([]string, error) {
	t.Helper()
	var out []string
	for s, err := range r.Texts(context.Background()) {
		if err != nil {
			return out, err
		}
		out = append(out, s)
	}
	return out, nil
}

func TestFormats(t *testing.T) {
	cases := []struct {
		name, file, content string
		want                []string
	}{
		{"jsonl", "a.jsonl", `{"id":1,"text":"hello"}` + "\n\n" + `{"text":"two\nlines ü"}` + "\n" + `{"id":3}` + "\n" + `{"text":""}` + "\n" + `{"text":"no newline at end"}`,
			[]string{"hello", "two\nlines ü", "no newline at end"}},
		{"jsonl crlf", "a.jsonl", `{"text":"x"}` + "\r\n" + `{"text":"y"}` + "\r\n", []string{"x", "y"}},
		{"jsonl.gz", "b.jsonl.gz", `{"text":"zipped"}` + "\n" + `{"text":"again"}` + "\n", []string{"zipped", "again"}},
		{"txt paragraphs", "c.txt", "first line\nsecond line\n\n  \nnext para\r\n\n\n  indented\tlast", []string{"first line\nsecond line", "next para", "  indented\tlast"}},
		{"txt.gz", "d.txt.gz", "a\n\nb\n", []string{"a", "b"}},
		{"empty txt", "e.txt", "\n\n", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), c.file)
			write(t, p, c.content)
			r, err := Open(p)
			if err != nil {
				t.Fatal(err)
			}
			got, err := collect(t, r)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, c.want) {
				t.Fatalf("got %q, want %q", got, c.want)
			}
		})
	}
}

func TestLongLine(t *testing.T) {
	long := strings.Repeat("x", 1<<20) // longer than any bufio buffer
	p := filepath.Join(t.TempDir(), "long.jsonl")
	write(t, p, `{"text":"`+long+`"}`+"\n")
	r, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	got, err := collect(t, r)
	if err != nil || len(got) != 1 || got[0] != long {
		t.Fatalf("long line: err %v, %d texts", err, len(got))
	}
}

func TestDirectoryWalk(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "b", "x.jsonl"), `{"text":"bx"}`)
	write(t, filepath.Join(dir, "a", "deep", "y.txt"), "ay")
	write(t, filepath.Join(dir, "a", "LICENSE"), "ignored")
	write(t, filepath.Join(dir, "README.md"), "ignored")
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	got, err := collect(t, r)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"ay", "bx"}; !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q (lexical walk order)", got, want)
	}
	if n := len(r.Files()); n != 2 {
		t.Fatalf("Files() = %v", r.Files())
	}
}

func TestRefusesDolly(t *testing.T) {
	dir := t.TempDir()
	priv := filepath.Join(dir, "dolly", "prompts.jsonl")
	write(t, priv, `{"text":"secret"}`)
	write(t, filepath.Join(dir, "public", "p.jsonl"), `{"text":"ok"}`)
	if err := os.Symlink(filepath.Join(dir, "dolly"), filepath.Join(dir, "public", "sneaky")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{priv, filepath.Join(dir, "dolly"), dir, filepath.Join(dir, "public", "sneaky", "prompts.jsonl")} {
		_, err := Open(p)
		if !errors.Is(err, ErrPrivate) {
			t.Errorf("Open(%s): err = %v, want ErrPrivate", p, err)
		} else if !strings.Contains(err.Error(), "/dolly/") {
			t.Errorf("error should say why: %v", err)
		}
	}
	// A link into dolly inside a public folder poisons the folder...
	if _, err := Open(filepath.Join(dir, "public")); !errors.Is(err, ErrPrivate) {
		t.Fatalf("public folder holding a link to dolly: %v, want ErrPrivate", err)
	}
	// ...and without it the folder is fine.
	if err := os.Remove(filepath.Join(dir, "public", "sneaky")); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(filepath.Join(dir, "public")); err != nil {
		t.Fatal(err)
	}
	// "dollyish" is not dolly.
	write(t, filepath.Join(dir, "dollyish", "q.jsonl"), `{"text":"ok"}`)
	if _, err := Open(filepath.Join(dir, "dollyish")); err != nil {
		t.Fatal(err)
	}
}

func TestErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.jsonl")
	write(t, bad, `{"text":"fine"}`+"\n"+`not json`+"\n")
	r, err := Open(bad)
	if err != nil {
		t.Fatal(err)
	}
	got, err := collect(t, r)
	if err == nil || !strings.Contains(err.Error(), "bad.jsonl:2") || len(got) != 1 {
		t.Fatalf("want an error naming bad.jsonl:2 after one text; got %q, %v", got, err)
	}
	if _, err := Open(filepath.Join(dir, "missing.jsonl")); err == nil {
		t.Fatal("missing file: no error")
	}
	other := filepath.Join(dir, "x.csv")
	write(t, other, "a,b")
	if _, err := Open(other); err == nil {
		t.Fatal("unknown format: no error")
	}
	empty := filepath.Join(dir, "empty")
	os.Mkdir(empty, 0o755)
	if _, err := Open(empty); err == nil {
		t.Fatal("empty dir: no error")
	}
	if _, err := Open(); err == nil {
		t.Fatal("no paths: no error")
	}
}

func TestContextAndBreak(t *testing.T) {
	p := filepath.Join(t.TempDir(), "a.jsonl")
	write(t, p, strings.Repeat(`{"text":"t"}`+"\n", 100))
	r, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, err := range r.Texts(context.Background()) {
		if err != nil {
			t.Fatal(err)
		}
		if n++; n == 3 {
			break
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var gotErr error
	for _, err := range r.Texts(ctx) {
		gotErr = err
	}
	if !errors.Is(gotErr, context.Canceled) {
		t.Fatalf("cancelled ctx: %v", gotErr)
	}
}

func TestPublicData(t *testing.T) {
	d := dataDir(t)
	r, err := Open(PublicDir(d))
	if err != nil {
		t.Fatal(err)
	}
	n, bytes := 0, 0
	for s, err := range r.Texts(context.Background()) {
		if err != nil {
			t.Fatal(err)
		}
		n++
		bytes += len(s)
	}
	t.Logf("%d files, %d texts, %d bytes", len(r.Files()), n, bytes)
	if n < 40000 {
		t.Fatalf("only %d texts in the public corpus", n)
	}
	if _, err := Open(filepath.Join(d, "dolly")); !errors.Is(err, ErrPrivate) {
		t.Fatalf("Open(dolly) = %v, want ErrPrivate", err)
	}
	if _, err := Open(d); !errors.Is(err, ErrPrivate) {
		t.Fatalf("Open(whole data dir, which holds dolly/) = %v, want ErrPrivate", err)
	}
	// Evaluation may read what the user can see, Dolly included.
	if r, err := OpenVisible(filepath.Join(d, "dolly", "prompts.jsonl")); err != nil || len(r.Files()) != 1 {
		t.Fatalf("OpenVisible(dolly prompts) = %v", err)
	}
}
