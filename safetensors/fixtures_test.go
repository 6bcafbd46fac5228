package safetensors

import (
	"bytes"
	"encoding/binary"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// checkArchive compares every tensor of a against the torch-made expectations.
func checkArchive(t *testing.T, a *Archive, ef expFile, fileFor func(name string) string) {
	t.Helper()
	var names []string
	for n := range ef.Tensors {
		names = append(names, n)
	}
	sort.Strings(names)
	if got := a.Names(); !reflect.DeepEqual(got, names) {
		t.Fatalf("Names() = %v, want %v", got, names)
	}
	if got := a.Metadata(); !reflect.DeepEqual(got, ef.Metadata) && !(len(got) == 0 && len(ef.Metadata) == 0) {
		t.Errorf("Metadata() = %v, want %v", got, ef.Metadata)
	}
	for _, n := range names {
		e := ef.Tensors[n]
		info, ok := a.Info(n)
		if !ok {
			t.Fatalf("Info(%q) missing", n)
		}
		if string(info.DType) != e.DType || !reflect.DeepEqual(info.Shape, e.Shape) && !(len(info.Shape) == 0 && len(e.Shape) == 0) {
			t.Errorf("%s: info %s %v, want %s %v", n, info.DType, info.Shape, e.DType, e.Shape)
		}
		if want := fileFor(n); info.File != want {
			t.Errorf("%s: File = %q, want %q", n, info.File, want)
		}
		raw, err := a.Raw(n)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(raw, e.raw(t)) {
			t.Errorf("%s: Raw differs from the bytes torch wrote", n)
		}
		if info.ByteSize() != int64(len(raw)) {
			t.Errorf("%s: ByteSize %d, raw %d", n, info.ByteSize(), len(raw))
		}
		if e.F32Bits == nil {
			if _, err := a.Float32(n); err == nil || !strings.Contains(err.Error(), "not a float type") {
				t.Errorf("%s: Float32 on %s: err = %v", n, e.DType, err)
			}
			checkInts(t, n, info.DType, raw, e.Ints)
			continue
		}
		want := e.bits(t)
		got, err := a.Float32(n)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d values, want %d", n, len(got), len(want))
		}
		gb := f32sBits(got)
		for i := range want {
			if gb[i] != want[i] { // exact, NaN payloads included
				t.Errorf("%s[%d]: got %08x, torch gives %08x", n, i, gb[i], want[i])
			}
		}
		dst := make([]float32, len(want))
		if err := a.ReadFloat32Into(n, dst); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(f32sBits(dst), gb) {
			t.Errorf("%s: ReadFloat32Into differs from Float32", n)
		}
		if err := a.ReadFloat32Into(n, make([]float32, len(want)+1)); err == nil || !strings.Contains(err.Error(), "destination has") {
			t.Errorf("%s: ReadFloat32Into with wrong length: err = %v", n, err)
		}
	}
}

func checkInts(t *testing.T, name string, dt DType, raw []byte, want []int64) {
	t.Helper()
	n := len(raw) / dt.Size()
	if n != len(want) {
		t.Fatalf("%s: %d elements, want %d", name, n, len(want))
	}
	for i := 0; i < n; i++ {
		var v int64
		switch dt {
		case I64:
			v = int64(binary.LittleEndian.Uint64(raw[8*i:]))
		case I32:
			v = int64(int32(binary.LittleEndian.Uint32(raw[4*i:])))
		case I16:
			v = int64(int16(binary.LittleEndian.Uint16(raw[2*i:])))
		case I8:
			v = int64(int8(raw[i]))
		case U8, BOOL:
			v = int64(raw[i])
		default:
			t.Fatalf("unexpected dtype %s", dt)
		}
		if v != want[i] {
			t.Errorf("%s[%d] = %d, want %d", name, i, v, want[i])
		}
	}
}

func TestFixtures(t *testing.T) {
	exp := loadExpected(t)
	forEachMode(t, func(t *testing.T) {
		for _, f := range []string{"f32.safetensors", "bf16.safetensors", "f16.safetensors", "misc.safetensors"} {
			t.Run(f, func(t *testing.T) {
				p := filepath.Join("testdata", f)
				a, err := Open(p)
				if err != nil {
					t.Fatal(err)
				}
				defer a.Close()
				checkArchive(t, a, exp[f], func(string) string { return p })
			})
		}
	})
}

func TestFixtureSharded(t *testing.T) {
	exp := loadExpected(t)["sharded"]
	dir := filepath.Join("testdata", "sharded")
	forEachMode(t, func(t *testing.T) {
		for _, p := range []string{dir, filepath.Join(dir, IndexFileName)} {
			a, err := Open(p)
			if err != nil {
				t.Fatal(err)
			}
			checkArchive(t, a, exp, func(n string) string { return filepath.Join(dir, exp.Tensors[n].File) })
			if err := a.Close(); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func TestClosedArchive(t *testing.T) {
	a, err := Open("testdata/f32.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := a.Float32("a"); err != ErrClosed {
		t.Errorf("Float32 after Close: %v", err)
	}
	if _, err := a.Raw("a"); err != ErrClosed {
		t.Errorf("Raw after Close: %v", err)
	}
	a.Release("a") // must not crash
}

func TestMissingTensor(t *testing.T) {
	a, err := Open("testdata/f32.safetensors")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	_, err = a.Float32("nope")
	if err == nil || !strings.Contains(err.Error(), `"nope"`) || !strings.Contains(err.Error(), "f32.safetensors") {
		t.Errorf("err = %v", err)
	}
	if _, ok := a.Info("nope"); ok {
		t.Error("Info of a missing tensor reports ok")
	}
}
