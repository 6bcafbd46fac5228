package safetensors

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func shardTensors() []Tensor {
	var ts []Tensor
	for i, dt := range []DType{F32, BF16, F16, F32, F64, BF16} {
		v := make([]float32, 100+i)
		for j := range v {
			v[j] = float32(math.Sin(float64(i*1000 + j)))
		}
		ts = append(ts, Tensor{Name: "layer." + string(rune('a'+i)), DType: dt, Shape: []int{len(v)}, F32: v})
	}
	ts = append(ts, Tensor{Name: "zz.mask", DType: BOOL, Shape: []int{2, 2}, Raw: []byte{1, 0, 0, 1}})
	return ts
}

func TestWriteSharded(t *testing.T) {
	ts := shardTensors()
	var total int64
	for _, tt := range ts {
		total += int64(numel(tt.Shape) * tt.DType.Size())
	}
	dir := filepath.Join(t.TempDir(), "ckpt")
	paths, err := WriteSharded(dir, ts, map[string]string{"format": "pt"}, 500)
	if err != nil {
		t.Fatal(err)
	}
	// Greedy packing in name order: a(400) | b(202)+c(204) | d(412) | e(832) | f(210)+mask(4).
	want := []string{}
	for i := 1; i <= 5; i++ {
		want = append(want, filepath.Join(dir, ShardFileName(i, 5)))
	}
	want = append(want, filepath.Join(dir, IndexFileName))
	if !reflect.DeepEqual(paths, want) {
		t.Fatalf("paths = %v, want %v", paths, want)
	}
	b, err := os.ReadFile(filepath.Join(dir, IndexFileName))
	if err != nil {
		t.Fatal(err)
	}
	var idx struct {
		Metadata  map[string]any    `json:"metadata"`
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(b, &idx); err != nil {
		t.Fatal(err)
	}
	if idx.Metadata["total_size"] != float64(total) {
		t.Errorf("total_size = %v, want %d", idx.Metadata["total_size"], total)
	}
	if idx.WeightMap["layer.c"] != ShardFileName(2, 5) || idx.WeightMap["zz.mask"] != ShardFileName(5, 5) || len(idx.WeightMap) != len(ts) {
		t.Errorf("weight_map = %v", idx.WeightMap)
	}
	forEachMode(t, func(t *testing.T) {
		a, err := Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		if md := a.Metadata(); md["format"] != "pt" || md["total_size"] != itoa(total) {
			t.Errorf("metadata %v", md)
		}
		for _, tt := range ts {
			info, _ := a.Info(tt.Name)
			if info.File != filepath.Join(dir, idx.WeightMap[tt.Name]) {
				t.Errorf("%s in %s", tt.Name, info.File)
			}
			if tt.Raw != nil {
				raw, _ := a.Raw(tt.Name)
				if !reflect.DeepEqual(raw, tt.Raw) {
					t.Errorf("%s raw %v", tt.Name, raw)
				}
				continue
			}
			got, err := a.Float32(tt.Name)
			if err != nil {
				t.Fatal(err)
			}
			for j, x := range tt.F32 {
				if got[j] != expectAfter(tt.DType, x) {
					t.Fatalf("%s[%d] = %g, want %g", tt.Name, j, got[j], expectAfter(tt.DType, x))
				}
			}
		}
	})

	// Rewriting the same directory as a single file removes the stale index
	// (which Open would otherwise prefer).
	paths, err = WriteSharded(dir, ts[:2], nil, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != 1 || paths[0] != filepath.Join(dir, SingleFileName) {
		t.Fatalf("paths = %v", paths)
	}
	if _, err := os.Stat(filepath.Join(dir, IndexFileName)); !os.IsNotExist(err) {
		t.Error("stale index left behind")
	}
	a, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if !reflect.DeepEqual(a.Names(), []string{"layer.a", "layer.b"}) {
		t.Errorf("names %v", a.Names())
	}
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

func TestWriteShardedErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := WriteSharded(dir, shardTensors(), nil, 0); err == nil || !strings.Contains(err.Error(), "maxShardBytes") {
		t.Errorf("err = %v", err)
	}
	ts := append(shardTensors(), Tensor{Name: "layer.a", DType: U8, Shape: []int{1}, Raw: []byte{1}})
	if _, err := WriteSharded(dir, ts, nil, 500); err == nil || !strings.Contains(err.Error(), "duplicate") {
		t.Errorf("err = %v", err)
	}
	ts = append(shardTensors(), Tensor{Name: "zzz", DType: F32, Shape: []int{3}, F32: []float32{1}})
	if _, err := WriteSharded(dir, ts, nil, 500); err == nil || !strings.Contains(err.Error(), `"zzz"`) {
		t.Errorf("err = %v", err)
	}
	if es := dirEntries(t, dir); len(es) != 0 {
		t.Errorf("left behind %v", es)
	}
}
