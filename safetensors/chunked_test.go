package safetensors

import (
	"encoding/binary"
	"fmt"
	"math"
	"path/filepath"
	"sync"
	"testing"
)

// TestChunkedConversion exercises the chunked, multi-worker conversion with
// tiny chunks, unaligned tensor data (a 1-byte tensor first) and concurrent
// callers, in both the mmap and read modes.
func TestChunkedConversion(t *testing.T) {
	old := chunkBytes
	chunkBytes = 4096
	defer func() { chunkBytes = old }()

	const n = 10007
	want := make([]float32, n)
	for i := range want {
		want[i] = float32(math.Sin(float64(i))) * 100
	}
	// Build the file by hand: "a" U8 [1] at offset 0 makes every following
	// tensor start at an odd offset.
	hdr := `{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}`
	buf := []byte{42}
	dts := []DType{BF16, F16, F32, F64}
	for _, dt := range dts {
		b := make([]byte, n*dt.Size())
		for i, v := range want {
			switch dt {
			case BF16:
				binary.LittleEndian.PutUint16(b[2*i:], Float32ToBF16(v))
			case F16:
				binary.LittleEndian.PutUint16(b[2*i:], Float32ToF16(v))
			case F32:
				binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
			case F64:
				binary.LittleEndian.PutUint64(b[8*i:], math.Float64bits(float64(v)))
			}
		}
		hdr += fmt.Sprintf(`,"%s":{"dtype":"%s","shape":[%d],"data_offsets":[%d,%d]}`, dt, dt, n, len(buf), len(buf)+len(b))
		buf = append(buf, b...)
	}
	p := writeBytes(t, filepath.Join(t.TempDir(), "odd.safetensors"), stFile(hdr+"}", buf))
	forEachMode(t, func(t *testing.T) {
		a, err := Open(p)
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for g := 0; g < 4; g++ {
			for _, dt := range dts {
				wg.Go(func() {
					got, err := a.Float32(string(dt))
					if err != nil {
						errs <- err
						return
					}
					for i, v := range want {
						if w := expectAfter(dt, v); got[i] != w {
							errs <- fmt.Errorf("%s[%d] = %g, want %g", dt, i, got[i], w)
							return
						}
					}
				})
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
}
