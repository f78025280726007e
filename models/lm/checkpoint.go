package lm

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/tensors"
)

// Files of a model folder. Save writes only these; anything else in the
// folder (tokenizer.json, notes) is left alone.
const (
	ConfigFile    = "config.json"
	WeightsFile   = "model.safetensors"     // base weights and adapters
	OptimizerFile = "optimizer.safetensors" // Adam moments, step counters, learning rate
)

// ErrNewerFormat is returned (wrapped) by Load for a folder written by a
// newer version of this package.
var ErrNewerFormat = errors.New("lm: model folder has a newer format version")

// Save writes the model folder dir (created if needed): config.json,
// model.safetensors (every variable under /base and /lora) and, when the
// store holds optimizer state, optimizer.safetensors (otherwise a stale
// optimizer.safetensors is removed so it cannot be paired with other
// weights). Each file is written to a temporary name and renamed. Other
// files in dir are not touched.
//
// Tensor names in the safetensors files are the GoMLX variable paths
// without the leading "/", e.g. "base/layer00/attn/q/weights"; matrices are
// stored [in, out] (GoMLX orientation, the transpose of PyTorch's Linear).
func (m *Model) Save(dir string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("lm: save: %w", err)
	}
	cfg := m.cfg
	cfg.FormatVersion = FormatVersion
	cj, err := cfg.MarshalIndent()
	if err != nil {
		return err
	}
	weights := map[string]*tensors.Tensor{}
	opt := map[string]*tensors.Tensor{}
	for v := range m.store.IterVariables() {
		t, err := v.Value()
		if err != nil {
			return fmt.Errorf("lm: save %s: %w", v.Path(), err)
		}
		name := strings.TrimPrefix(v.Path(), "/")
		if IsWeight(v.Path()) {
			weights[name] = t
		} else {
			opt[name] = t
		}
	}
	meta := map[string]string{"format_version": strconv.Itoa(FormatVersion), "producer": "dpinstruct/models/lm"}
	if err := writeSafetensors(filepath.Join(dir, WeightsFile), weights, meta); err != nil {
		return err
	}
	if len(opt) > 0 {
		if err := writeSafetensors(filepath.Join(dir, OptimizerFile), opt, meta); err != nil {
			return err
		}
	} else if err := os.Remove(filepath.Join(dir, OptimizerFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("lm: save: %w", err)
	}
	// config.json last: a folder with a config always has its weights.
	return writeAtomic(filepath.Join(dir, ConfigFile), append(cj, '\n'))
}

// Load reads a model folder written by Save. Optimizer state, when present,
// is restored too, so a Trainer created afterwards resumes (same Adam
// moments and step count). A folder whose format_version is newer than
// FormatVersion fails with ErrNewerFormat.
func Load(dir string, opts ...Option) (*Model, error) {
	raw, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	if err != nil {
		return nil, fmt.Errorf("lm: load: %w", err)
	}
	var cfg Config
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&cfg); err != nil {
		return nil, fmt.Errorf("lm: load %s: %w", ConfigFile, err)
	}
	if cfg.FormatVersion > FormatVersion {
		return nil, fmt.Errorf("%w: %s has format_version %d, this build reads up to %d",
			ErrNewerFormat, filepath.Join(dir, ConfigFile), cfg.FormatVersion, FormatVersion)
	}
	if cfg.FormatVersion < 1 {
		return nil, fmt.Errorf("lm: load: %s has no format_version", filepath.Join(dir, ConfigFile))
	}
	m, err := newModelShell(cfg, opts)
	if err != nil {
		return nil, err
	}
	// Build a reference model's variable list to check completeness.
	ref, err := New(m.cfg, 0, WithBackend(m.backend))
	if err != nil {
		return nil, err
	}
	want := map[string][]int{}
	for v := range ref.store.IterVariables() {
		want[strings.TrimPrefix(v.Path(), "/")] = v.Shape().Dimensions
	}
	weights, err := readSafetensors(filepath.Join(dir, WeightsFile))
	if err != nil {
		return nil, err
	}
	// Create variables in the reference order (deterministic iteration).
	for v := range ref.store.IterVariables() {
		name := strings.TrimPrefix(v.Path(), "/")
		t, ok := weights[name]
		if !ok {
			return nil, fmt.Errorf("lm: load: %s lacks %q", WeightsFile, name)
		}
		if !slices.Equal(t.Shape().Dimensions, want[name]) {
			return nil, fmt.Errorf("lm: load: %q has shape %v, config implies %v", name, t.Shape().Dimensions, want[name])
		}
		if _, err := m.store.CreateVariable("/"+name, t); err != nil {
			return nil, err
		}
		delete(weights, name)
	}
	if len(weights) > 0 {
		extra := make([]string, 0, len(weights))
		for k := range weights {
			extra = append(extra, k)
		}
		sort.Strings(extra)
		return nil, fmt.Errorf("lm: load: %s has tensors the config does not describe: %v", WeightsFile, extra)
	}
	optPath := filepath.Join(dir, OptimizerFile)
	if _, err := os.Stat(optPath); err == nil {
		opt, err := readSafetensors(optPath)
		if err != nil {
			return nil, err
		}
		names := make([]string, 0, len(opt))
		for k := range opt {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, name := range names {
			v, err := m.store.CreateVariable("/"+name, opt[name])
			if err != nil {
				return nil, err
			}
			v.Trainable = false
		}
	}
	return m, nil
}

// safetensors: 8-byte little-endian header length N, N bytes of JSON
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}},
// then the raw little-endian data.
type stEntry struct {
	DType       string   `json:"dtype"`
	Shape       []int    `json:"shape"`
	DataOffsets [2]int64 `json:"data_offsets"`
}

var stDTypes = map[dtypes.DType]string{
	dtypes.Float32: "F32", dtypes.Float64: "F64", dtypes.Int32: "I32", dtypes.Int64: "I64",
}

func writeSafetensors(path string, ts map[string]*tensors.Tensor, meta map[string]string) error {
	names := make([]string, 0, len(ts))
	for k := range ts {
		names = append(names, k)
	}
	sort.Strings(names)
	header := map[string]any{"__metadata__": meta}
	var data bytes.Buffer
	for _, name := range names {
		t := ts[name]
		st, ok := stDTypes[t.DType()]
		if !ok {
			return fmt.Errorf("lm: save %q: unsupported dtype %s", name, t.DType())
		}
		begin := int64(data.Len())
		if err := t.ConstBytes(func(b []byte) { data.Write(b) }); err != nil {
			return fmt.Errorf("lm: save %q: %w", name, err)
		}
		dims := t.Shape().Dimensions
		if dims == nil {
			dims = []int{}
		}
		header[name] = stEntry{DType: st, Shape: dims, DataOffsets: [2]int64{begin, int64(data.Len())}}
	}
	hj, err := json.Marshal(header)
	if err != nil {
		return err
	}
	for len(hj)%8 != 0 { // align data to 8 bytes, as the reference writer does
		hj = append(hj, ' ')
	}
	var out bytes.Buffer
	_ = binary.Write(&out, binary.LittleEndian, uint64(len(hj)))
	out.Write(hj)
	out.Write(data.Bytes())
	return writeAtomic(path, out.Bytes())
}

func readSafetensors(path string) (map[string]*tensors.Tensor, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("lm: load: %w", err)
	}
	defer f.Close()
	var n uint64
	if err := binary.Read(f, binary.LittleEndian, &n); err != nil {
		return nil, fmt.Errorf("lm: load %s: header: %w", path, err)
	}
	if n > 100<<20 {
		return nil, fmt.Errorf("lm: load %s: header of %d bytes", path, n)
	}
	hj := make([]byte, n)
	if _, err := io.ReadFull(f, hj); err != nil {
		return nil, fmt.Errorf("lm: load %s: header: %w", path, err)
	}
	var header map[string]json.RawMessage
	if err := json.Unmarshal(hj, &header); err != nil {
		return nil, fmt.Errorf("lm: load %s: header: %w", path, err)
	}
	if rawMeta, ok := header["__metadata__"]; ok {
		var meta map[string]string
		if json.Unmarshal(rawMeta, &meta) == nil {
			if v, err := strconv.Atoi(meta["format_version"]); err == nil && v > FormatVersion {
				return nil, fmt.Errorf("%w: %s has format_version %d", ErrNewerFormat, path, v)
			}
		}
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("lm: load %s: %w", path, err)
	}
	out := map[string]*tensors.Tensor{}
	for name, raw := range header {
		if name == "__metadata__" {
			continue
		}
		var e stEntry
		if err := json.Unmarshal(raw, &e); err != nil {
			return nil, fmt.Errorf("lm: load %s: %q: %w", path, name, err)
		}
		b, end := e.DataOffsets[0], e.DataOffsets[1]
		if b < 0 || end < b || end > int64(len(data)) {
			return nil, fmt.Errorf("lm: load %s: %q: bad offsets", path, name)
		}
		chunk := data[b:end]
		size := 1
		for _, d := range e.Shape {
			// Checked against the data length so a hostile header cannot
			// overflow the size or ask for a huge allocation.
			if d < 0 || (d > 0 && size > len(data)/d) {
				return nil, fmt.Errorf("lm: load %s: %q: bad shape %v", path, name, e.Shape)
			}
			size *= d
		}
		var t *tensors.Tensor
		switch e.DType {
		case "F32":
			t, err = decodeFlat[float32](chunk, size, 4, e.Shape)
		case "F64":
			t, err = decodeFlat[float64](chunk, size, 8, e.Shape)
		case "I32":
			t, err = decodeFlat[int32](chunk, size, 4, e.Shape)
		case "I64":
			t, err = decodeFlat[int64](chunk, size, 8, e.Shape)
		default:
			err = fmt.Errorf("unsupported dtype %s", e.DType)
		}
		if err != nil {
			return nil, fmt.Errorf("lm: load %s: %q: %w", path, name, err)
		}
		out[name] = t
	}
	return out, nil
}

func decodeFlat[T float32 | float64 | int32 | int64](chunk []byte, size, width int, shape []int) (*tensors.Tensor, error) {
	if len(chunk) != size*width {
		return nil, fmt.Errorf("%d bytes for %d values", len(chunk), size)
	}
	vals := make([]T, size)
	if err := binary.Read(bytes.NewReader(chunk), binary.LittleEndian, vals); err != nil {
		return nil, err
	}
	if len(shape) == 0 {
		return tensors.FromScalar(vals[0]), nil
	}
	return tensors.FromFlatDataAndDimensions(vals, shape...), nil
}

func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("lm: save: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("lm: save: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("lm: save: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("lm: save: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("lm: save: %w", err)
	}
	return nil
}
