//go:build !linux

package safetensors

// Without madvise (MADV_DONTNEED) the kernel reclaims clean file pages on
// its own under memory pressure; releasing is a no-op.

func releasePages(data []byte, off, end int64, outward bool) {}

func willNeed(data []byte, off, end int64) {}
