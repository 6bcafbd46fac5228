//go:build linux

package safetensors

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

// mappingRSS returns the resident size in bytes of the mapping starting at
// the address of data[0], from /proc/self/smaps.
func mappingRSS(t *testing.T, data []byte) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skip("no /proc/self/smaps:", err)
	}
	defer f.Close()
	start := fmt.Sprintf("%x-", uintptr(unsafe.Pointer(&data[0])))
	sc := bufio.NewScanner(f)
	in := false
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, start) {
			in = true
			continue
		}
		if in && strings.HasPrefix(line, "Rss:") {
			kb, err := strconv.ParseInt(strings.Fields(line)[1], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatalf("mapping %s not found in smaps", start)
	return 0
}

func TestReleaseDropsMappedPages(t *testing.T) {
	if !useMmap {
		t.Skip("mmap disabled")
	}
	p := filepath.Join(t.TempDir(), "big.safetensors")
	const n = 1 << 21 // 4 MiB of BF16 per tensor
	var infos []TensorInfo
	for i := 0; i < 4; i++ {
		infos = append(infos, TensorInfo{Name: fmt.Sprintf("w%d", i), DType: BF16, Shape: []int{n}})
	}
	w, err := NewWriter(p, infos, nil)
	if err != nil {
		t.Fatal(err)
	}
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(i % 251)
	}
	for _, in := range infos {
		if err := w.WriteTensor(in.Name, v); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	const total = 4 * n * 2
	const small = 1 << 20 // allowance for fault-around and the header page

	a, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	data := a.files[0].data
	a.SetAutoRelease(false)
	for _, in := range infos {
		got, err := a.Float32(in.Name)
		if err != nil {
			t.Fatal(err)
		}
		if got[n-1] != float32((n-1)%251) {
			t.Fatalf("bad value %g", got[n-1])
		}
	}
	if rss := mappingRSS(t, data); rss < total*9/10 {
		t.Fatalf("without release the mapping should be resident: %d of %d bytes", rss, total)
	}
	for _, in := range infos {
		a.Release(in.Name)
	}
	if rss := mappingRSS(t, data); rss > small {
		t.Fatalf("after Release the mapping still has %d resident bytes", rss)
	}
	// Raw views stay valid after Release (pages fault back in).
	raw, _ := a.Raw("w3")
	if got := BF16ToFloat32(uint16(raw[2*(n-1)]) | uint16(raw[2*(n-1)+1])<<8); got != float32((n-1)%251) {
		t.Fatalf("Raw after Release reads %g", got)
	}

	a.SetAutoRelease(true)
	dst := make([]float32, n)
	for _, in := range infos {
		if err := a.ReadFloat32Into(in.Name, dst); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Float32(in.Name); err != nil {
			t.Fatal(err)
		}
	}
	if rss := mappingRSS(t, data); rss > small {
		t.Fatalf("auto release left %d resident bytes in the mapping", rss)
	}
}
