package eval

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/dpinstruct/dpinstruct/models/embed"
	"github.com/dpinstruct/dpinstruct/models/filter"
	"github.com/dpinstruct/dpinstruct/models/mauve"
	"github.com/dpinstruct/dpinstruct/models/privacy"
	"github.com/dpinstruct/dpinstruct/models/textstats"
)

// Options configures Run.
type Options struct {
	// Embedder maps texts to features for MAUVE and the filter. Required.
	Embedder embed.Embedder
	// Seeds are the k-means seeds MAUVE is averaged over (nil: 1..5).
	Seeds []uint64
	// Tokenize splits a text into tokens for lengths, distinct-n and
	// leakage (nil: whitespace words).
	Tokenize func(string) []string
	// LeakMinTokens is the shared-run length that counts as a leak (0: 8).
	LeakMinTokens int
	// Filter, when set, also runs the DP filter on the synthetic set
	// against the real one and evaluates its selection.
	Filter *FilterOptions
	// WordList is the word list spelling is measured against (nil: no
	// list, spelling is not measured).
	WordList *textstats.WordList
	// Progress, when set, is told each stage's name as it starts.
	Progress func(stage string)
}

// FilterOptions are the DP filter's settings for an evaluation run.
type FilterOptions struct {
	filter.Options
	// Delta at which the histogram's epsilon is reported.
	Delta float64
}

// Report is everything Run measured.
type Report struct {
	Embedding         string
	RealN, SyntheticN int
	Mauve             *mauve.Result
	RealLengths       textstats.Lengths
	SyntheticLengths  textstats.Lengths
	RealDistinct      []float64 // distinct-1..4
	SyntheticDistinct []float64
	Leaks             *textstats.LeakReport
	LeakMinTokens     int
	LeakExamples      []LeakExample
	Filter            *FilterReport
	SyntheticSamples  []string // the first few synthetic texts, for a reader
	// Spelling of both sets against Options.WordList, loaded from
	// WordListPath; nil when there was no list.
	RealSpelling, SyntheticSpelling *textstats.Spelling
	WordListPath                    string
	WordListWords                   int // entries in the list
	// The share of each set that matches the harmful-request screen
	// (textstats.HarmfulShare).
	RealHarmful, SyntheticHarmful textstats.Screen
}

// LeakExample pairs a leaking synthetic text with the real text it shares
// a run with.
type LeakExample struct {
	textstats.Leak
	Synthetic, Real string
}

// FilterReport is the DP filter's outcome on the evaluated sets.
type FilterReport struct {
	Selected       int
	Mauve          *mauve.Result
	Clusters       int
	HistogramSigma float64
	Epsilon, Delta float64 // of the histogram alone
	Short          []int
	// Per filter cluster: the real share (exact; eval data is visible),
	// the pool's share before and the selection's share after filtering.
	RealShare, PoolShare, SelectedShare []float64
	SelectedLengths                     textstats.Lengths
}

// Run evaluates synthetic against real.
func Run(ctx context.Context, real, synthetic []string, o Options) (*Report, error) {
	if o.Embedder == nil {
		return nil, errors.New("eval: no embedder")
	}
	if len(real) < 2 || len(synthetic) < 2 {
		return nil, fmt.Errorf("eval: need at least 2 real and 2 synthetic texts, got %d and %d", len(real), len(synthetic))
	}
	stage := func(s string) {
		if o.Progress != nil {
			o.Progress(s)
		}
	}
	if o.LeakMinTokens == 0 {
		o.LeakMinTokens = 8
	}
	tokenize := o.Tokenize
	if tokenize == nil {
		tokenize = Words
	}
	r := &Report{Embedding: o.Embedder.Name(), RealN: len(real), SyntheticN: len(synthetic), LeakMinTokens: o.LeakMinTokens}

	stage("embedding")
	realE, err := o.Embedder.Embed(ctx, real)
	if err != nil {
		return nil, fmt.Errorf("eval: embedding the real texts: %w", err)
	}
	synE, err := o.Embedder.Embed(ctx, synthetic)
	if err != nil {
		return nil, fmt.Errorf("eval: embedding the synthetic texts: %w", err)
	}
	stage("MAUVE")
	r.Mauve, err = mauve.Compute(ctx, realE, synE, mauve.Options{Seeds: o.Seeds})
	if err != nil {
		return nil, fmt.Errorf("eval: MAUVE: %w", err)
	}

	stage("text statistics")
	const lengthBuckets = 16
	r.RealLengths = textstats.LengthStats(real, tokenize, lengthBuckets)
	r.SyntheticLengths = textstats.LengthStats(synthetic, tokenize, lengthBuckets)
	r.RealDistinct = textstats.DistinctN(real, tokenize, 4)
	r.SyntheticDistinct = textstats.DistinctN(synthetic, tokenize, 4)
	if o.WordList.Len() > 0 {
		rs, ss := o.WordList.Spelling(real), o.WordList.Spelling(synthetic)
		r.RealSpelling, r.SyntheticSpelling = &rs, &ss
		r.WordListPath, r.WordListWords = o.WordList.Path(), o.WordList.Len()
	}
	r.RealHarmful, r.SyntheticHarmful = textstats.HarmfulShare(real), textstats.HarmfulShare(synthetic)
	stage("leakage")
	r.Leaks, err = textstats.Leakage(ctx, real, synthetic, tokenize, o.LeakMinTokens, 50)
	if err != nil {
		return nil, fmt.Errorf("eval: leakage: %w", err)
	}
	for _, l := range r.Leaks.Leaks {
		r.LeakExamples = append(r.LeakExamples, LeakExample{Leak: l, Synthetic: synthetic[l.SyntheticIndex], Real: real[l.RealIndex]})
	}
	r.SyntheticSamples = synthetic[:min(10, len(synthetic))]

	if o.Filter != nil {
		stage("DP filter")
		r.Filter, err = runFilter(ctx, realE, synE, synthetic, tokenize, o)
		if err != nil {
			return nil, err
		}
	}
	return r, nil
}

func runFilter(ctx context.Context, realE, synE [][]float32, synthetic []string, tokenize func(string) []string, o Options) (*FilterReport, error) {
	fo := o.Filter.Options
	if fo.Output == 0 {
		fo.Output = len(realE)
	}
	if !(fo.HistogramSigma >= 0) {
		return nil, fmt.Errorf("eval: histogram sigma must be >= 0, got %v", fo.HistogramSigma)
	}
	c, err := filter.Cluster(ctx, synE, fo)
	if err != nil {
		return nil, fmt.Errorf("eval: DP filter: %w", err)
	}
	votes := c.Votes(realE)
	noise := fo.Noise
	if noise == nil {
		noise = rand.New(rand.NewPCG(fo.Seed, 0x4015e)) // eval data is visible: no need for secret noise
	}
	res := c.Select(filter.NoisyHistogram(votes, fo.HistogramSigma, noise), fo.Output, fo.Seed)
	if len(res.Selected) < 2 {
		return nil, fmt.Errorf("eval: the DP filter selected %d texts; too few to evaluate", len(res.Selected))
	}
	fr := &FilterReport{Selected: len(res.Selected), Clusters: res.Clusters, HistogramSigma: fo.HistogramSigma,
		Short: res.Short, Delta: o.Filter.Delta}
	if fo.HistogramSigma > 0 && fr.Delta > 0 {
		if fr.Epsilon, err = privacy.GaussianEpsilon(fo.HistogramSigma, fr.Delta, 1); err != nil {
			return nil, fmt.Errorf("eval: histogram epsilon: %w", err)
		}
	}
	// Eval data is visible, so the report shows the exact real shares.
	fr.RealShare = filter.NoisyHistogram(votes, 0, nil)
	pool := make([]float64, res.Clusters)
	for cl, n := range res.PoolCounts {
		pool[cl] = float64(n)
	}
	fr.PoolShare = filter.Normalise(pool)
	selected := make([]float64, res.Clusters)
	for _, cl := range res.SelectedCluster {
		selected[cl]++
	}
	fr.SelectedShare = filter.Normalise(selected)

	sel := make([][]float32, len(res.Selected))
	texts := make([]string, len(res.Selected))
	for i, j := range res.Selected {
		sel[i], texts[i] = synE[j], synthetic[j]
	}
	fr.SelectedLengths = textstats.LengthStats(texts, tokenize, 16)
	fr.Mauve, err = mauve.Compute(ctx, realE, sel, mauve.Options{Seeds: o.Seeds})
	if err != nil {
		return nil, fmt.Errorf("eval: MAUVE after the filter: %w", err)
	}
	return fr, nil
}

// Words splits on whitespace: the default tokenization.
func Words(s string) []string { return strings.Fields(s) }
