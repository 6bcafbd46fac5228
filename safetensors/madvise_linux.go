//go:build linux

package safetensors

import "syscall"

// releasePages drops the pages of data[off:end] from the process's resident
// set. The mapping is a read-only file mapping, so a later access simply
// faults the page back in from the page cache. With outward=true the range is
// widened to whole pages (it may drop pages shared with neighbouring data,
// which is harmless); otherwise it is narrowed to the pages fully inside.
func releasePages(data []byte, off, end int64, outward bool) {
	ps := int64(pageSize)
	var lo, hi int64
	if outward {
		lo, hi = off&^(ps-1), (end+ps-1)&^(ps-1)
	} else {
		lo, hi = (off+ps-1)&^(ps-1), end&^(ps-1)
	}
	if hi > int64(len(data)) {
		hi = int64(len(data))
	}
	if hi <= lo {
		return
	}
	_ = syscall.Madvise(data[lo:hi], syscall.MADV_DONTNEED)
}

// willNeed hints that data[off:end] is about to be read.
func willNeed(data []byte, off, end int64) {
	ps := int64(pageSize)
	lo, hi := off&^(ps-1), end
	if hi <= lo {
		return
	}
	_ = syscall.Madvise(data[lo:hi], syscall.MADV_WILLNEED)
}
