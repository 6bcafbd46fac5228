package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// expectAfter returns what reading back x written as dt must give, using the
// scalar conversions (themselves checked against independent references).
func expectAfter(dt DType, x float32) float32 {
	switch dt {
	case BF16:
		return BF16ToFloat32(Float32ToBF16(x))
	case F16:
		return F16ToFloat32(Float32ToF16(x))
	}
	return x // F32 and F64 hold every float32 exactly
}

func numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

func TestRoundTrip(t *testing.T) {
	shapes := [][]int{{}, {0}, {3, 0, 2}, {1}, {7}, {2, 3, 4}, {1, 1, 1, 5}}
	r := rand.New(rand.NewSource(3))
	forEachMode(t, func(t *testing.T) {
		for _, dt := range []DType{F32, F64, F16, BF16} {
			dir := t.TempDir()
			var ts []Tensor
			for i, sh := range shapes {
				v := make([]float32, numel(sh))
				for j := range v {
					v[j] = float32(r.NormFloat64() * math.Pow(10, float64(r.Intn(8)-4)))
				}
				if len(v) > 3 {
					v[0], v[1], v[2] = float32(math.Inf(-1)), float32(math.Copysign(0, -1)), 1e-7
				}
				ts = append(ts, Tensor{Name: "t" + string(rune('a'+i)), DType: dt, Shape: sh, F32: v})
			}
			ts = append(ts, Tensor{Name: "ints", DType: I32, Shape: []int{2}, Raw: []byte{1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}})
			md := map[string]string{"format": "pt", "note": "<&>\"quoted\" ünï"}
			p := filepath.Join(dir, "x.safetensors")
			if err := Write(p, ts, md); err != nil {
				t.Fatal(err)
			}
			a, err := Open(p)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(a.Metadata(), md) {
				t.Errorf("metadata %v, want %v", a.Metadata(), md)
			}
			if len(a.Names()) != len(ts) {
				t.Errorf("names %v", a.Names())
			}
			for _, tt := range ts {
				info, ok := a.Info(tt.Name)
				if !ok || info.DType != tt.DType || len(info.Shape) != len(tt.Shape) || numel(info.Shape) != numel(tt.Shape) {
					t.Fatalf("%s %s: info %+v", dt, tt.Name, info)
				}
				for k := range tt.Shape {
					if info.Shape[k] != tt.Shape[k] {
						t.Fatalf("%s %s: shape %v want %v", dt, tt.Name, info.Shape, tt.Shape)
					}
				}
				if tt.Raw != nil {
					raw, _ := a.Raw(tt.Name)
					if !bytes.Equal(raw, tt.Raw) {
						t.Errorf("raw %s = %v", tt.Name, raw)
					}
					continue
				}
				got, err := a.Float32(tt.Name)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != len(tt.F32) {
					t.Fatalf("%s %s: %d values, want %d", dt, tt.Name, len(got), len(tt.F32))
				}
				for j, x := range tt.F32 {
					if w := expectAfter(dt, x); math.Float32bits(got[j]) != math.Float32bits(w) {
						t.Errorf("%s %s[%d]: wrote %g, read %g, want %g", dt, tt.Name, j, x, got[j], w)
					}
				}
			}
			a.Close()
		}
	})
}

func TestWriteLayoutAndDeterminism(t *testing.T) {
	dir := t.TempDir()
	ts := []Tensor{
		{Name: "z8", DType: U8, Shape: []int{3}, Raw: []byte{1, 2, 3}},
		{Name: "b16", DType: BF16, Shape: []int{3}, F32: []float32{1, 2, 3}},
		{Name: "a16", DType: F16, Shape: []int{1}, F32: []float32{1}},
		{Name: "c64", DType: F64, Shape: []int{1}, F32: []float32{1}},
		{Name: "d32", DType: F32, Shape: []int{}, F32: []float32{1}},
	}
	p1, p2 := filepath.Join(dir, "1.safetensors"), filepath.Join(dir, "2.safetensors")
	if err := Write(p1, ts, map[string]string{"b": "2", "a": "1"}); err != nil {
		t.Fatal(err)
	}
	rev := append([]Tensor(nil), ts...)
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	if err := Write(p2, rev, map[string]string{"a": "1", "b": "2"}); err != nil {
		t.Fatal(err)
	}
	b1, _ := os.ReadFile(p1)
	b2, _ := os.ReadFile(p2)
	if !bytes.Equal(b1, b2) {
		t.Fatal("output depends on the input order")
	}
	n := binary.LittleEndian.Uint64(b1)
	if n%8 != 0 {
		t.Errorf("header length %d is not a multiple of 8", n)
	}
	hdr := string(b1[8 : 8+n])
	if tr := strings.TrimRight(hdr, " "); !strings.HasSuffix(tr, "}") || len(hdr)-len(tr) >= 8 {
		t.Errorf("header padding is not 0-7 spaces: %q", hdr)
	}
	// Independent parse of the header: data offsets in decreasing dtype
	// size, then name order, each tensor aligned to its element size.
	var h map[string]json.RawMessage
	if err := json.Unmarshal([]byte(hdr), &h); err != nil {
		t.Fatal(err)
	}
	wantOrder := []string{"c64", "d32", "a16", "b16", "z8"}
	prevEnd := uint64(0)
	for _, name := range wantOrder {
		var e struct {
			DType   string    `json:"dtype"`
			Offsets [2]uint64 `json:"data_offsets"`
		}
		json.Unmarshal(h[name], &e)
		if e.Offsets[0] != prevEnd {
			t.Errorf("%s starts at %d, want %d", name, e.Offsets[0], prevEnd)
		}
		if e.Offsets[0]%uint64(DType(e.DType).Size()) != 0 {
			t.Errorf("%s misaligned", name)
		}
		prevEnd = e.Offsets[1]
	}
	if uint64(len(b1))-8-n != prevEnd {
		t.Errorf("buffer %d bytes, tensors end at %d", uint64(len(b1))-8-n, prevEnd)
	}
	if !strings.HasPrefix(hdr, `{"__metadata__":{"a":"1","b":"2"},"c64":`) {
		t.Errorf("header = %s", hdr)
	}
}

func TestWriteEmptyArchive(t *testing.T) {
	p := filepath.Join(t.TempDir(), "e.safetensors")
	if err := Write(p, nil, nil); err != nil {
		t.Fatal(err)
	}
	a, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if len(a.Names()) != 0 || len(a.Metadata()) != 0 {
		t.Errorf("names %v metadata %v", a.Names(), a.Metadata())
	}
}

// dirEntries lists a directory (to detect leftover temporary files).
func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

func TestWriteInvalidLeavesNothing(t *testing.T) {
	good := Tensor{Name: "a", DType: F32, Shape: []int{2}, F32: []float32{1, 2}}
	cases := []struct {
		name string
		bad  Tensor
		msg  string
	}{
		{"short F32", Tensor{Name: "zz", DType: BF16, Shape: []int{3}, F32: []float32{1, 2}}, "2 float32 values"},
		{"short raw", Tensor{Name: "zz", DType: I64, Shape: []int{2}, Raw: make([]byte, 15)}, "15 raw bytes"},
		{"both", Tensor{Name: "zz", DType: F32, Shape: []int{1}, F32: []float32{1}, Raw: make([]byte, 4)}, "both F32 and Raw"},
		{"float data int dtype", Tensor{Name: "zz", DType: I32, Shape: []int{1}, F32: []float32{1}}, "cannot be written as dtype I32"},
		{"unknown dtype", Tensor{Name: "zz", DType: "F8", Shape: []int{1}, Raw: []byte{1}}, "unknown dtype"},
		{"negative dim", Tensor{Name: "zz", DType: U8, Shape: []int{-1}}, "negative dimension"},
		{"reserved name", Tensor{Name: "__metadata__", DType: U8, Shape: []int{0}}, "reserved"},
		{"duplicate", good, "duplicate tensor name"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "out.safetensors")
			old := []byte("previous content")
			writeBytes(t, p, old)
			err := Write(p, []Tensor{good, c.bad}, nil)
			if err == nil || !strings.Contains(err.Error(), c.msg) || !strings.Contains(err.Error(), p) {
				t.Fatalf("err = %v, want mention of %q and %s", err, c.msg, p)
			}
			if got, _ := os.ReadFile(p); !bytes.Equal(got, old) {
				t.Error("existing file was modified")
			}
			if es := dirEntries(t, dir); len(es) != 1 {
				t.Errorf("directory holds %v", es)
			}
		})
	}
}

// TestWriterFailsMidway streams some tensors, then fails: no output and no
// temporary file may remain, and the writer stays failed.
func TestWriterFailsMidway(t *testing.T) {
	infos := []TensorInfo{
		{Name: "a", DType: BF16, Shape: []int{1000}},
		{Name: "b", DType: F32, Shape: []int{10}},
		{Name: "c", DType: F16, Shape: []int{4}},
	}
	for _, tc := range []struct {
		name string
		bad  func(w *Writer) error
		msg  string
	}{
		{"wrong length last", func(w *Writer) error { return w.WriteTensor("c", make([]float32, 5)) }, "5 float32 values"},
		{"undeclared", func(w *Writer) error { return w.WriteTensor("d", nil) }, "not declared"},
		{"twice", func(w *Writer) error { return w.WriteTensor("a", make([]float32, 1000)) }, "written twice"},
		{"raw size", func(w *Writer) error { return w.WriteRaw("c", make([]byte, 7)) }, "7 raw bytes"},
		{"missing at close", func(w *Writer) error { return w.Close() }, "never written"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "m.safetensors")
			w, err := NewWriter(p, infos, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := w.WriteTensor("a", make([]float32, 1000)); err != nil {
				t.Fatal(err)
			}
			if err := w.WriteTensor("b", make([]float32, 10)); err != nil {
				t.Fatal(err)
			}
			if len(dirEntries(t, dir)) != 1 {
				t.Fatal("expected a temporary file while writing")
			}
			err = tc.bad(w)
			if err == nil || !strings.Contains(err.Error(), tc.msg) || !strings.Contains(err.Error(), p) {
				t.Fatalf("err = %v, want %q", err, tc.msg)
			}
			if err := w.WriteTensor("c", make([]float32, 4)); err == nil {
				t.Error("writer accepted data after failing")
			}
			if err := w.Close(); err == nil {
				t.Error("Close succeeded after a failure")
			}
			if es := dirEntries(t, dir); len(es) != 0 {
				t.Errorf("left behind %v", es)
			}
		})
	}
}

func TestWriterAnyOrder(t *testing.T) {
	p := filepath.Join(t.TempDir(), "w.safetensors")
	infos := []TensorInfo{{Name: "x", DType: F16, Shape: []int{2}}, {Name: "y", DType: F32, Shape: []int{3}}, {Name: "r", DType: U8, Shape: []int{2}}}
	w, err := NewWriter(p, infos, map[string]string{"k": "v"})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteTensor("y", []float32{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteRaw("r", []byte{9, 8}); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteTensor("x", []float32{0.5, -2}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	// Identical to the one-shot writer.
	p2 := filepath.Join(t.TempDir(), "w.safetensors")
	if err := Write(p2, []Tensor{{Name: "r", DType: U8, Shape: []int{2}, Raw: []byte{9, 8}}, {Name: "x", DType: F16, Shape: []int{2}, F32: []float32{0.5, -2}}, {Name: "y", DType: F32, Shape: []int{3}, F32: []float32{1, 2, 3}}}, map[string]string{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	b1, _ := os.ReadFile(p)
	b2, _ := os.ReadFile(p2)
	if !bytes.Equal(b1, b2) {
		t.Error("streamed and one-shot outputs differ")
	}
	a, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	x, _ := a.Float32("x")
	if !reflect.DeepEqual(x, []float32{0.5, -2}) {
		t.Errorf("x = %v", x)
	}
}

func TestWriteMissingDir(t *testing.T) {
	p := filepath.Join(t.TempDir(), "no", "such", "x.safetensors")
	if err := Write(p, nil, nil); err == nil || !strings.Contains(err.Error(), p) {
		t.Errorf("err = %v", err)
	}
}
