package safetensors

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
)

// procStatusKB reads a field (VmHWM, VmRSS) of /proc/self/status in KiB.
func procStatusKB(field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			v, _ := strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
			return v
		}
	}
	return -1
}

// resetHWM resets the peak RSS counter (Linux >= 4.0).
func resetHWM() { os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// makeBF16Model writes a ~200 MB BF16 checkpoint shaped like a Qwen2 block
// stack (896 x 4864 MLP matrices and 896 x 896 attention matrices), one
// tensor in memory at a time.
func makeBF16Model(b *testing.B, dir string) string {
	p := filepath.Join(dir, "model.safetensors")
	var infos []TensorInfo
	for l := 0; l < 7; l++ {
		for _, m := range []string{"gate_proj", "up_proj", "down_proj"} {
			infos = append(infos, TensorInfo{Name: fmt.Sprintf("layers.%d.mlp.%s.weight", l, m), DType: BF16, Shape: []int{4864, 896}})
		}
		for _, m := range []string{"q_proj", "o_proj"} {
			infos = append(infos, TensorInfo{Name: fmt.Sprintf("layers.%d.self_attn.%s.weight", l, m), DType: BF16, Shape: []int{896, 896}})
		}
		infos = append(infos, TensorInfo{Name: fmt.Sprintf("layers.%d.input_layernorm.weight", l), DType: BF16, Shape: []int{896}})
	}
	w, err := NewWriter(p, infos, map[string]string{"format": "pt"})
	if err != nil {
		b.Fatal(err)
	}
	for _, in := range infos {
		v := make([]float32, in.NumElements())
		for i := range v {
			v[i] = float32(i%1000-500) * 1e-3
		}
		if err := w.WriteTensor(in.Name, v); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	return p
}

// BenchmarkLoadBF16 opens a ~200 MB BF16 file and converts every tensor to
// float32, keeping all results (as a model load does). It reports the source
// throughput (MB/s, page cache warm), the peak RSS growth during the load
// and that growth relative to the float32 copy (1.0 = no overhead; without
// page release it would approach 1.5).
func BenchmarkLoadBF16(b *testing.B) {
	p := makeBF16Model(b, b.TempDir())
	st, _ := os.Stat(p)
	for _, release := range []bool{true, false} {
		b.Run(fmt.Sprintf("release=%v", release), func(b *testing.B) {
			b.SetBytes(st.Size())
			var peakDelta int64
			for b.Loop() {
				b.StopTimer()
				runtime.GC()
				debug.FreeOSMemory()
				base := procStatusKB("VmRSS")
				resetHWM()
				b.StartTimer()
				a, err := Open(p)
				if err != nil {
					b.Fatal(err)
				}
				a.SetAutoRelease(release)
				out := make([][]float32, 0, len(a.Names()))
				for _, n := range a.Names() {
					v, err := a.Float32(n)
					if err != nil {
						b.Fatal(err)
					}
					out = append(out, v)
				}
				b.StopTimer()
				if d := procStatusKB("VmHWM") - base; d > peakDelta {
					peakDelta = d
				}
				runtime.KeepAlive(out)
				a.Close()
				out = nil
				b.StartTimer()
			}
			f32MB := float64(st.Size()) * 2 / 1e6
			b.ReportMetric(float64(peakDelta)*1024/1e6, "peakRSS+MB")
			b.ReportMetric(float64(peakDelta)*1024/1e6/f32MB, "peak/f32copy")
		})
	}
}
