package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"os"
	"path/filepath"
	"sort"
	"strconv"
)

// Tensor is one tensor to write. Exactly one of F32 and Raw carries the data
// (both may be nil for a tensor with zero elements). F32 data is converted to
// DType (F32, F64, BF16 with round-to-nearest-even, F16 with correct
// rounding); Raw must hold numel*DType.Size() little-endian bytes and is
// written as is.
type Tensor struct {
	Name  string
	DType DType
	Shape []int
	F32   []float32
	Raw   []byte
}

// checkShape validates a tensor description and returns numel and bytes.
func checkShape(name string, dt DType, shape []int) (numel, nbytes int64, err error) {
	if name == "" {
		return 0, 0, errors.New("empty tensor name")
	}
	if name == metadataKey {
		return 0, 0, fmt.Errorf("tensor name %q is reserved", name)
	}
	if !dt.Valid() {
		return 0, 0, fmt.Errorf("tensor %q: unknown dtype %q", name, dt)
	}
	n := uint64(1)
	for _, d := range shape {
		if d < 0 {
			return 0, 0, fmt.Errorf("tensor %q: negative dimension in shape %v", name, shape)
		}
		hi, lo := bits.Mul64(n, uint64(d))
		if hi != 0 || lo > math.MaxInt64/8 {
			return 0, 0, fmt.Errorf("tensor %q: shape %v overflows", name, shape)
		}
		n = lo
	}
	return int64(n), int64(n) * int64(dt.Size()), nil
}

func (t *Tensor) check() (TensorInfo, error) {
	numel, nbytes, err := checkShape(t.Name, t.DType, t.Shape)
	if err != nil {
		return TensorInfo{}, err
	}
	info := TensorInfo{Name: t.Name, DType: t.DType, Shape: t.Shape}
	switch {
	case t.F32 != nil && t.Raw != nil:
		return info, fmt.Errorf("tensor %q: both F32 and Raw data given", t.Name)
	case t.F32 != nil:
		if !t.DType.IsFloat() {
			return info, fmt.Errorf("tensor %q: float32 data cannot be written as dtype %s", t.Name, t.DType)
		}
		if int64(len(t.F32)) != numel {
			return info, fmt.Errorf("tensor %q: %d float32 values for shape %v (%d elements)", t.Name, len(t.F32), t.Shape, numel)
		}
	default:
		if int64(len(t.Raw)) != nbytes {
			return info, fmt.Errorf("tensor %q: %d raw bytes for %s %v (%d bytes expected)", t.Name, len(t.Raw), t.DType, t.Shape, nbytes)
		}
	}
	return info, nil
}

// Write writes tensors and metadata to path as one safetensors file,
// atomically: a temporary file in the same directory is written, fsynced and
// renamed over path; on any error it is removed and path is left untouched.
// The output is deterministic: tensors are laid out by decreasing element
// size, then by name (as the reference implementation does, which keeps
// every tensor aligned to its element size), and the header is padded with
// spaces to a multiple of 8 bytes.
func Write(path string, tensors []Tensor, metadata map[string]string) error {
	infos := make([]TensorInfo, len(tensors))
	for i := range tensors {
		info, err := tensors[i].check()
		if err != nil {
			return &Error{File: path, Tensor: tensors[i].Name, Msg: "cannot write", Err: err}
		}
		infos[i] = info
	}
	w, err := NewWriter(path, infos, metadata)
	if err != nil {
		return err
	}
	for i := range tensors {
		t := &tensors[i]
		if t.F32 != nil {
			err = w.WriteTensor(t.Name, t.F32)
		} else {
			err = w.WriteRaw(t.Name, t.Raw)
		}
		if err != nil {
			w.Abort()
			return err
		}
	}
	return w.Close()
}

type slot struct {
	info    TensorInfo
	off     int64 // absolute file offset
	size    int64
	written bool
}

// Writer streams tensors into a safetensors file whose layout is fixed up
// front, so a caller never needs all tensors in memory at once. Tensors may
// be written in any order; Close checks that all were written, fsyncs and
// renames the temporary file into place. After any error the writer is
// aborted: the temporary file is removed and later calls return the error.
type Writer struct {
	path    string
	tmp     *os.File
	tmpName string
	slots   map[string]*slot
	order   []string
	buf     []byte
	err     error
	done    bool
}

// layout orders tensor infos as Write lays them out.
func layout(infos []TensorInfo) []TensorInfo {
	s := append([]TensorInfo(nil), infos...)
	sort.SliceStable(s, func(i, j int) bool {
		if a, b := s[i].DType.Size(), s[j].DType.Size(); a != b {
			return a > b
		}
		return s[i].Name < s[j].Name
	})
	return s
}

// jsonString encodes s as a JSON string without HTML escaping.
func jsonString(b *bytes.Buffer, s string) {
	var tmp bytes.Buffer
	enc := json.NewEncoder(&tmp)
	enc.SetEscapeHTML(false)
	enc.Encode(s)
	b.Write(bytes.TrimRight(tmp.Bytes(), "\n"))
}

// buildHeader returns the padded JSON header for tensors in the given order.
func buildHeader(ordered []TensorInfo, metadata map[string]string) ([]byte, []int64) {
	var b bytes.Buffer
	b.WriteByte('{')
	first := true
	if len(metadata) > 0 {
		b.WriteString(`"__metadata__":{`)
		keys := make([]string, 0, len(metadata))
		for k := range metadata {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			jsonString(&b, k)
			b.WriteByte(':')
			jsonString(&b, metadata[k])
		}
		b.WriteByte('}')
		first = false
	}
	offs := make([]int64, len(ordered)+1)
	var pos int64
	for i, t := range ordered {
		_, nbytes, _ := checkShape(t.Name, t.DType, t.Shape)
		offs[i] = pos
		if !first {
			b.WriteByte(',')
		}
		first = false
		jsonString(&b, t.Name)
		b.WriteString(`:{"dtype":`)
		jsonString(&b, string(t.DType))
		b.WriteString(`,"shape":[`)
		for j, d := range t.Shape {
			if j > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.Itoa(d))
		}
		b.WriteString(`],"data_offsets":[`)
		b.WriteString(strconv.FormatInt(pos, 10))
		b.WriteByte(',')
		pos += nbytes
		b.WriteString(strconv.FormatInt(pos, 10))
		b.WriteString("]}")
	}
	offs[len(ordered)] = pos
	b.WriteByte('}')
	for b.Len()%8 != 0 {
		b.WriteByte(' ')
	}
	return b.Bytes(), offs
}

// NewWriter starts writing a safetensors file at path for the described
// tensors (Name, DType, Shape; other fields are ignored).
func NewWriter(path string, infos []TensorInfo, metadata map[string]string) (*Writer, error) {
	w := &Writer{path: path, slots: make(map[string]*slot, len(infos))}
	for _, t := range infos {
		if _, _, err := checkShape(t.Name, t.DType, t.Shape); err != nil {
			return nil, &Error{File: path, Tensor: t.Name, Msg: "cannot write", Err: err}
		}
		if _, dup := w.slots[t.Name]; dup {
			return nil, tensorErr(path, t.Name, "cannot write: duplicate tensor name")
		}
		w.slots[t.Name] = nil
	}
	ordered := layout(infos)
	hdr, offs := buildHeader(ordered, metadata)
	if len(hdr) > MaxHeaderSize {
		return nil, fileErr(path, "cannot write: header of %d bytes exceeds %d", len(hdr), MaxHeaderSize)
	}
	base := 8 + int64(len(hdr))
	for i, t := range ordered {
		t.Shape = append([]int{}, t.Shape...)
		t.File = path
		w.slots[t.Name] = &slot{info: t, off: base + offs[i], size: offs[i+1] - offs[i]}
		w.order = append(w.order, t.Name)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return nil, wrapErr(path, "", "cannot create temporary file", err)
	}
	w.tmp, w.tmpName = tmp, tmp.Name()
	prefix := make([]byte, 8, 8+len(hdr))
	binary.LittleEndian.PutUint64(prefix, uint64(len(hdr)))
	if _, err := tmp.WriteAt(append(prefix, hdr...), 0); err != nil {
		return nil, w.fail(wrapErr(path, "", "write failed", err))
	}
	if err := tmp.Truncate(base + offs[len(ordered)]); err != nil {
		return nil, w.fail(wrapErr(path, "", "cannot size temporary file", err))
	}
	return w, nil
}

// fail aborts the writer with err (the first error sticks).
func (w *Writer) fail(err error) error {
	if w.err == nil {
		w.err = err
	}
	w.Abort()
	return w.err
}

// Abort discards the output: the temporary file is closed and removed. It
// is safe to call more than once and after Close.
func (w *Writer) Abort() {
	if w.done {
		return
	}
	w.done = true
	if w.err == nil {
		w.err = fileErr(w.path, "writer aborted")
	}
	if w.tmp != nil {
		w.tmp.Close()
		os.Remove(w.tmpName)
		w.tmp = nil
	}
}

func (w *Writer) slotFor(name string) (*slot, error) {
	if w.err != nil {
		return nil, w.err
	}
	if w.done {
		return nil, fileErr(w.path, "writer is closed")
	}
	s, ok := w.slots[name]
	if !ok {
		return nil, w.fail(tensorErr(w.path, name, "cannot write: tensor not declared to NewWriter"))
	}
	if s.written {
		return nil, w.fail(tensorErr(w.path, name, "cannot write: tensor written twice"))
	}
	return s, nil
}

const writeChunkElems = 1 << 20

// WriteTensor writes the float32 data of a float tensor, converted to its
// dtype. len(data) must equal the number of elements.
func (w *Writer) WriteTensor(name string, data []float32) error {
	s, err := w.slotFor(name)
	if err != nil {
		return err
	}
	dt := s.info.DType
	if !dt.IsFloat() {
		return w.fail(tensorErr(w.path, name, "cannot write: float32 data for dtype %s", dt))
	}
	if n := s.info.NumElements(); len(data) != n {
		return w.fail(tensorErr(w.path, name, "cannot write: %d float32 values for shape %v (%d elements)", len(data), s.info.Shape, n))
	}
	es := int64(dt.Size())
	if w.buf == nil && len(data) > 0 {
		w.buf = make([]byte, min(len(data), writeChunkElems)*8)
	}
	for lo := 0; lo < len(data); lo += writeChunkElems {
		hi := min(lo+writeChunkElems, len(data))
		if cap(w.buf) < (hi-lo)*int(es) {
			w.buf = make([]byte, (hi-lo)*int(es))
		}
		b := w.buf[:(hi-lo)*int(es)]
		encodeFloat32(dt, data[lo:hi], b)
		if _, err := w.tmp.WriteAt(b, s.off+int64(lo)*es); err != nil {
			return w.fail(wrapErr(w.path, name, "write failed", err))
		}
	}
	s.written = true
	return nil
}

// WriteRaw writes the raw little-endian bytes of a tensor; len(data) must be
// numel * dtype size.
func (w *Writer) WriteRaw(name string, data []byte) error {
	s, err := w.slotFor(name)
	if err != nil {
		return err
	}
	if int64(len(data)) != s.size {
		return w.fail(tensorErr(w.path, name, "cannot write: %d raw bytes for %s %v (%d expected)", len(data), s.info.DType, s.info.Shape, s.size))
	}
	if _, err := w.tmp.WriteAt(data, s.off); err != nil {
		return w.fail(wrapErr(w.path, name, "write failed", err))
	}
	s.written = true
	return nil
}

// Close checks that every tensor was written, then fsyncs the temporary
// file and renames it to the destination. On error nothing is left behind.
func (w *Writer) Close() error {
	if w.err != nil {
		return w.err
	}
	if w.done {
		return nil
	}
	var missing []string
	for _, n := range w.order {
		if !w.slots[n].written {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		return w.fail(tensorErr(w.path, missing[0], "cannot finish: %d tensor(s) never written", len(missing)))
	}
	if err := w.tmp.Chmod(0o644); err != nil {
		return w.fail(wrapErr(w.path, "", "chmod failed", err))
	}
	if err := w.tmp.Sync(); err != nil {
		return w.fail(wrapErr(w.path, "", "fsync failed", err))
	}
	if err := w.tmp.Close(); err != nil {
		w.tmp = nil
		os.Remove(w.tmpName)
		return w.fail(wrapErr(w.path, "", "close failed", err))
	}
	w.tmp = nil
	if err := os.Rename(w.tmpName, w.path); err != nil {
		os.Remove(w.tmpName)
		return w.fail(wrapErr(w.path, "", "rename failed", err))
	}
	w.done = true
	syncDir(filepath.Dir(w.path))
	return nil
}

// syncDir fsyncs a directory so a rename survives a crash (best effort).
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// writeFileAtomic writes data to path via a synced temporary file + rename.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return wrapErr(path, "", "cannot create temporary file", err)
	}
	name := tmp.Name()
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if e := tmp.Close(); err == nil {
		err = e
	}
	if err == nil {
		err = os.Rename(name, path)
	}
	if err != nil {
		os.Remove(name)
		return wrapErr(path, "", "write failed", err)
	}
	syncDir(filepath.Dir(path))
	return nil
}

// ShardFileName returns the Hugging Face name of shard i (1-based) of n.
func ShardFileName(i, n int) string {
	return fmt.Sprintf("model-%05d-of-%05d.safetensors", i, n)
}

// WriteSharded writes tensors into dir (created if needed). Tensors, in name
// order, are packed greedily into shards of at most maxShardBytes of tensor
// data (a larger tensor gets a shard of its own). With one shard the result
// is dir/model.safetensors (and a stale model.safetensors.index.json, which
// Open would prefer, is removed); otherwise model-0000N-of-0000M.safetensors
// files plus model.safetensors.index.json with {"metadata": {"total_size":
// N}, "weight_map": {...}}. metadata goes into every file's __metadata__.
// Each file is written atomically, the index last; on error the files
// already written by this call are removed. It returns the paths written.
func WriteSharded(dir string, tensors []Tensor, metadata map[string]string, maxShardBytes int64) ([]string, error) {
	if maxShardBytes <= 0 {
		return nil, fileErr(dir, "cannot write: maxShardBytes must be positive, got %d", maxShardBytes)
	}
	idx := make([]int, len(tensors))
	sizes := make([]int64, len(tensors))
	seen := map[string]bool{}
	for i := range tensors {
		idx[i] = i
		if _, err := tensors[i].check(); err != nil {
			return nil, &Error{File: dir, Tensor: tensors[i].Name, Msg: "cannot write", Err: err}
		}
		if seen[tensors[i].Name] {
			return nil, tensorErr(dir, tensors[i].Name, "cannot write: duplicate tensor name")
		}
		seen[tensors[i].Name] = true
		_, sizes[i], _ = checkShape(tensors[i].Name, tensors[i].DType, tensors[i].Shape)
	}
	sort.Slice(idx, func(a, b int) bool { return tensors[idx[a]].Name < tensors[idx[b]].Name })
	var shards [][]Tensor
	var cur []Tensor
	var curSize, total int64
	for _, i := range idx {
		if len(cur) > 0 && curSize+sizes[i] > maxShardBytes {
			shards = append(shards, cur)
			cur, curSize = nil, 0
		}
		cur = append(cur, tensors[i])
		curSize += sizes[i]
		total += sizes[i]
	}
	if len(cur) > 0 || len(shards) == 0 {
		shards = append(shards, cur)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, wrapErr(dir, "", "cannot create directory", err)
	}
	if len(shards) == 1 {
		p := filepath.Join(dir, SingleFileName)
		if err := Write(p, shards[0], metadata); err != nil {
			return nil, err
		}
		stale := filepath.Join(dir, IndexFileName)
		if err := os.Remove(stale); err != nil && !errors.Is(err, os.ErrNotExist) {
			return []string{p}, wrapErr(stale, "", "cannot remove stale index", err)
		}
		return []string{p}, nil
	}
	var written []string
	cleanup := func() {
		for _, p := range written {
			os.Remove(p)
		}
	}
	weightMap := map[string]string{}
	for i, sh := range shards {
		name := ShardFileName(i+1, len(shards))
		p := filepath.Join(dir, name)
		if err := Write(p, sh, metadata); err != nil {
			cleanup()
			return nil, err
		}
		written = append(written, p)
		for _, t := range sh {
			weightMap[t.Name] = name
		}
	}
	index := struct {
		Metadata  map[string]int64  `json:"metadata"`
		WeightMap map[string]string `json:"weight_map"`
	}{map[string]int64{"total_size": total}, weightMap}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(index); err != nil {
		cleanup()
		return nil, wrapErr(dir, "", "cannot encode index", err)
	}
	p := filepath.Join(dir, IndexFileName)
	if err := writeFileAtomic(p, b.Bytes()); err != nil {
		cleanup()
		return nil, err
	}
	return append(written, p), nil
}
