package safetensors

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// File names used for Hugging Face checkpoints.
const (
	SingleFileName = "model.safetensors"
	IndexFileName  = "model.safetensors.index.json"
)

var pageSize = os.Getpagesize()

// useMmap selects memory mapping; tests turn it off to exercise the
// positioned-read fallback used on systems without mmap.
var useMmap = mmapSupported

// mappedFile is one open safetensors file.
type mappedFile struct {
	path string
	size int64
	data []byte   // the whole file, memory-mapped; nil in read mode
	f    *os.File // open file in read mode; nil when mapped
}

func (m *mappedFile) close() error {
	var err error
	if m.data != nil {
		err = munmap(m.data)
		m.data = nil
	}
	if m.f != nil {
		if e := m.f.Close(); err == nil {
			err = e
		}
		m.f = nil
	}
	return err
}

// Archive is an open safetensors checkpoint: one file or a set of shards.
// Its methods may be called concurrently, except Close.
type Archive struct {
	path     string
	files    []*mappedFile
	tensors  map[string]*TensorInfo
	names    []string
	metadata map[string]string

	noAutoRelease atomic.Bool
	closed        atomic.Bool
}

// Open opens a checkpoint. path is a .safetensors file, an index file
// (model.safetensors.index.json or any *.json with a weight_map), or a
// directory holding model.safetensors.index.json or model.safetensors (the
// index is preferred when both exist). Every file is validated completely.
func Open(path string) (*Archive, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, wrapErr(path, "", "cannot open", err)
	}
	if st.IsDir() {
		idx := filepath.Join(path, IndexFileName)
		if fileExists(idx) {
			return openIndex(idx)
		}
		single := filepath.Join(path, SingleFileName)
		if fileExists(single) {
			return openSingle(single)
		}
		return nil, fileErr(path, "directory has neither %s nor %s", IndexFileName, SingleFileName)
	}
	if strings.HasSuffix(path, ".json") {
		return openIndex(path)
	}
	return openSingle(path)
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

func openSingle(path string) (*Archive, error) {
	mf, ph, err := openFile(path)
	if err != nil {
		return nil, err
	}
	a := &Archive{path: path, files: []*mappedFile{mf}, tensors: map[string]*TensorInfo{}, metadata: ph.metadata}
	for i := range ph.tensors {
		t := &ph.tensors[i]
		t.file = mf
		a.tensors[t.Name] = t
	}
	a.finish()
	return a, nil
}

func (a *Archive) finish() {
	a.names = make([]string, 0, len(a.tensors))
	for n := range a.tensors {
		a.names = append(a.names, n)
	}
	sort.Strings(a.names)
	if a.metadata == nil {
		a.metadata = map[string]string{}
	}
}

// openFile opens, maps and validates one safetensors file.
func openFile(path string) (mf *mappedFile, ph *parsedHeader, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, wrapErr(path, "", "cannot open", err)
	}
	defer func() {
		if err != nil {
			if mf != nil {
				mf.close()
			} else {
				f.Close()
			}
		}
	}()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, wrapErr(path, "", "cannot stat", err)
	}
	if !st.Mode().IsRegular() {
		return nil, nil, fileErr(path, "not a regular file")
	}
	size := st.Size()
	var prefix [8]byte
	if size >= 8 {
		if _, err := f.ReadAt(prefix[:], 0); err != nil {
			return nil, nil, wrapErr(path, "", "cannot read header length", err)
		}
	}
	n, err := readHeaderLen(path, prefix[:], size)
	if err != nil {
		return nil, nil, err
	}
	mf = &mappedFile{path: path, size: size}
	var hdr []byte
	if useMmap {
		data, err := mmapFile(f, size)
		if err != nil {
			return nil, nil, wrapErr(path, "", "cannot memory-map", err)
		}
		f.Close()
		mf.data = data
		hdr = data[8 : 8+n]
	} else {
		mf.f = f
		hdr = make([]byte, n)
		if _, err := f.ReadAt(hdr, 8); err != nil {
			return nil, nil, wrapErr(path, "", "cannot read header", err)
		}
	}
	ph, err = parseHeader(path, hdr, size)
	if err != nil {
		return nil, nil, err
	}
	if mf.data != nil {
		releasePages(mf.data, 0, 8+n, false)
	}
	return mf, ph, nil
}

// maxIndexSize bounds the size of an index JSON file.
const maxIndexSize = 100_000_000

func openIndex(path string) (_ *Archive, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, wrapErr(path, "", "cannot open index", err)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxIndexSize+1))
	f.Close()
	if err != nil {
		return nil, wrapErr(path, "", "cannot read index", err)
	}
	if len(b) > maxIndexSize {
		return nil, fileErr(path, "index file is larger than %d bytes", maxIndexSize)
	}
	keys, vals, err := objectEntries(b)
	if err != nil {
		return nil, wrapErr(path, "", "index is not a valid JSON object", err)
	}
	var weightMap map[string]string
	var order []string
	metadata := map[string]string{}
	for i, k := range keys {
		switch k {
		case "weight_map":
			wk, wv, err := objectEntries(vals[i])
			if err != nil {
				return nil, wrapErr(path, "", "weight_map is not a valid JSON object", err)
			}
			weightMap = make(map[string]string, len(wk))
			for j, name := range wk {
				var s string
				if err := json.Unmarshal(wv[j], &s); err != nil {
					return nil, tensorErr(path, name, "weight_map value is not a string: %.60s", wv[j])
				}
				weightMap[name] = s
			}
			order = wk
		case "metadata":
			if bytes.Equal(bytes.TrimSpace(vals[i]), []byte("null")) {
				continue
			}
			mk, mv, err := objectEntries(vals[i])
			if err != nil {
				return nil, wrapErr(path, "", "index metadata is not a JSON object", err)
			}
			for j, k := range mk {
				var s string
				if json.Unmarshal(mv[j], &s) == nil {
					metadata[k] = s
				} else {
					var c bytes.Buffer
					json.Compact(&c, mv[j])
					metadata[k] = c.String()
				}
			}
		}
	}
	if weightMap == nil {
		return nil, fileErr(path, "index has no \"weight_map\" object")
	}
	if len(weightMap) == 0 {
		return nil, fileErr(path, "index weight_map is empty")
	}
	dir := filepath.Dir(path)
	shardOf := map[string]string{} // tensor -> cleaned shard name
	var shardNames []string
	seenShard := map[string]bool{}
	for _, name := range order {
		s := weightMap[name]
		c := filepath.Clean(filepath.FromSlash(s))
		if s == "" || !filepath.IsLocal(c) {
			return nil, tensorErr(path, name, "weight_map shard %q is not a file name inside the index directory", s)
		}
		shardOf[name] = c
		if !seenShard[c] {
			seenShard[c] = true
			shardNames = append(shardNames, c)
		}
	}
	sort.Strings(shardNames)
	a := &Archive{path: path, tensors: map[string]*TensorInfo{}}
	defer func() {
		if err != nil {
			a.closeFiles()
		}
	}()
	shardMeta := map[string]string{}
	byShard := map[string]map[string]bool{}
	for _, s := range shardNames {
		full := filepath.Join(dir, s)
		if _, err := os.Stat(full); errors.Is(err, fs.ErrNotExist) {
			var users []string
			for _, n := range order {
				if shardOf[n] == s {
					users = append(users, n)
				}
			}
			return nil, tensorErr(path, users[0], "weight_map names shard file %s, which does not exist (%d tensors)", full, len(users))
		}
		mf, ph, err := openFile(full)
		if err != nil {
			return nil, err
		}
		a.files = append(a.files, mf)
		set := map[string]bool{}
		for i := range ph.tensors {
			t := &ph.tensors[i]
			t.file = mf
			if prev, dup := a.tensors[t.Name]; dup {
				return nil, tensorErr(full, t.Name, "duplicate tensor: also present in shard %s", prev.File)
			}
			a.tensors[t.Name] = t
			set[t.Name] = true
		}
		byShard[s] = set
		for k, v := range ph.metadata {
			if _, ok := shardMeta[k]; !ok {
				shardMeta[k] = v
			}
		}
	}
	for _, name := range order {
		s := shardOf[name]
		if !byShard[s][name] {
			full := filepath.Join(dir, s)
			if t, ok := a.tensors[name]; ok {
				return nil, tensorErr(path, name, "weight_map places the tensor in %s but it is in %s", full, t.File)
			}
			return nil, tensorErr(path, name, "tensor listed in weight_map is absent from shard %s", full)
		}
	}
	for k, v := range metadata {
		shardMeta[k] = v
	}
	a.metadata = shardMeta
	a.finish()
	return a, nil
}

// objectEntries decodes a JSON object into its keys and raw values, in
// order, rejecting duplicate keys and trailing data.
func objectEntries(b []byte) ([]string, []json.RawMessage, error) {
	t := bytes.TrimLeft(b, " \t\r\n")
	if len(t) == 0 || t[0] != '{' {
		return nil, nil, errors.New("not a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if _, err := dec.Token(); err != nil {
		return nil, nil, err
	}
	var keys []string
	var vals []json.RawMessage
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, err
		}
		k, _ := tok.(string)
		if seen[k] {
			return nil, nil, fmt.Errorf("duplicate key %q", k)
		}
		seen[k] = true
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, nil, fmt.Errorf("value of %q: %w", k, err)
		}
		keys = append(keys, k)
		vals = append(vals, v)
	}
	if _, err := dec.Token(); err != nil {
		return nil, nil, err
	}
	if off := dec.InputOffset(); len(bytes.TrimLeft(b[off:], " \t\r\n")) > 0 {
		return nil, nil, errors.New("trailing data after the JSON object")
	}
	return keys, vals, nil
}

// Path returns the path Open was given.
func (a *Archive) Path() string { return a.path }

// Names returns the tensor names, sorted.
func (a *Archive) Names() []string { return append([]string(nil), a.names...) }

// Info returns the description of a tensor.
func (a *Archive) Info(name string) (TensorInfo, bool) {
	t, ok := a.tensors[name]
	if !ok {
		return TensorInfo{}, false
	}
	c := *t
	c.Shape = append([]int{}, t.Shape...)
	return c, true
}

// Metadata returns a copy of the string metadata: the "__metadata__" of the
// file, or for a sharded checkpoint the union of the shards' metadata
// overlaid with the index's "metadata" (non-string values, such as
// total_size, in their compact JSON text).
func (a *Archive) Metadata() map[string]string {
	m := make(map[string]string, len(a.metadata))
	for k, v := range a.metadata {
		m[k] = v
	}
	return m
}

// SetAutoRelease chooses whether Float32 and ReadFloat32Into release the
// mapped pages of a tensor after converting it (the default is true).
func (a *Archive) SetAutoRelease(on bool) { a.noAutoRelease.Store(!on) }

func (a *Archive) lookup(name string) (*TensorInfo, error) {
	if a.closed.Load() {
		return nil, ErrClosed
	}
	t, ok := a.tensors[name]
	if !ok {
		return nil, tensorErr(a.path, name, "no such tensor")
	}
	return t, nil
}

// Raw returns the bytes of a tensor as stored (little-endian). With memory
// mapping (Linux, Darwin) it is a zero-copy read-only view into the mapping,
// valid until Close; writing to it faults. Elsewhere it is a fresh copy.
func (a *Archive) Raw(name string) ([]byte, error) {
	t, err := a.lookup(name)
	if err != nil {
		return nil, err
	}
	if d := t.file.data; d != nil {
		return d[t.begin:t.end:t.end], nil
	}
	b := make([]byte, t.end-t.begin)
	if _, err := t.file.f.ReadAt(b, t.begin); err != nil {
		return nil, wrapErr(t.File, name, "read failed", err)
	}
	return b, nil
}

// Float32 returns a fresh float32 copy of a float tensor (F64, F32, F16,
// BF16), releasing its mapped pages afterwards unless SetAutoRelease(false).
func (a *Archive) Float32(name string) ([]float32, error) {
	t, err := a.lookup(name)
	if err != nil {
		return nil, err
	}
	if !t.DType.IsFloat() {
		return nil, tensorErr(t.File, name, "dtype %s is not a float type; use Raw", t.DType)
	}
	dst := make([]float32, t.NumElements())
	if err := a.convert(t, dst); err != nil {
		return nil, err
	}
	return dst, nil
}

// ReadFloat32Into converts a float tensor into dst, whose length must equal
// the number of elements. Pages are released as in Float32.
func (a *Archive) ReadFloat32Into(name string, dst []float32) error {
	t, err := a.lookup(name)
	if err != nil {
		return err
	}
	if !t.DType.IsFloat() {
		return tensorErr(t.File, name, "dtype %s is not a float type; use Raw", t.DType)
	}
	if n := t.NumElements(); len(dst) != n {
		return tensorErr(t.File, name, "destination has %d elements, tensor %v has %d", len(dst), t.Shape, n)
	}
	return a.convert(t, dst)
}

// Release drops the mapped pages holding a tensor from the resident set
// (page-aligned, widened to whole pages). Raw views stay valid: the pages are
// faulted back in from the file when touched. Unknown names are ignored.
func (a *Archive) Release(name string) {
	if a.closed.Load() {
		return
	}
	if t, ok := a.tensors[name]; ok && t.file.data != nil {
		releasePages(t.file.data, t.begin, t.end, true)
	}
}

// chunkBytes is the unit of conversion: each chunk is converted and then its
// pages released, so even a single huge tensor is never resident twice.
var chunkBytes int64 = 4 << 20

func (a *Archive) convert(t *TensorInfo, dst []float32) error {
	es := int64(t.DType.Size())
	n := int64(len(dst))
	if n == 0 {
		return nil
	}
	release := !a.noAutoRelease.Load()
	chunkElems := chunkBytes / es
	nChunks := (n + chunkElems - 1) / chunkElems
	if data := t.file.data; data != nil {
		do := func(c int64) {
			lo := c * chunkElems
			hi := min(lo+chunkElems, n)
			b0, b1 := t.begin+lo*es, t.begin+hi*es
			decodeFloat32(t.DType, data[b0:b1], dst[lo:hi])
			if release {
				releasePages(data, b0, b1, false)
			}
		}
		workers := min(int64(runtime.GOMAXPROCS(0)), nChunks, 8)
		if workers <= 1 {
			for c := range nChunks {
				do(c)
			}
		} else {
			willNeed(data, t.begin, t.end)
			var next atomic.Int64
			var wg sync.WaitGroup
			for range workers {
				wg.Go(func() {
					for c := next.Add(1) - 1; c < nChunks; c = next.Add(1) - 1 {
						do(c)
					}
				})
			}
			wg.Wait()
		}
		if release {
			releasePages(data, t.begin, t.end, true)
		}
		return nil
	}
	buf := make([]byte, min(chunkElems, n)*es)
	for lo := int64(0); lo < n; lo += chunkElems {
		hi := min(lo+chunkElems, n)
		b := buf[:(hi-lo)*es]
		if _, err := t.file.f.ReadAt(b, t.begin+lo*es); err != nil {
			return wrapErr(t.File, t.Name, "read failed", err)
		}
		decodeFloat32(t.DType, b, dst[lo:hi])
	}
	return nil
}

func (a *Archive) closeFiles() error {
	var err error
	for _, f := range a.files {
		if e := f.close(); err == nil && e != nil {
			err = wrapErr(f.path, "", "close failed", e)
		}
	}
	a.files = nil
	return err
}

// Close unmaps and closes every file. Raw views become invalid. Closing
// twice is a no-op.
func (a *Archive) Close() error {
	if a.closed.Swap(true) {
		return nil
	}
	return a.closeFiles()
}
