package hfconvert

// The safetensors format is written and read by hand: the only Go
// implementation in the package lists (github.com/nlpodyssey/safetensors)
// is not a dependency of this module and is not maintained, and the format
// is small enough (an 8-byte length, a JSON header, raw data) that owning
// it is cheaper than a new dependency.

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
)

// ErrFormat is wrapped by every error about a malformed safetensors file,
// so callers can tell bad input from I/O failures with errors.Is.
var ErrFormat = errors.New("safetensors: bad file format")

// maxHeader bounds the JSON header (safetensors' own limit is 100 MB): a
// corrupt length must not make the reader allocate gigabytes.
const maxHeader = 100 << 20

// metadataKey is the header entry that holds free-form string metadata.
const metadataKey = "__metadata__"

// dtypeSize is the element size of each safetensors dtype.
var dtypeSize = map[string]int{
	"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1,
	"I16": 2, "U16": 2, "F16": 2, "BF16": 2,
	"I32": 4, "U32": 4, "F32": 4,
	"I64": 8, "U64": 8, "F64": 8,
}

// Tensor is one float32 tensor to write: a name, a shape and its elements
// in row-major order.
type Tensor struct {
	Name  string
	Shape []int
	Data  []float32
}

// headerEntry is one tensor's description in the JSON header.
type headerEntry struct {
	DType       string   `json:"dtype"`
	Shape       []int64  `json:"shape"`
	DataOffsets [2]int64 `json:"data_offsets"`
}

// WriteSafetensors writes tensors (all F32, stored in the given order) and
// optional string metadata to w. Names must be unique, non-empty and not
// "__metadata__", and each shape must match its data length.
func WriteSafetensors(w io.Writer, tensors []Tensor, metadata map[string]string) error {
	hdr := make(map[string]any, len(tensors)+1)
	if len(metadata) > 0 {
		hdr[metadataKey] = metadata
	}
	var off int64
	for i, t := range tensors {
		if t.Name == "" || t.Name == metadataKey {
			return fmt.Errorf("safetensors: tensor %d: invalid name %q", i, t.Name)
		}
		if _, dup := hdr[t.Name]; dup {
			return fmt.Errorf("safetensors: tensor %q appears twice", t.Name)
		}
		n := int64(1)
		shape := make([]int64, len(t.Shape))
		for k, d := range t.Shape {
			if d < 0 {
				return fmt.Errorf("safetensors: tensor %q: negative dimension in shape %v", t.Name, t.Shape)
			}
			n *= int64(d)
			shape[k] = int64(d)
		}
		if n != int64(len(t.Data)) {
			return fmt.Errorf("safetensors: tensor %q: shape %v holds %d elements, data has %d", t.Name, t.Shape, n, len(t.Data))
		}
		hdr[t.Name] = headerEntry{DType: "F32", Shape: shape, DataOffsets: [2]int64{off, off + 4*n}}
		off += 4 * n
	}
	js, err := json.Marshal(hdr)
	if err != nil {
		return fmt.Errorf("safetensors: header: %w", err)
	}
	// Pad with spaces to a multiple of 8, as the reference writer does, so
	// the data starts aligned for readers that map the file.
	if r := len(js) % 8; r != 0 {
		js = append(js, bytes.Repeat([]byte(" "), 8-r)...)
	}
	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(len(js)))
	if _, err := w.Write(lenBuf[:]); err != nil {
		return fmt.Errorf("safetensors: write: %w", err)
	}
	if _, err := w.Write(js); err != nil {
		return fmt.Errorf("safetensors: write: %w", err)
	}
	buf := make([]byte, 0, 1<<16)
	for _, t := range tensors {
		for _, v := range t.Data {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
			if len(buf) == cap(buf) {
				if _, err := w.Write(buf); err != nil {
					return fmt.Errorf("safetensors: write %s: %w", t.Name, err)
				}
				buf = buf[:0]
			}
		}
	}
	if _, err := w.Write(buf); err != nil {
		return fmt.Errorf("safetensors: write: %w", err)
	}
	return nil
}

// WriteSafetensorsFile writes the tensors to path (see WriteSafetensors).
func WriteSafetensorsFile(path string, tensors []Tensor, metadata map[string]string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	if err := WriteSafetensors(f, tensors, metadata); err != nil {
		// A half-written file would fail every reader; do not leave it.
		f.Close()
		os.Remove(path)
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	return nil
}

// TensorInfo describes one stored tensor; Data is its raw little-endian
// bytes (a slice of the file).
type TensorInfo struct {
	Name  string
	DType string
	Shape []int64
	Data  []byte
}

// File is a parsed safetensors file.
type File struct {
	Metadata map[string]string
	Tensors  map[string]TensorInfo
}

// Names returns the tensor names, sorted.
func (f *File) Names() []string {
	names := make([]string, 0, len(f.Tensors))
	for n := range f.Tensors {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Float32 returns tensor name's elements, which must be F32.
func (f *File) Float32(name string) ([]float32, []int64, error) {
	t, ok := f.Tensors[name]
	if !ok {
		return nil, nil, fmt.Errorf("safetensors: no tensor %q", name)
	}
	if t.DType != "F32" {
		return nil, nil, fmt.Errorf("safetensors: tensor %q is %s, want F32", name, t.DType)
	}
	out := make([]float32, len(t.Data)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(t.Data[4*i:]))
	}
	return out, t.Shape, nil
}

// ReadSafetensorsFile reads and parses a safetensors file.
func ReadSafetensorsFile(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	f, err := ParseSafetensors(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

// ParseSafetensors parses a whole safetensors file held in data. It checks
// what the reference implementation checks: a header length inside the
// file, a JSON object of known dtypes, each tensor's byte span equal to its
// shape times its element size, and spans that tile the data section
// exactly (no holes, no overlaps, nothing after).
func ParseSafetensors(data []byte) (*File, error) {
	if len(data) < 8 {
		return nil, fmt.Errorf("%w: %d bytes, too short for the 8-byte header length", ErrFormat, len(data))
	}
	n := binary.LittleEndian.Uint64(data[:8])
	if n > maxHeader {
		return nil, fmt.Errorf("%w: header length %d exceeds the %d-byte limit", ErrFormat, n, maxHeader)
	}
	if n > uint64(len(data)-8) {
		return nil, fmt.Errorf("%w: header length %d exceeds the %d bytes after it (truncated file?)", ErrFormat, n, len(data)-8)
	}
	hdrBytes, body := data[8:8+n], data[8+n:]
	if !bytes.HasPrefix(hdrBytes, []byte("{")) {
		return nil, fmt.Errorf("%w: header does not start with '{'", ErrFormat)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(hdrBytes, &raw); err != nil {
		return nil, fmt.Errorf("%w: header JSON: %w", ErrFormat, err)
	}
	f := &File{Tensors: make(map[string]TensorInfo, len(raw))}
	type span struct {
		name       string
		begin, end int64
	}
	spans := make([]span, 0, len(raw))
	for name, msg := range raw {
		if name == metadataKey {
			if err := json.Unmarshal(msg, &f.Metadata); err != nil {
				return nil, fmt.Errorf("%w: %s must map strings to strings: %w", ErrFormat, metadataKey, err)
			}
			continue
		}
		var e headerEntry
		if err := json.Unmarshal(msg, &e); err != nil {
			return nil, fmt.Errorf("%w: tensor %q: %w", ErrFormat, trunc(name), err)
		}
		size, ok := dtypeSize[e.DType]
		if !ok {
			return nil, fmt.Errorf("%w: tensor %q: unknown dtype %q", ErrFormat, trunc(name), e.DType)
		}
		elems := int64(1)
		for _, d := range e.Shape {
			if d < 0 {
				return nil, fmt.Errorf("%w: tensor %q: negative dimension in shape %v", ErrFormat, trunc(name), e.Shape)
			}
			if d != 0 && elems > math.MaxInt64/int64(size)/d {
				return nil, fmt.Errorf("%w: tensor %q: shape %v overflows", ErrFormat, trunc(name), e.Shape)
			}
			elems *= d
		}
		begin, end := e.DataOffsets[0], e.DataOffsets[1]
		if begin < 0 || end < begin || end > int64(len(body)) {
			return nil, fmt.Errorf("%w: tensor %q: data_offsets [%d, %d] outside the %d data bytes", ErrFormat, trunc(name), begin, end, len(body))
		}
		if end-begin != elems*int64(size) {
			return nil, fmt.Errorf("%w: tensor %q: data_offsets span %d bytes, shape %v of %s needs %d", ErrFormat, trunc(name), end-begin, e.Shape, e.DType, elems*int64(size))
		}
		f.Tensors[name] = TensorInfo{Name: name, DType: e.DType, Shape: e.Shape, Data: body[begin:end:end]}
		spans = append(spans, span{name, begin, end})
	}
	slices.SortFunc(spans, func(a, b span) int {
		if c := cmp.Compare(a.begin, b.begin); c != 0 {
			return c
		}
		return cmp.Compare(a.end, b.end)
	})
	var at int64
	for _, s := range spans {
		if s.begin != at {
			return nil, fmt.Errorf("%w: tensor %q starts at data byte %d, want %d (a hole or an overlap)", ErrFormat, trunc(s.name), s.begin, at)
		}
		at = s.end
	}
	if at != int64(len(body)) {
		return nil, fmt.Errorf("%w: tensors cover %d data bytes of %d (trailing bytes)", ErrFormat, at, len(body))
	}
	return f, nil
}

// trunc shortens a name from a possibly hostile header for an error.
func trunc(s string) string {
	if len(s) <= 64 {
		return s
	}
	return strings.ToValidUTF8(s[:64], "") + "..."
}
