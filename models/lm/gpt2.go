package lm

// Loading Hugging Face GPT-2 checkpoints (the path to bigger models).
//
// The architecture of this package is GPT-2's (pre-norm blocks, learned
// positions, tied head, tanh-approximated GELU, LayerNorm with biased
// variance, attention scaled by 1/sqrt(head_dim)), so a GPT-2 checkpoint
// maps onto it tensor by tensor; only the fused q/k/v projection is split
// and an untied lm_head is transposed. LoadGPT2 reads such a folder from
// local disk (it never uses the network):
//
//	dir/config.json                     HF GPT2Config
//	dir/model.safetensors               weights (F32, F16 or BF16), or
//	dir/model.safetensors.index.json    + the shards it names (sharded checkpoints)
//	dir/tokenizer.json                  read by models/tokenizer.Load, not here
//
// The tokenizer is the caller's business: tokenizer.Load(dir +
// "/tokenizer.json") reads GPT-2's file as HF ships it; its vocabulary size
// must equal config.json's vocab_size (50257 for GPT-2) and its
// <|endoftext|> id the eos_token_id (50256).
//
// The loaded Model is an ordinary lm.Model (LoRA rank 0): LogitsFor,
// Generate, AddLoRA + NewTrainer for fine-tuning, and Save (which writes it
// in this package's own folder format, so a converted checkpoint is read
// back with Load). The backend is the WithBackend option, e.g.
//
//	b, err := lm.BackendFromName("go")   // or "xla:cuda" in a -tags xla build
//	m, err := lm.LoadGPT2(dir, lm.WithBackend(b))

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"

	"github.com/gomlx/gomlx/core/tensors"
)

// GPT2IndexFile is the index of a sharded safetensors checkpoint (HF layout).
const GPT2IndexFile = "model.safetensors.index.json"

// gpt2Config is the subset of Hugging Face's GPT2Config that LoadGPT2 reads.
// Pointers distinguish "absent" (HF default applies) from zero.
type gpt2Config struct {
	ModelType                  string          `json:"model_type"`
	NEmbd                      int             `json:"n_embd"`
	NLayer                     int             `json:"n_layer"`
	NHead                      int             `json:"n_head"`
	NPositions                 int             `json:"n_positions"`
	NCtx                       int             `json:"n_ctx"`
	NInner                     *int            `json:"n_inner"`
	VocabSize                  int             `json:"vocab_size"`
	LayerNormEpsilon           *float64        `json:"layer_norm_epsilon"`
	EOSTokenID                 json.RawMessage `json:"eos_token_id"`
	BOSTokenID                 json.RawMessage `json:"bos_token_id"`
	ActivationFunction         string          `json:"activation_function"`
	TieWordEmbeddings          *bool           `json:"tie_word_embeddings"`
	ScaleAttnWeights           *bool           `json:"scale_attn_weights"`
	ScaleAttnByInverseLayerIdx bool            `json:"scale_attn_by_inverse_layer_idx"`
	AddCrossAttention          bool            `json:"add_cross_attention"`
}

// gpt2Activations are the HF activation names that equal this package's
// GELU, 0.5·x·(1+tanh(sqrt(2/π)·(x+0.044715·x³))). "gelu_fast" writes the
// same formula with sqrt(2/π) rounded to 0.7978845608 (3e-12 apart).
var gpt2Activations = map[string]bool{"gelu_new": true, "gelu_pytorch_tanh": true, "gelu_fast": true}

// tokenID reads an HF token-id field: a number, a list of numbers (first
// one used) or null/absent (ok=false).
func tokenID(raw json.RawMessage) (id int, ok bool, err error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, false, nil
	}
	if err := json.Unmarshal(raw, &id); err == nil {
		return id, true, nil
	}
	var ids []int
	if err := json.Unmarshal(raw, &ids); err != nil {
		return 0, false, fmt.Errorf("token id %s: want a number or a list of numbers", raw)
	}
	if len(ids) == 0 {
		return 0, false, nil
	}
	return ids[0], true, nil
}

// configFromGPT2 maps an HF GPT2Config onto Config, refusing settings this
// package's forward pass would not reproduce.
func configFromGPT2(g gpt2Config) (Config, error) {
	if g.ModelType != "" && g.ModelType != "gpt2" {
		return Config{}, fmt.Errorf("model_type %q is not gpt2", g.ModelType)
	}
	act := g.ActivationFunction
	if act == "" {
		act = "gelu_new" // GPT2Config's default
	}
	if !gpt2Activations[act] {
		return Config{}, fmt.Errorf("activation_function %q is not supported (this package implements the tanh-approximated GELU: gelu_new, gelu_pytorch_tanh, gelu_fast)", act)
	}
	if g.ScaleAttnWeights != nil && !*g.ScaleAttnWeights {
		return Config{}, errors.New("scale_attn_weights=false is not supported (attention is always scaled by 1/sqrt(head_dim))")
	}
	if g.ScaleAttnByInverseLayerIdx {
		return Config{}, errors.New("scale_attn_by_inverse_layer_idx=true is not supported")
	}
	if g.AddCrossAttention {
		return Config{}, errors.New("add_cross_attention=true is not supported (decoder-only)")
	}
	if g.NEmbd < 1 || g.NLayer < 1 || g.NHead < 1 || g.VocabSize < 1 {
		return Config{}, fmt.Errorf("n_embd (%d), n_layer (%d), n_head (%d) and vocab_size (%d) must be positive", g.NEmbd, g.NLayer, g.NHead, g.VocabSize)
	}
	positions := g.NPositions
	if positions == 0 {
		positions = g.NCtx
	}
	if positions == 0 {
		return Config{}, errors.New("neither n_positions nor n_ctx is set")
	}
	ratio := 4 // n_inner null means 4*n_embd
	if g.NInner != nil && *g.NInner != 0 {
		if *g.NInner%g.NEmbd != 0 {
			return Config{}, fmt.Errorf("n_inner %d is not a multiple of n_embd %d", *g.NInner, g.NEmbd)
		}
		ratio = *g.NInner / g.NEmbd
	}
	eps := 1e-5
	if g.LayerNormEpsilon != nil {
		eps = *g.LayerNormEpsilon
	}
	eos, ok, err := tokenID(g.EOSTokenID)
	if err != nil {
		return Config{}, fmt.Errorf("eos_token_id: %w", err)
	}
	if !ok {
		if eos, ok, err = tokenID(g.BOSTokenID); err != nil {
			return Config{}, fmt.Errorf("bos_token_id: %w", err)
		}
	}
	if !ok {
		return Config{}, errors.New("neither eos_token_id nor bos_token_id is set")
	}
	tied := true
	if g.TieWordEmbeddings != nil {
		tied = *g.TieWordEmbeddings
	}
	cfg := Config{
		FormatVersion:    FormatVersion,
		VocabSize:        g.VocabSize,
		Context:          positions,
		Layers:           g.NLayer,
		Width:            g.NEmbd,
		Heads:            g.NHead,
		MLPRatio:         ratio,
		EOS:              int32(eos),
		TiedEmbeddings:   tied,
		LayerNormEpsilon: eps,
	}
	return cfg, cfg.Validate()
}

// LoadGPT2 reads a Hugging Face GPT-2 checkpoint folder (GPT2Model or
// GPT2LMHeadModel, saved with save_pretrained in safetensors format) from
// local disk and returns it as a Model. Options as for New (WithBackend).
//
// config.json fields read: n_embd (Width), n_layer (Layers), n_head
// (Heads), n_positions or else n_ctx (Context), n_inner (null = 4·n_embd;
// else a multiple of n_embd, MLPRatio), vocab_size, layer_norm_epsilon
// (default 1e-5), eos_token_id or else bos_token_id (EOS; it is also BOS, as
// in GPT-2), tie_word_embeddings (default true), activation_function
// ("gelu_new" (default), "gelu_pytorch_tanh" or "gelu_fast": all the tanh
// form this package computes; "gelu" (exact erf), "relu" etc. are refused).
// scale_attn_by_inverse_layer_idx, add_cross_attention and
// scale_attn_weights=false are refused; dropout settings are ignored.
//
// Tensors (names optionally prefixed "transformer."; Conv1D weights are
// already [in, out], this package's orientation; d = n_embd, f = MLP width):
//
//	wte.weight                 [V,d]    -> /base/tok_emb/embeddings
//	wpe.weight                 [P,d]    -> /base/pos_emb/embeddings
//	h.{i}.ln_1.weight, .bias   [d]      -> /base/layer{ii}/ln1/gain, bias
//	h.{i}.attn.c_attn.weight   [d,3d]   -> columns [0,d) attn/q/weights, [d,2d) k, [2d,3d) v
//	h.{i}.attn.c_attn.bias     [3d]     -> attn/q/biases, k, v (same split)
//	h.{i}.attn.c_proj.weight   [d,d]    -> attn/o/weights   (.bias [d] -> attn/o/biases)
//	h.{i}.ln_2.weight, .bias   [d]      -> ln2/gain, bias
//	h.{i}.mlp.c_fc.weight      [d,f]    -> mlp/up/weights   (.bias [f] -> mlp/up/biases)
//	h.{i}.mlp.c_proj.weight    [f,d]    -> mlp/down/weights (.bias [d] -> mlp/down/biases)
//	ln_f.weight, .bias         [d]      -> /base/ln_f/gain, bias
//	lm_head.weight             [V,d]    -> /base/head/weights transposed to [d,V] (untied only;
//	                                       with a tied head it is ignored, it is wte)
//
// The buffers h.{i}.attn.bias (causal mask) and h.{i}.attn.masked_bias are
// ignored. Every shape is checked; a missing tensor, a wrong shape or an
// unknown tensor is an error naming it. Dtypes F32, F64, F16 and BF16 are
// read (converted to float32; real checkpoints are often F16).
// model.safetensors is read tensor by tensor (no second copy of the file in
// memory); a sharded checkpoint (model.safetensors.index.json) is read shard
// by shard.
//
// tokenizer.json is not read here: load it with models/tokenizer.Load; its
// vocabulary must match vocab_size.
func LoadGPT2(dir string, opts ...Option) (*Model, error) {
	raw, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	if err != nil {
		return nil, fmt.Errorf("lm: load gpt2: %w", err)
	}
	var g gpt2Config
	if err := json.Unmarshal(raw, &g); err != nil {
		return nil, fmt.Errorf("lm: load gpt2 %s: %w", filepath.Join(dir, ConfigFile), err)
	}
	cfg, err := configFromGPT2(g)
	if err != nil {
		return nil, fmt.Errorf("lm: load gpt2 %s: %w", filepath.Join(dir, ConfigFile), err)
	}
	m, err := newModelShell(cfg, opts)
	if err != nil {
		return nil, err
	}
	src, err := openGPT2Weights(dir)
	if err != nil {
		return nil, err
	}
	defer src.close()
	if err := m.loadGPT2Tensors(src); err != nil {
		return nil, err
	}
	return m, nil
}

// gpt2Source is the set of tensors of a (possibly sharded) checkpoint.
type gpt2Source struct {
	files   map[string]*stFile // by file name
	tensors map[string]string  // HF tensor name -> file name
	prefix  string             // "" or "transformer."
	used    map[string]bool
}

func (s *gpt2Source) close() {
	for _, f := range s.files {
		f.f.Close()
	}
}

func openGPT2Weights(dir string) (*gpt2Source, error) {
	src := &gpt2Source{files: map[string]*stFile{}, tensors: map[string]string{}, used: map[string]bool{}}
	single := filepath.Join(dir, WeightsFile)
	var shards []string
	if _, err := os.Stat(single); err == nil {
		shards = []string{WeightsFile}
	} else if idx, ierr := os.ReadFile(filepath.Join(dir, GPT2IndexFile)); ierr == nil {
		var index struct {
			WeightMap map[string]string `json:"weight_map"`
		}
		if err := json.Unmarshal(idx, &index); err != nil {
			return nil, fmt.Errorf("lm: load gpt2 %s: %w", filepath.Join(dir, GPT2IndexFile), err)
		}
		seen := map[string]bool{}
		for _, f := range index.WeightMap {
			if !seen[f] {
				seen[f] = true
				shards = append(shards, f)
			}
		}
		sort.Strings(shards)
	} else {
		return nil, fmt.Errorf("lm: load gpt2: %s has no %s (nor %s): only safetensors checkpoints are read (convert pytorch_model.bin with HF's save_pretrained(safe_serialization=True))",
			dir, WeightsFile, GPT2IndexFile)
	}
	for _, name := range shards {
		if filepath.Base(name) != name {
			src.close()
			return nil, fmt.Errorf("lm: load gpt2: shard name %q is not a plain file name", name)
		}
		f, err := openSafetensors(filepath.Join(dir, name))
		if err != nil {
			src.close()
			return nil, err
		}
		src.files[name] = f
		for t := range f.entries {
			if prev, dup := src.tensors[t]; dup {
				src.close()
				return nil, fmt.Errorf("lm: load gpt2: tensor %q is in both %s and %s", t, prev, name)
			}
			src.tensors[t] = name
		}
	}
	if _, ok := src.tensors["transformer.wte.weight"]; ok {
		src.prefix = "transformer."
	}
	return src, nil
}

// get reads HF tensor name (without the prefix; "lm_head.weight" is never
// prefixed) as float32 and checks its shape.
func (s *gpt2Source) get(name string, want ...int) ([]float32, error) {
	full := name
	if name != "lm_head.weight" {
		full = s.prefix + name
	}
	file, ok := s.tensors[full]
	if !ok {
		return nil, fmt.Errorf("lm: load gpt2: checkpoint lacks tensor %q", full)
	}
	s.used[full] = true
	f := s.files[file]
	e := f.entries[full]
	if !slices.Equal(e.Shape, want) {
		return nil, fmt.Errorf("lm: load gpt2: tensor %q has shape %v, config.json implies %v", full, e.Shape, want)
	}
	data, err := f.float32s(full)
	if err != nil {
		return nil, fmt.Errorf("lm: load gpt2 %s: %w", f.path, err)
	}
	return data, nil
}

// columns returns columns [from, to) of a row-major [rows, cols] matrix.
func columns(data []float32, rows, cols, from, to int) []float32 {
	out := make([]float32, 0, rows*(to-from))
	for r := range rows {
		out = append(out, data[r*cols+from:r*cols+to]...)
	}
	return out
}

func transpose(data []float32, rows, cols int) []float32 {
	out := make([]float32, len(data))
	for r := range rows {
		for c := range cols {
			out[c*rows+r] = data[r*cols+c]
		}
	}
	return out
}

// loadGPT2Tensors creates every variable New would create (same paths and
// shapes) from the checkpoint's tensors.
func (m *Model) loadGPT2Tensors(s *gpt2Source) error {
	c := m.cfg
	d, f, V, P := c.Width, c.MLPRatio*c.Width, c.VocabSize, c.Context
	put := func(path string, data []float32, dims ...int) error {
		_, err := m.store.CreateVariable(path, tensors.FromFlatDataAndDimensions(data, dims...))
		return err
	}
	copyTo := func(path, name string, dims ...int) error {
		data, err := s.get(name, dims...)
		if err != nil {
			return err
		}
		return put(path, data, dims...)
	}
	ln := func(scope, name string) error {
		if err := copyTo(scope+"/gain", name+".weight", d); err != nil {
			return err
		}
		return copyTo(scope+"/bias", name+".bias", d)
	}
	wte, err := s.get("wte.weight", V, d)
	if err != nil {
		return err
	}
	if err := put(pathTokEmb, wte, V, d); err != nil {
		return err
	}
	if err := copyTo(pathPosEmb, "wpe.weight", P, d); err != nil {
		return err
	}
	for i := range c.Layers {
		lp, h := LayerPath(i), fmt.Sprintf("h.%d.", i)
		if err := ln(lp+"/ln1", h+"ln_1"); err != nil {
			return err
		}
		w, err := s.get(h+"attn.c_attn.weight", d, 3*d)
		if err != nil {
			return err
		}
		b, err := s.get(h+"attn.c_attn.bias", 3*d)
		if err != nil {
			return err
		}
		for j, p := range []string{"q", "k", "v"} {
			if err := put(lp+"/attn/"+p+"/weights", columns(w, d, 3*d, j*d, (j+1)*d), d, d); err != nil {
				return err
			}
			if err := put(lp+"/attn/"+p+"/biases", append([]float32(nil), b[j*d:(j+1)*d]...), d); err != nil {
				return err
			}
		}
		steps := []struct {
			path, name string
			dims       []int
		}{
			{lp + "/attn/o/weights", h + "attn.c_proj.weight", []int{d, d}},
			{lp + "/attn/o/biases", h + "attn.c_proj.bias", []int{d}},
			{lp + "/ln2/gain", h + "ln_2.weight", []int{d}},
			{lp + "/ln2/bias", h + "ln_2.bias", []int{d}},
			{lp + "/mlp/up/weights", h + "mlp.c_fc.weight", []int{d, f}},
			{lp + "/mlp/up/biases", h + "mlp.c_fc.bias", []int{f}},
			{lp + "/mlp/down/weights", h + "mlp.c_proj.weight", []int{f, d}},
			{lp + "/mlp/down/biases", h + "mlp.c_proj.bias", []int{d}},
		}
		for _, st := range steps {
			if err := copyTo(st.path, st.name, st.dims...); err != nil {
				return err
			}
		}
		// Buffers, not weights.
		s.used[s.prefix+h+"attn.bias"] = true
		s.used[s.prefix+h+"attn.masked_bias"] = true
	}
	if err := ln(pathLNf, "ln_f"); err != nil {
		return err
	}
	if c.TiedEmbeddings {
		if _, ok := s.tensors["lm_head.weight"]; ok {
			// A tied checkpoint may still carry the (shared) matrix.
			if e := s.files[s.tensors["lm_head.weight"]].entries["lm_head.weight"]; !slices.Equal(e.Shape, []int{V, d}) {
				return fmt.Errorf("lm: load gpt2: tensor %q has shape %v, config.json implies %v", "lm_head.weight", e.Shape, []int{V, d})
			}
			s.used["lm_head.weight"] = true
		}
	} else {
		head, err := s.get("lm_head.weight", V, d)
		if err != nil {
			return fmt.Errorf("%w (tie_word_embeddings is false)", err)
		}
		if err := put(pathHead, transpose(head, V, d), d, V); err != nil {
			return err
		}
	}
	var extra []string
	for name := range s.tensors {
		if !s.used[name] {
			extra = append(extra, name)
		}
	}
	if len(extra) > 0 {
		sort.Strings(extra)
		return fmt.Errorf("lm: load gpt2: checkpoint has tensors a GPT-2 with this config.json does not have: %v", extra)
	}
	return nil
}

// stFile is an open safetensors file whose tensors are read on demand.
type stFile struct {
	path    string
	f       *os.File
	dataAt  int64 // offset of the data section
	size    int64 // length of the data section
	entries map[string]stEntry
}

func openSafetensors(path string) (*stFile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("lm: load gpt2: %w", err)
	}
	fail := func(format string, args ...any) (*stFile, error) {
		f.Close()
		return nil, fmt.Errorf("lm: load gpt2 %s: "+format, append([]any{path}, args...)...)
	}
	st, err := f.Stat()
	if err != nil {
		return fail("%w", err)
	}
	var n uint64
	if err := binary.Read(f, binary.LittleEndian, &n); err != nil {
		return fail("header: %w", err)
	}
	if n > 100<<20 || int64(n)+8 > st.Size() {
		return fail("header of %d bytes in a file of %d", n, st.Size())
	}
	hj := make([]byte, n)
	if _, err := io.ReadFull(f, hj); err != nil {
		return fail("header: %w", err)
	}
	var header map[string]json.RawMessage
	if err := json.Unmarshal(hj, &header); err != nil {
		return fail("header: %w", err)
	}
	out := &stFile{path: path, f: f, dataAt: 8 + int64(n), size: st.Size() - 8 - int64(n), entries: map[string]stEntry{}}
	for name, raw := range header {
		if name == "__metadata__" {
			continue
		}
		var e stEntry
		if err := json.Unmarshal(raw, &e); err != nil {
			return fail("%q: %w", name, err)
		}
		b, end := e.DataOffsets[0], e.DataOffsets[1]
		if b < 0 || end < b || end > out.size {
			return fail("%q: bad data offsets %v", name, e.DataOffsets)
		}
		out.entries[name] = e
	}
	return out, nil
}

// float32s reads tensor name, converting F16, BF16 and F64 to float32.
func (s *stFile) float32s(name string) ([]float32, error) {
	e := s.entries[name]
	size := 1
	for _, d := range e.Shape {
		size *= d
	}
	width := map[string]int{"F32": 4, "F64": 8, "F16": 2, "BF16": 2}[e.DType]
	if width == 0 {
		return nil, fmt.Errorf("%q: unsupported dtype %s (want F32, F16, BF16 or F64)", name, e.DType)
	}
	n := e.DataOffsets[1] - e.DataOffsets[0]
	if n != int64(size*width) {
		return nil, fmt.Errorf("%q: %d bytes for %d %s values", name, n, size, e.DType)
	}
	buf := make([]byte, n)
	if _, err := s.f.ReadAt(buf, s.dataAt+e.DataOffsets[0]); err != nil {
		return nil, fmt.Errorf("%q: %w", name, err)
	}
	out := make([]float32, size)
	le := binary.LittleEndian
	switch e.DType {
	case "F32":
		for i := range out {
			out[i] = math.Float32frombits(le.Uint32(buf[4*i:]))
		}
	case "F64":
		for i := range out {
			out[i] = float32(math.Float64frombits(le.Uint64(buf[8*i:])))
		}
	case "F16":
		for i := range out {
			out[i] = halfToFloat32(le.Uint16(buf[2*i:]))
		}
	case "BF16":
		for i := range out {
			out[i] = math.Float32frombits(uint32(le.Uint16(buf[2*i:])) << 16)
		}
	}
	return out, nil
}

// halfToFloat32 converts an IEEE 754 binary16 value (exactly: every half is
// a float32).
func halfToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	frac := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // inf, NaN
		return math.Float32frombits(sign | 0xff<<23 | frac<<13)
	case exp != 0: // normal: rebias 15 -> 127
		return math.Float32frombits(sign | (exp+112)<<23 | frac<<13)
	case frac == 0:
		return math.Float32frombits(sign)
	}
	// Subnormal: frac·2^-24.
	v := float32(frac) * (1.0 / (1 << 24))
	if sign != 0 {
		v = -v
	}
	return v
}
