package safetensors

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// forEachMode runs f with memory mapping and with the positioned-read
// fallback used on systems without mmap.
func forEachMode(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	modes := []bool{false}
	if mmapSupported {
		modes = []bool{true, false}
	}
	for _, m := range modes {
		name := "read"
		if m {
			name = "mmap"
		}
		t.Run(name, func(t *testing.T) {
			old := useMmap
			useMmap = m
			defer func() { useMmap = old }()
			f(t)
		})
	}
}

// stFile assembles a safetensors file from a header string and a buffer.
func stFile(header string, buf []byte) []byte {
	b := make([]byte, 8, 8+len(header)+len(buf))
	binary.LittleEndian.PutUint64(b, uint64(len(header)))
	b = append(b, header...)
	return append(b, buf...)
}

func writeBytes(t *testing.T, path string, b []byte) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// expected.json as written by testdata/gen_fixtures.py.
type expTensor struct {
	DType   string   `json:"dtype"`
	Shape   []int    `json:"shape"`
	RawHex  string   `json:"raw_hex"`
	F32Bits []string `json:"f32_bits"`
	Ints    []int64  `json:"ints"`
	File    string   `json:"file"`
}

type expFile struct {
	Metadata map[string]string    `json:"metadata"`
	Tensors  map[string]expTensor `json:"tensors"`
}

func loadExpected(t testing.TB) map[string]expFile {
	t.Helper()
	b, err := os.ReadFile("testdata/expected.json")
	if err != nil {
		t.Fatal(err)
	}
	var e struct {
		Files map[string]expFile `json:"files"`
	}
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatal(err)
	}
	return e.Files
}

func (e expTensor) raw(t testing.TB) []byte {
	b, err := hex.DecodeString(e.RawHex)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (e expTensor) bits(t testing.TB) []uint32 {
	out := make([]uint32, len(e.F32Bits))
	for i, s := range e.F32Bits {
		b, err := hex.DecodeString(s)
		if err != nil || len(b) != 4 {
			t.Fatalf("bad hex %q", s)
		}
		out[i] = binary.BigEndian.Uint32(b)
	}
	return out
}

func isNaN32(u uint32) bool { return u&0x7fffffff > 0x7f800000 }

// sameF32 compares bit patterns exactly, except that any NaN matches any NaN
// of the same sign (NaN payloads differ between conversion code paths, even
// inside PyTorch).
func sameF32(want, got uint32) bool {
	if isNaN32(want) || isNaN32(got) {
		return isNaN32(want) && isNaN32(got) && want>>31 == got>>31
	}
	return want == got
}

func f32sBits(v []float32) []uint32 {
	out := make([]uint32, len(v))
	for i, x := range v {
		out[i] = math.Float32bits(x)
	}
	return out
}

func u16s(b []byte) []uint16 {
	out := make([]uint16, len(b)/2)
	for i := range out {
		out[i] = binary.LittleEndian.Uint16(b[2*i:])
	}
	return out
}
