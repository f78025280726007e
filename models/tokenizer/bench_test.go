package tokenizer

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dpinstruct/dpinstruct/models/corpus"
)

// publicDir locates ../shared/data/public ($DPINSTRUCT_DATA/public), or
// skips.
func publicDir(tb testing.TB) string {
	tb.Helper()
	d := os.Getenv(corpus.EnvDataDir)
	if d == "" {
		d = filepath.Join("..", "..", "..", "shared", "data")
	}
	p := corpus.PublicDir(d)
	if _, err := os.Stat(p); err != nil {
		tb.Skipf("public data not found at %s (set %s): %v", p, corpus.EnvDataDir, err)
	}
	return p
}

// heldOut are the public files kept out of training for the encode
// benchmark and the compression figures: the public eval prompts.
var heldOut = []string{"fastchat", "oasst1-turkunlp/prompts.jsonl"}

func isHeldOut(path string) bool {
	p := filepath.ToSlash(path)
	for _, h := range heldOut {
		if strings.Contains(p, "/"+h) {
			return true
		}
	}
	return false
}

type split struct {
	all, train, test []string
	trainBytes       int
}

var (
	splitOnce sync.Once
	splitData split
	splitErr  error
)

func loadSplit(tb testing.TB) split {
	dir := publicDir(tb)
	splitOnce.Do(func() {
		r, err := corpus.Open(dir)
		if err != nil {
			splitErr = err
			return
		}
		for _, f := range r.Files() {
			fr, err := corpus.Open(f)
			if err != nil {
				splitErr = err
				return
			}
			for s, err := range fr.Texts(context.Background()) {
				if err != nil {
					splitErr = err
					return
				}
				splitData.all = append(splitData.all, s)
				if isHeldOut(f) {
					splitData.test = append(splitData.test, s)
				} else {
					splitData.train = append(splitData.train, s)
					splitData.trainBytes += len(s)
				}
			}
		}
	})
	if splitErr != nil {
		tb.Fatal(splitErr)
	}
	return splitData
}

// BenchmarkTrain trains the default 4096-token vocabulary on the whole
// public corpus (texts already in memory).
func BenchmarkTrain(b *testing.B) {
	d := loadSplit(b)
	n := 0
	for _, s := range d.all {
		n += len(s)
	}
	b.SetBytes(int64(n))
	for b.Loop() {
		tok, err := Train(context.Background(), seqOf(d.all), TrainOptions{})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(tok.NumMerges()), "merges")
	}
}

// BenchmarkEncode encodes the held-out public prompts with a tokenizer
// trained on the rest, with a warm cache as in steady use, and reports
// compression.
func BenchmarkEncode(b *testing.B) {
	d := loadSplit(b)
	t0 := time.Now()
	tok, err := Train(context.Background(), seqOf(d.train), TrainOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("trained on %d texts (%.1f MB) in %v: %d merges", len(d.train), float64(d.trainBytes)/1e6, time.Since(t0), tok.NumMerges())
	n, tokens, words := 0, 0, 0
	for _, s := range d.test {
		n += len(s)
		tokens += len(tok.Encode(s))
		words += len(strings.Fields(s))
	}
	b.SetBytes(int64(n))
	b.ResetTimer()
	for b.Loop() {
		for _, s := range d.test {
			tok.Encode(s)
		}
	}
	b.ReportMetric(float64(n)/float64(tokens), "bytes/token")
	b.ReportMetric(float64(tokens)/float64(words), "tokens/word")
}

// BenchmarkEncodeCold is BenchmarkEncode with an empty cache each pass.
func BenchmarkEncodeCold(b *testing.B) {
	d := loadSplit(b)
	tok, err := Train(context.Background(), seqOf(d.train), TrainOptions{})
	if err != nil {
		b.Fatal(err)
	}
	n := 0
	for _, s := range d.test {
		n += len(s)
	}
	b.SetBytes(int64(n))
	b.ResetTimer()
	for b.Loop() {
		tok.mu.Lock()
		clear(tok.cache)
		tok.mu.Unlock()
		for _, s := range d.test {
			tok.Encode(s)
		}
	}
}

// BenchmarkTrainFromDisk is BenchmarkTrain reading (and gunzipping) the
// files through corpus.Texts, as `dpinstruct pretrain` will.
func BenchmarkTrainFromDisk(b *testing.B) {
	dir := publicDir(b)
	for b.Loop() {
		r, err := corpus.Open(dir)
		if err != nil {
			b.Fatal(err)
		}
		tok, err := Train(context.Background(), r.Texts(context.Background()), TrainOptions{})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(tok.VocabSize()), "vocab")
	}
}
