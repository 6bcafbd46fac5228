package safetensors

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzOpen feeds arbitrary bytes to Open: it must return an error or a
// usable archive, never panic. Run with
//
//	GOEXPERIMENT=simd go test ./safetensors/ -run '^$' -fuzz FuzzOpen -fuzztime 20s
func FuzzOpen(f *testing.F) {
	for _, name := range []string{"f32.safetensors", "bf16.safetensors", "f16.safetensors", "misc.safetensors", "sharded/model-00001-of-00002.safetensors"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add(stFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, make([]byte, 8)))
	f.Add(stFile(`{"a":{"dtype":"F16","shape":[4294967296,4294967296],"data_offsets":[0,8]}}`, make([]byte, 8)))
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, '{'})
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		tmp, err := os.CreateTemp(dir, "fuzz-*.safetensors")
		if err != nil {
			t.Fatal(err)
		}
		defer os.Remove(tmp.Name())
		tmp.Write(data)
		tmp.Close()
		a, err := Open(tmp.Name())
		if err != nil {
			return
		}
		defer a.Close()
		for _, n := range a.Names() {
			info, ok := a.Info(n)
			if !ok {
				t.Fatalf("Info(%q) missing", n)
			}
			raw, err := a.Raw(n)
			if err != nil || int64(len(raw)) != info.ByteSize() {
				t.Fatalf("Raw(%q): %d bytes, err %v, want %d", n, len(raw), err, info.ByteSize())
			}
			if info.DType.IsFloat() {
				v, err := a.Float32(n)
				if err != nil || len(v) != info.NumElements() {
					t.Fatalf("Float32(%q): %d values, err %v", n, len(v), err)
				}
			}
		}
		a.Metadata()
	})
}

// FuzzParseHeader drives the header validation in memory (much faster than
// FuzzOpen): whatever it accepts must tile the buffer exactly.
func FuzzParseHeader(f *testing.F) {
	for _, name := range []string{"f32.safetensors", "bf16.safetensors", "misc.safetensors"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var prefix [8]byte
		copy(prefix[:], data)
		n, err := readHeaderLen("fuzz", prefix[:], int64(len(data)))
		if err != nil {
			return
		}
		ph, err := parseHeader("fuzz", data[8:8+n], int64(len(data)))
		if err != nil {
			return
		}
		var sum int64
		for _, ti := range ph.tensors {
			if ti.begin < 8+n || ti.end > int64(len(data)) || ti.end-ti.begin != ti.ByteSize() {
				t.Fatalf("accepted bad tensor %+v", ti)
			}
			sum += ti.end - ti.begin
		}
		if sum != int64(len(data))-8-n {
			t.Fatalf("accepted tensors cover %d of %d bytes", sum, int64(len(data))-8-n)
		}
	})
}
