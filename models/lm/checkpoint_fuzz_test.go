package lm

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func safetensorsBytes(header string, data []byte) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	return append(append(b, header...), data...)
}

// FuzzReadSafetensors: model folders come from users (and Hugging Face);
// a corrupt or hostile weights file must give an error, never a panic or
// a huge allocation.
func FuzzReadSafetensors(f *testing.F) {
	f.Add(safetensorsBytes(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, make([]byte, 8)))
	f.Add(safetensorsBytes(`{"a":{"dtype":"F32","shape":[-2,-1],"data_offsets":[0,8]}}`, make([]byte, 8)))
	f.Add(safetensorsBytes(`{"a":{"dtype":"I64","shape":[4611686018427387904,4],"data_offsets":[0,8]}}`, make([]byte, 8)))
	f.Add(safetensorsBytes(`{"__metadata__":{"format_version":"99"}}`, nil))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{3, 0})
	f.Fuzz(func(t *testing.T, raw []byte) {
		p := filepath.Join(t.TempDir(), "m.safetensors")
		if err := os.WriteFile(p, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		_, _ = readSafetensors(p)
	})
}

// A checkpoint cut short or corrupted (a crash mid-copy, a bad disk) fails
// to load with an error naming the file, and never loads as a model.
func TestCorruptCheckpointsFailClearly(t *testing.T) {
	m := newTiny(t, tinyConfig(), 1)
	good := t.TempDir()
	if err := m.Save(good); err != nil {
		t.Fatal(err)
	}
	weights, err := os.ReadFile(filepath.Join(good, WeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	config, err := os.ReadFile(filepath.Join(good, ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name            string
		weights, config []byte
		want            error
	}{
		{"weights cut in half", weights[:len(weights)/2], config, nil},
		{"weights header only", weights[:8], config, nil},
		{"weights empty", nil, config, nil},
		{"config cut", weights, config[:len(config)/2], nil},
		{"config missing format", weights, []byte(`{"vocab_size":64}`), nil},
		{"config from the future", weights, []byte(`{"format_version":99}`), ErrNewerFormat},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, WeightsFile), tt.weights, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, ConfigFile), tt.config, 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := Load(dir)
			if err == nil {
				t.Fatal("a corrupt checkpoint loaded")
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Errorf("err %v, want %v", err, tt.want)
			}
		})
	}
}
