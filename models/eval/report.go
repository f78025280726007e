package eval

import (
	"bytes"
	"fmt"
	"html/template"
	"image/color"
	"io"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// WriteText prints the report for a terminal. The last line is
// mauve=<mean> (after the filter when it ran: mauve_filtered=<mean> comes
// just before it), for scripts.
func WriteText(w io.Writer, r *Report) {
	fmt.Fprintf(w, "real %d texts, synthetic %d texts, embedding %s\n", r.RealN, r.SyntheticN, r.Embedding)
	fmt.Fprintf(w, "MAUVE %.4f +- %.4f (std over %d k-means seeds, %d clusters); frontier integral %.4f +- %.4f (lower is closer)\n",
		r.Mauve.Mauve, r.Mauve.MauveStd, len(r.Mauve.PerSeed), r.Mauve.Clusters, r.Mauve.Frontier, r.Mauve.FrontierStd)
	fmt.Fprintf(w, "length in tokens: real mean %.1f (p50 %.0f, p90 %.0f), synthetic mean %.1f (p50 %.0f, p90 %.0f)\n",
		r.RealLengths.Mean, r.RealLengths.P50, r.RealLengths.P90, r.SyntheticLengths.Mean, r.SyntheticLengths.P50, r.SyntheticLengths.P90)
	fmt.Fprintf(w, "distinct-1..4: real %s, synthetic %s\n", fmtFloats(r.RealDistinct), fmtFloats(r.SyntheticDistinct))
	if r.RealSpelling == nil || r.SyntheticSpelling == nil {
		fmt.Fprintln(w, NoWordList)
	} else {
		fmt.Fprintf(w, "spelling: texts with every word in the word list: real %s, synthetic %s; %s\n",
			pctOf(r.RealSpelling.CleanTexts, r.RealSpelling.Texts), pctOf(r.SyntheticSpelling.CleanTexts, r.SyntheticSpelling.Texts), wordListName(r))
		fmt.Fprintf(w, "spelling: words in the word list: real %s, synthetic %s\n",
			pctOf(r.RealSpelling.KnownWords, r.RealSpelling.Words), pctOf(r.SyntheticSpelling.KnownWords, r.SyntheticSpelling.Words))
	}
	fmt.Fprintf(w, "harmful-request screen: texts matching: real %s, synthetic %s\n",
		pctOf(r.RealHarmful.Matched, r.RealHarmful.Texts), pctOf(r.SyntheticHarmful.Matched, r.SyntheticHarmful.Texts))
	fmt.Fprintf(w, "leakage: %d synthetic texts copy a real text exactly, %d share a run of >= %d tokens with one (of %d checked)\n",
		r.Leaks.Exact, r.Leaks.Ngram, r.LeakMinTokens, r.Leaks.Checked)
	if f := r.Filter; f != nil {
		fmt.Fprintf(w, "DP filter: %d clusters, histogram sigma %g", f.Clusters, f.HistogramSigma)
		if f.Epsilon > 0 {
			fmt.Fprintf(w, " (epsilon %.3f at delta %g for the histogram alone)", f.Epsilon, f.Delta)
		}
		fmt.Fprintf(w, ", selected %d of %d, %d clusters ran short\n", f.Selected, r.SyntheticN, len(f.Short))
		fmt.Fprintf(w, "MAUVE after the filter %.4f +- %.4f (before %.4f)\n", f.Mauve.Mauve, f.Mauve.MauveStd, r.Mauve.Mauve)
		fmt.Fprintf(w, "mauve_filtered=%.6f\n", f.Mauve.Mauve)
	}
	fmt.Fprintf(w, "mauve=%.6f\n", r.Mauve.Mauve)
}

// NoWordList is the report's line when spelling was not measured.
const NoWordList = "no word list: spelling not measured (pass --wordlist FILE or install wamerican-large)"

// pctOf formats n of total as "12.5% (5 of 40)".
func pctOf(n, total int) string {
	var p float64
	if total > 0 {
		p = 100 * float64(n) / float64(total)
	}
	return fmt.Sprintf("%.1f%% (%d of %d)", p, n, total)
}

// wordListName says which word list spelling was measured against.
func wordListName(r *Report) string {
	if r.WordListPath == "" {
		return fmt.Sprintf("word list of %d words", r.WordListWords)
	}
	return fmt.Sprintf("word list %s (%d words)", r.WordListPath, r.WordListWords)
}

func fmtFloats(v []float64) string {
	parts := make([]string, len(v))
	for i, x := range v {
		parts[i] = fmt.Sprintf("%.3f", x)
	}
	return strings.Join(parts, " / ")
}

// series is one named bar or line series of a plot.
type series struct {
	name  string
	color color.Color
	vals  []float64
}

var palette = []color.Color{
	color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
	color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
}

// barsSVG draws grouped bars, one group per category, as inline SVG.
func barsSVG(title, xlabel, ylabel string, ss []series) (template.HTML, error) {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xlabel
	p.Y.Label.Text = ylabel
	n := len(ss)
	width := vg.Points(max(1.5, 300/float64(max(1, len(ss[0].vals)*n))))
	for i, s := range ss {
		bars, err := plotter.NewBarChart(plotter.Values(s.vals), width)
		if err != nil {
			return "", fmt.Errorf("eval: plot %q: %w", title, err)
		}
		bars.Color = s.color
		bars.LineStyle.Width = 0
		bars.Offset = width * vg.Length(float64(i)-float64(n-1)/2)
		p.Add(bars)
		p.Legend.Add(s.name, bars)
	}
	p.Legend.Top = true
	return renderSVG(p)
}

func renderSVG(p *plot.Plot) (template.HTML, error) {
	wt, err := p.WriterTo(9*vg.Inch, 3.2*vg.Inch, "svg")
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	if _, err := wt.WriteTo(&buf); err != nil {
		return "", err
	}
	svg := buf.String()
	// Drop the XML prolog: the SVG is inlined into HTML.
	if i := strings.Index(svg, "<svg"); i > 0 {
		svg = svg[i:]
	}
	return template.HTML(svg), nil // produced by gonum/plot from numbers and fixed labels only
}

func shareOf(h []int) []float64 {
	out := make([]float64, len(h))
	var t int
	for _, c := range h {
		t += c
	}
	for i, c := range h {
		if t > 0 {
			out[i] = float64(c) / float64(t)
		}
	}
	return out
}

// WriteHTML writes a self-contained HTML page (inline SVG plots, no
// scripts, no external resources) that opens in a browser without a
// server. Texts are escaped by html/template.
func WriteHTML(w io.Writer, r *Report) error {
	type plotHTML struct {
		Title string
		SVG   template.HTML
	}
	var plots []plotHTML
	add := func(title, xl, yl string, ss []series) error {
		svg, err := barsSVG(title, xl, yl, ss)
		if err != nil {
			return err
		}
		plots = append(plots, plotHTML{title, svg})
		return nil
	}
	if len(r.Mauve.PerSeed) > 0 {
		s := r.Mauve.PerSeed[0]
		if err := add(fmt.Sprintf("MAUVE clusters (seed %d): real vs synthetic", s.Seed), "cluster", "share",
			[]series{{"real", palette[0], s.P}, {"synthetic", palette[1], s.Q}}); err != nil {
			return err
		}
	}
	if f := r.Filter; f != nil {
		if err := add("DP filter clusters: real vs synthetic pool (before the filter)", "cluster", "share",
			[]series{{"real", palette[0], f.RealShare}, {"synthetic pool", palette[1], f.PoolShare}}); err != nil {
			return err
		}
		if err := add("DP filter clusters: real vs selected (after the filter)", "cluster", "share",
			[]series{{"real", palette[0], f.RealShare}, {"selected", palette[2], f.SelectedShare}}); err != nil {
			return err
		}
	}
	lens := []series{{"real", palette[0], shareOf(r.RealLengths.Histogram)}, {"synthetic", palette[1], shareOf(r.SyntheticLengths.Histogram)}}
	if r.Filter != nil {
		lens = append(lens, series{"selected", palette[2], shareOf(r.Filter.SelectedLengths.Histogram)})
	}
	if err := add(fmt.Sprintf("Length distribution (tokens; bucket edges %s)", fmtEdges(r.RealLengths.BucketEdges)), "length bucket", "share", lens); err != nil {
		return err
	}
	return reportPage.Execute(w, struct {
		R     *Report
		Plots []plotHTML
	}{r, plots})
}

func fmtEdges(e []float64) string {
	if len(e) == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.0f..%.0f", e[0], e[len(e)-1])
}

var reportPage = template.Must(template.New("report").Funcs(template.FuncMap{
	"f4": func(x float64) string { return fmt.Sprintf("%.4f", x) },
	"f3": func(x float64) string { return fmt.Sprintf("%.3f", x) },
	"f1": func(x float64) string { return fmt.Sprintf("%.1f", x) },

	"pctOf":        pctOf,
	"wordListName": wordListName,
	"noWordList":   func() string { return NoWordList },
}).Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>dpinstruct evaluation</title>
<style>
body{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:right}
th{background:#f4f4f4}td.t{text-align:left;white-space:pre-wrap;max-width:40em}
.big{font-size:1.6em;font-weight:bold}
</style></head><body>
<h1>Synthetic vs real instructions</h1>
<p>{{.R.RealN}} real texts, {{.R.SyntheticN}} synthetic texts, embedding <code>{{.R.Embedding}}</code>.</p>
<p class="big">MAUVE {{f4 .R.Mauve.Mauve}} &plusmn; {{f4 .R.Mauve.MauveStd}}{{with .R.Filter}} &rarr; {{f4 .Mauve.Mauve}} &plusmn; {{f4 .Mauve.MauveStd}} after the DP filter{{end}}</p>
<table><tr><th></th><th>real</th><th>synthetic</th>{{with .R.Filter}}<th>after the filter</th>{{end}}</tr>
<tr><th>texts</th><td>{{.R.RealN}}</td><td>{{.R.SyntheticN}}</td>{{with .R.Filter}}<td>{{.Selected}}</td>{{end}}</tr>
<tr><th>MAUVE (mean &plusmn; std over {{len .R.Mauve.PerSeed}} seeds)</th><td></td><td>{{f4 .R.Mauve.Mauve}} &plusmn; {{f4 .R.Mauve.MauveStd}}</td>{{with .R.Filter}}<td>{{f4 .Mauve.Mauve}} &plusmn; {{f4 .Mauve.MauveStd}}</td>{{end}}</tr>
<tr><th>frontier integral (lower is closer)</th><td></td><td>{{f4 .R.Mauve.Frontier}}</td>{{with .R.Filter}}<td>{{f4 .Mauve.Frontier}}</td>{{end}}</tr>
<tr><th>mean length (tokens)</th><td>{{f1 .R.RealLengths.Mean}}</td><td>{{f1 .R.SyntheticLengths.Mean}}</td>{{with .R.Filter}}<td>{{f1 .SelectedLengths.Mean}}</td>{{end}}</tr>
<tr><th>distinct-1..4</th><td>{{range .R.RealDistinct}}{{f3 .}} {{end}}</td><td>{{range .R.SyntheticDistinct}}{{f3 .}} {{end}}</td>{{with .R.Filter}}<td></td>{{end}}</tr>
{{if and .R.RealSpelling .R.SyntheticSpelling}}<tr><th>spelling: texts with every word in the word list</th><td>{{pctOf .R.RealSpelling.CleanTexts .R.RealSpelling.Texts}}</td><td>{{pctOf .R.SyntheticSpelling.CleanTexts .R.SyntheticSpelling.Texts}}</td>{{with .R.Filter}}<td></td>{{end}}</tr>
<tr><th>words in the word list</th><td>{{pctOf .R.RealSpelling.KnownWords .R.RealSpelling.Words}}</td><td>{{pctOf .R.SyntheticSpelling.KnownWords .R.SyntheticSpelling.Words}}</td>{{with .R.Filter}}<td></td>{{end}}</tr>
{{end}}<tr><th>harmful-request screen: texts matching</th><td>{{pctOf .R.RealHarmful.Matched .R.RealHarmful.Texts}}</td><td>{{pctOf .R.SyntheticHarmful.Matched .R.SyntheticHarmful.Texts}}</td>{{with .R.Filter}}<td></td>{{end}}</tr>
</table>
{{if and .R.RealSpelling .R.SyntheticSpelling}}<p>Spelling against the {{wordListName .R}}: a word is a run of letters, possibly joined by apostrophes, lower-cased; it counts as in the list when it is listed, is a listed word plus &rsquo;s, or is a single letter. A text without words counts as clean.</p>{{else}}<p>{{noWordList}}</p>{{end}}
<p>Harmful-request screen: a crude word screen (textstats.HarmfulTerms, listed in docs/MODELS.md) that over- and under-matches; it compares how much of each set reads like a red-team request.</p>
{{with .R.Filter}}<p>DP filter: {{.Clusters}} clusters fitted on the synthetic set only; histogram noise &sigma;<sub>h</sub> = {{.HistogramSigma}}{{if gt .Epsilon 0.0}} (&epsilon; = {{f3 .Epsilon}} at &delta; = {{.Delta}} for the histogram alone){{end}}; {{len .Short}} clusters had fewer synthetic texts than their quota.</p>{{end}}
{{range .Plots}}<h2>{{.Title}}</h2>{{.SVG}}{{end}}
<h2>Leakage</h2>
<p>{{.R.Leaks.Exact}} synthetic texts equal a real text; {{.R.Leaks.Ngram}} share a run of &ge; {{.R.LeakMinTokens}} tokens with one ({{.R.Leaks.Checked}} checked).</p>
{{if .R.LeakExamples}}<table><tr><th>kind</th><th>run</th><th>synthetic</th><th>real</th></tr>
{{range .R.LeakExamples}}<tr><td>{{.Kind}}</td><td>{{.NgramLen}}</td><td class="t">{{.Synthetic}}</td><td class="t">{{.Real}}</td></tr>
{{end}}</table>{{end}}
<h2>Synthetic samples</h2>
<table>{{range .R.SyntheticSamples}}<tr><td class="t">{{.}}</td></tr>{{end}}</table>
<p>Made by <code>dpinstruct eval</code>. MAUVE: Pillutla et al. 2021 (c = 5, PCA 90%, k-means, 25-point divergence curve).</p>
</body></html>
`))
