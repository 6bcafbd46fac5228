//go:build !linux && !darwin

package safetensors

import (
	"errors"
	"os"
)

const mmapSupported = false

func mmapFile(f *os.File, size int64) ([]byte, error) {
	return nil, errors.New("mmap not supported on this system")
}

func munmap(b []byte) error { return nil }
