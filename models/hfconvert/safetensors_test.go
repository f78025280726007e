package hfconvert

import (
	"bytes"
	"encoding/binary"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// rawFile assembles a safetensors file from a header string and data bytes.
func rawFile(t testing.TB, header string, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	_ = binary.Write(&b, binary.LittleEndian, uint64(len(header)))
	b.WriteString(header)
	b.Write(data)
	return b.Bytes()
}

func TestSafetensorsRoundTrip(t *testing.T) {
	in := []Tensor{
		{Name: "b", Shape: []int{2, 3}, Data: []float32{1, 2, 3, 4, 5, -6.5}},
		{Name: "a", Shape: []int{1}, Data: []float32{7}},
		{Name: "empty", Shape: []int{0, 4}, Data: nil},
	}
	path := filepath.Join(t.TempDir(), "m.safetensors")
	if err := WriteSafetensorsFile(path, in, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	f, err := ReadSafetensorsFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if f.Metadata["format"] != "pt" {
		t.Errorf("metadata = %v", f.Metadata)
	}
	if got := strings.Join(f.Names(), ","); got != "a,b,empty" {
		t.Errorf("names = %s", got)
	}
	for _, want := range in {
		got, shape, err := f.Float32(want.Name)
		if err != nil {
			t.Fatal(err)
		}
		if len(shape) != len(want.Shape) {
			t.Errorf("%s: shape %v, want %v", want.Name, shape, want.Shape)
		}
		for i, d := range want.Shape {
			if shape[i] != int64(d) {
				t.Errorf("%s: shape %v, want %v", want.Name, shape, want.Shape)
			}
		}
		if len(got) != len(want.Data) {
			t.Fatalf("%s: %d elements, want %d", want.Name, len(got), len(want.Data))
		}
		for i := range got {
			if got[i] != want.Data[i] {
				t.Errorf("%s[%d] = %v, want %v", want.Name, i, got[i], want.Data[i])
			}
		}
	}
	if _, _, err := f.Float32("missing"); err == nil {
		t.Error("Float32(missing): no error")
	}
}

func TestSafetensorsHeaderAligned(t *testing.T) {
	var b bytes.Buffer
	if err := WriteSafetensors(&b, []Tensor{{Name: "x", Shape: []int{1}, Data: []float32{1}}}, nil); err != nil {
		t.Fatal(err)
	}
	if n := binary.LittleEndian.Uint64(b.Bytes()); n%8 != 0 {
		t.Errorf("header length %d is not a multiple of 8", n)
	}
}

func TestWriteSafetensorsErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		tensors []Tensor
		want    string
	}{
		{"empty name", []Tensor{{Name: "", Shape: []int{1}, Data: []float32{1}}}, "invalid name"},
		{"metadata name", []Tensor{{Name: "__metadata__", Shape: []int{1}, Data: []float32{1}}}, "invalid name"},
		{"duplicate", []Tensor{{Name: "x", Shape: []int{1}, Data: []float32{1}}, {Name: "x", Shape: []int{1}, Data: []float32{1}}}, "twice"},
		{"shape mismatch", []Tensor{{Name: "x", Shape: []int{2}, Data: []float32{1}}}, "holds 2 elements"},
		{"negative dim", []Tensor{{Name: "x", Shape: []int{-1}, Data: nil}}, "negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := WriteSafetensors(&bytes.Buffer{}, tc.tensors, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestParseSafetensorsErrors(t *testing.T) {
	four := []byte{0, 0, 128, 63}
	for _, tc := range []struct {
		name string
		file []byte
		want string
	}{
		{"short", []byte{1, 2, 3}, "too short"},
		{"header too long", rawFile(t, "{}", nil)[:9], "exceeds the"},
		{"huge header", append(binary.LittleEndian.AppendUint64(nil, 1<<40), '{'), "limit"},
		{"not an object", rawFile(t, "[1]", nil), "does not start"},
		{"bad json", rawFile(t, "{\"x\":", nil), "header JSON"},
		{"bad entry", rawFile(t, `{"x":3}`, nil), `tensor "x"`},
		{"unknown dtype", rawFile(t, `{"x":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}}`, four), "unknown dtype"},
		{"negative dim", rawFile(t, `{"x":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`, four), "negative"},
		{"overflow", rawFile(t, `{"x":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,4]}}`, four), "overflows"},
		{"outside", rawFile(t, `{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, four), "outside"},
		{"reversed", rawFile(t, `{"x":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}`, four), "outside"},
		{"size mismatch", rawFile(t, `{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}`, four), "needs 8"},
		{"hole", rawFile(t, `{"x":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}}`, four), "a hole"},
		{"overlap", rawFile(t, `{"x":{"dtype":"U8","shape":[3],"data_offsets":[0,3]},"y":{"dtype":"U8","shape":[3],"data_offsets":[1,4]}}`, four), "overlap"},
		{"trailing", rawFile(t, `{"x":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}`, four), "trailing"},
		{"bad metadata", rawFile(t, `{"__metadata__":{"a":1}}`, nil), "__metadata__"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseSafetensors(tc.file)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
			if !errors.Is(err, ErrFormat) {
				t.Errorf("err = %v does not wrap ErrFormat", err)
			}
		})
	}
}

func TestFloat32WrongDType(t *testing.T) {
	f, err := ParseSafetensors(rawFile(t, `{"x":{"dtype":"I32","shape":[1],"data_offsets":[0,4]}}`, []byte{1, 0, 0, 0}))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.Float32("x"); err == nil || !strings.Contains(err.Error(), "want F32") {
		t.Errorf("err = %v", err)
	}
}

// FuzzParseSafetensors feeds arbitrary bytes to the reader: it must never
// panic, and whatever it accepts must have every tensor's bytes match its
// shape and dtype.
func FuzzParseSafetensors(f *testing.F) {
	var b bytes.Buffer
	_ = WriteSafetensors(&b, []Tensor{
		{Name: "w", Shape: []int{2, 2}, Data: []float32{1, 2, 3, 4}},
		{Name: "v", Shape: []int{1}, Data: []float32{5}},
	}, map[string]string{"format": "pt"})
	f.Add(b.Bytes())
	f.Add(rawFile(f, `{"x":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}`, []byte{1, 2}))
	f.Add(rawFile(f, `{}`, nil))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := ParseSafetensors(data)
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v does not wrap ErrFormat", err)
			}
			return
		}
		for name, ti := range file.Tensors {
			n := int64(dtypeSize[ti.DType])
			for _, d := range ti.Shape {
				n *= d
			}
			if n != int64(len(ti.Data)) {
				t.Fatalf("tensor %q: %d bytes for shape %v %s", name, len(ti.Data), ti.Shape, ti.DType)
			}
			if ti.DType == "F32" {
				if _, _, err := file.Float32(name); err != nil {
					t.Fatal(err)
				}
			}
		}
	})
}
