package safetensors

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCorruptFiles(t *testing.T) {
	buf8 := make([]byte, 8)
	hdrLen := func(n uint64, rest string) []byte {
		b := binary.LittleEndian.AppendUint64(nil, n)
		return append(b, rest...)
	}
	cases := []struct {
		name   string
		data   []byte
		tensor string // "" when the error is not about one tensor
		msg    string
	}{
		{"empty file", nil, "", "shorter than the 8-byte"},
		{"7 bytes", []byte{1, 2, 3, 4, 5, 6, 7}, "", "shorter than the 8-byte"},
		{"header length 0", hdrLen(0, "{}"), "", "header length is 0"},
		{"header longer than file", hdrLen(100, "{}"), "", "exceeds the file size"},
		{"header absurdly large", hdrLen(200_000_000, "{}"), "", "absurdly large"},
		{"header length near 2^64", hdrLen(1<<63+5, "{}"), "", "absurdly large"},
		{"not JSON", stFile(`{"a":`, nil), "", "not a valid JSON object"},
		{"JSON array", stFile(`[1,2,3]`, nil), "", "not a JSON object"},
		{"JSON string", stFile(`"abc"`, nil), "", "not a JSON object"},
		{"invalid UTF-8", stFile("{\"a\xff\":1}", nil), "", "not valid UTF-8"},
		{"trailing garbage", stFile(`{}  x`, nil), "", "trailing data"},
		{"two objects", stFile(`{}{}`, nil), "", "trailing data"},
		{"duplicate name", stFile(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}`, []byte{1, 2}), "", `duplicate key "a"`},
		{"entry not object", stFile(`{"a":[1]}`, nil), "a", "not a JSON object"},
		{"missing dtype", stFile(`{"a":{"shape":[2],"data_offsets":[0,8]}}`, buf8), "a", `missing "dtype"`},
		{"missing shape", stFile(`{"a":{"dtype":"F32","data_offsets":[0,8]}}`, buf8), "a", `missing "shape"`},
		{"missing offsets", stFile(`{"a":{"dtype":"F32","shape":[2]}}`, buf8), "a", `missing "data_offsets"`},
		{"dtype not string", stFile(`{"a":{"dtype":4,"shape":[2],"data_offsets":[0,8]}}`, buf8), "a", "malformed header entry"},
		{"unknown dtype", stFile(`{"a":{"dtype":"F128","shape":[2],"data_offsets":[0,8]}}`, buf8), "a", `unknown dtype "F128"`},
		{"negative dim", stFile(`{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}`, buf8), "a", "is negative"},
		{"fractional dim", stFile(`{"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,8]}}`, buf8), "a", "not a non-negative integer"},
		{"huge dim", stFile(`{"a":{"dtype":"F32","shape":[99999999999999999999],"data_offsets":[0,8]}}`, buf8), "a", "too large"},
		{"numel overflow", stFile(`{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}`, buf8), "a", "number of elements overflows"},
		{"bytes overflow", stFile(`{"a":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,8]}}`, buf8), "a", "byte size (numel*4) overflows"},
		{"negative offset", stFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}}`, buf8), "a", "begin (-8) is negative"},
		{"one offset", stFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[8]}}`, buf8), "a", "must have 2 elements"},
		{"end before begin", stFile(`{"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}`, buf8), "a", "end 0 < begin 8"},
		{"out of buffer", stFile(`{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}`, buf8), "a", "out of the data buffer (8 bytes)"},
		{"size mismatch", stFile(`{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, buf8), "a", "data size 8 bytes != 3 elements * 4 bytes"},
		{"overlap", stFile(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, buf8), "b", `overlaps tensor "a"`},
		{"hole in middle", stFile(`{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[2],"data_offsets":[6,8]}}`, buf8), "b", "hole in the data buffer: bytes [2,6)"},
		{"hole at start", stFile(`{"a":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}}`, buf8), "a", "hole in the data buffer: bytes [0,4)"},
		{"trailing bytes", stFile(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, buf8), "", "bytes [4,8) at the end are not covered"},
		{"bytes but no tensors", stFile(`{}`, buf8), "", "at the end are not covered"},
		{"metadata not strings", stFile(`{"__metadata__":{"n":1}}`, nil), "", "__metadata__ must be an object of string values"},
		{"metadata not object", stFile(`{"__metadata__":[1]}`, nil), "", "__metadata__"},
	}
	forEachMode(t, func(t *testing.T) {
		dir := t.TempDir()
		for i, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				p := writeBytes(t, filepath.Join(dir, string(rune('a'+i))+".safetensors"), c.data)
				a, err := Open(p)
				if err == nil {
					a.Close()
					t.Fatalf("Open succeeded")
				}
				msg := err.Error()
				if !strings.Contains(msg, p) || !strings.Contains(msg, c.msg) {
					t.Fatalf("error %q should name %s and say %q", msg, p, c.msg)
				}
				var se *Error
				if !errors.As(err, &se) || se.File != p || se.Tensor != c.tensor {
					t.Fatalf("error %#v: want File %s Tensor %q", err, p, c.tensor)
				}
			})
		}
	})
}

// Zero-size tensors may sit anywhere on a boundary, including with begin
// equal to another tensor's begin, and a file may hold no data at all.
func TestValidEdgeCases(t *testing.T) {
	dir := t.TempDir()
	ok := map[string][]byte{
		"zero-size at start":  stFile(`{"z":{"dtype":"F32","shape":[0,3],"data_offsets":[0,0]},"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]}}`, make([]byte, 8)),
		"zero-size at end":    stFile(`{"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]},"z":{"dtype":"BF16","shape":[0],"data_offsets":[8,8]}}`, make([]byte, 8)),
		"only metadata":       stFile(`{"__metadata__":{"k":"v"}}`, nil),
		"unknown field":       stFile(`{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"extra":true}}`, []byte{7}),
		"leading whitespace":  stFile("{ \n\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}\t\n  ", []byte{7}),
		"metadata null":       stFile(`{"__metadata__":null}`, nil),
		"scalar":              stFile(`{"s":{"dtype":"F64","shape":[],"data_offsets":[0,8]}}`, make([]byte, 8)),
		"header exactly file": stFile(`{}`, nil),
	}
	for name, data := range ok {
		p := writeBytes(t, filepath.Join(dir, strings.ReplaceAll(name, " ", "_")), data)
		a, err := Open(p)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		a.Close()
	}
}

// TestTruncated cuts valid files at every length: Open must fail cleanly.
func TestTruncated(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"f32.safetensors", "bf16.safetensors", "sharded/model-00001-of-00002.safetensors"} {
		full, err := os.ReadFile(filepath.Join("testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		// Every cut in the prefix and around the header end, the last bytes,
		// and a sample elsewhere (writing files is slow on some file systems).
		hl := int(binary.LittleEndian.Uint64(full)) + 8
		var cuts []int
		for n := 0; n < len(full); n++ {
			if n < 16 || (n >= hl-2 && n <= hl+8) || n >= len(full)-8 || n%11 == 0 {
				cuts = append(cuts, n)
			}
		}
		forEachMode(t, func(t *testing.T) {
			for _, n := range cuts {
				p := writeBytes(t, filepath.Join(dir, "trunc.safetensors"), full[:n])
				a, err := Open(p)
				if err == nil {
					a.Close()
					t.Fatalf("%s cut to %d bytes opened without error", f, n)
				}
				if !strings.Contains(err.Error(), p) {
					t.Fatalf("error %q does not name the file", err)
				}
			}
		})
	}
}

// copyShards copies the sharded fixture into a temporary directory.
func copyShards(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join("testdata", "sharded")
	es, _ := os.ReadDir(src)
	for _, e := range es {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		writeBytes(t, filepath.Join(dir, e.Name()), b)
	}
	return dir
}

func TestCorruptSharded(t *testing.T) {
	s1, s2 := "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"
	wm := `"layer.0.weight":"` + s1 + `","layer.0.bias":"` + s1 + `","layer.1.weight":"` + s2 + `","scalar":"` + s2 + `"`
	cases := []struct {
		name  string
		index string
		setup func(t *testing.T, dir string)
		file  string // which file the error must name ("" = the index)
		msg   string
	}{
		{name: "index not JSON", index: `{"weight_map":`, msg: "index is not a valid JSON object"},
		{name: "index array", index: `[]`, msg: "index is not a valid JSON object"},
		{name: "no weight_map", index: `{"metadata":{}}`, msg: `no "weight_map"`},
		{name: "empty weight_map", index: `{"weight_map":{}}`, msg: "weight_map is empty"},
		{name: "weight_map value not string", index: `{"weight_map":{"scalar":3}}`, msg: "not a string"},
		{name: "duplicate in weight_map", index: `{"weight_map":{"scalar":"` + s2 + `","scalar":"` + s2 + `"}}`, msg: "duplicate key"},
		{name: "escaping shard path", index: `{"weight_map":{"scalar":"../` + s2 + `"}}`, msg: "not a file name inside"},
		{name: "absolute shard path", index: `{"weight_map":{"scalar":"/etc/passwd"}}`, msg: "not a file name inside"},
		{name: "missing shard file", index: `{"weight_map":{` + wm + `,"extra":"model-00003-of-00003.safetensors"}}`, msg: "model-00003-of-00003.safetensors, which does not exist"},
		{name: "tensor absent from its shard", index: `{"weight_map":{` + wm + `,"ghost":"` + s1 + `"}}`, msg: `"ghost": tensor listed in weight_map is absent from shard`},
		{name: "tensor in the wrong shard", index: `{"weight_map":{"layer.0.weight":"` + s2 + `","layer.0.bias":"` + s1 + `","layer.1.weight":"` + s2 + `","scalar":"` + s2 + `"}}`, msg: "places the tensor in"},
		{
			name:  "duplicate across shards",
			index: `{"weight_map":{` + wm + `,"x":"model-00003.safetensors"}}`,
			setup: func(t *testing.T, dir string) {
				writeBytes(t, filepath.Join(dir, "model-00003.safetensors"), stFile(`{"x":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"scalar":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}`, []byte{1, 2}))
			},
			file: "model-00003.safetensors", msg: `"scalar": duplicate tensor: also present in shard`,
		},
		{
			name:  "corrupt shard",
			index: `{"weight_map":{` + wm + `}}`,
			setup: func(t *testing.T, dir string) {
				writeBytes(t, filepath.Join(dir, s2), stFile(`{"scalar":{"dtype":"F32","shape":[],"data_offsets":[0,8]}}`, make([]byte, 8)))
			},
			file: s2, msg: `"scalar": data size 8 bytes != 1 elements * 4 bytes`,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := copyShards(t)
			idx := writeBytes(t, filepath.Join(dir, IndexFileName), []byte(c.index))
			if c.setup != nil {
				c.setup(t, dir)
			}
			a, err := Open(dir)
			if err == nil {
				a.Close()
				t.Fatal("Open succeeded")
			}
			want := idx
			if c.file != "" {
				want = filepath.Join(dir, c.file)
			}
			if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("error %q should name %s and say %q", err, want, c.msg)
			}
		})
	}
}

func TestOpenDirectory(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "neither") || !strings.Contains(err.Error(), dir) {
		t.Errorf("empty dir: %v", err)
	}
	if _, err := Open(filepath.Join(dir, "missing.safetensors")); err == nil || !strings.Contains(err.Error(), "missing.safetensors") {
		t.Errorf("missing file: %v", err)
	}
	// Both present: the index wins.
	sh := copyShards(t)
	if err := Write(filepath.Join(sh, SingleFileName), []Tensor{{Name: "only", DType: U8, Shape: []int{1}, Raw: []byte{1}}}, nil); err != nil {
		t.Fatal(err)
	}
	a, err := Open(sh)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, ok := a.Info("scalar"); !ok {
		t.Errorf("directory with both: got %v, want the index's tensors", a.Names())
	}
}
