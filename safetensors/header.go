package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/bits"
	"sort"
	"strconv"
	"unicode/utf8"
)

// MaxHeaderSize is the largest JSON header accepted, as in the reference
// implementation (100 MB).
const MaxHeaderSize = 100_000_000

const metadataKey = "__metadata__"

// parsedHeader is the validated content of one file's header.
type parsedHeader struct {
	headerLen int64 // N
	tensors   []TensorInfo
	metadata  map[string]string
}

// readHeaderLen validates the 8-byte prefix against the file size.
func readHeaderLen(file string, prefix []byte, fileSize int64) (int64, error) {
	if fileSize < 8 {
		return 0, fileErr(file, "file is %d bytes, shorter than the 8-byte header length prefix", fileSize)
	}
	n := binary.LittleEndian.Uint64(prefix[:8])
	switch {
	case n == 0:
		return 0, fileErr(file, "header length is 0")
	case n > MaxHeaderSize:
		return 0, fileErr(file, "header length %d is absurdly large (limit %d bytes)", n, MaxHeaderSize)
	case n > uint64(fileSize-8):
		return 0, fileErr(file, "header length %d exceeds the file size %d (truncated file?)", n, fileSize)
	}
	return int64(n), nil
}

// parseHeader validates the JSON header hdr of a file of fileSize bytes.
func parseHeader(file string, hdr []byte, fileSize int64) (*parsedHeader, error) {
	headerLen := int64(len(hdr))
	if !utf8.Valid(hdr) {
		return nil, fileErr(file, "header is not valid UTF-8")
	}
	if hdr[0] != '{' {
		return nil, fileErr(file, "header is not a JSON object (starts with %q)", hdr[0])
	}
	keys, vals, err := objectEntries(hdr)
	if err != nil {
		return nil, wrapErr(file, "", "header is not a valid JSON object", err)
	}
	ph := &parsedHeader{headerLen: headerLen}
	bufLen := fileSize - 8 - headerLen
	for i, name := range keys {
		raw := vals[i]
		if name == metadataKey {
			md, err := parseStringMap(raw)
			if err != nil {
				return nil, wrapErr(file, "", "__metadata__ must be an object of string values", err)
			}
			ph.metadata = md
			continue
		}
		ti, err := parseEntry(file, name, raw, bufLen)
		if err != nil {
			return nil, err
		}
		ti.begin += 8 + headerLen
		ti.end += 8 + headerLen
		ti.File = file
		ph.tensors = append(ph.tensors, ti)
	}
	if err := checkCoverage(file, ph.tensors, 8+headerLen, fileSize); err != nil {
		return nil, err
	}
	return ph, nil
}

func parseStringMap(raw json.RawMessage) (map[string]string, error) {
	if bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return nil, nil
	}
	var m map[string]string
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	return m, nil
}

type rawEntry struct {
	DType   *string        `json:"dtype"`
	Shape   *[]json.Number `json:"shape"`
	Offsets *[]json.Number `json:"data_offsets"`
}

func parseEntry(file, name string, raw json.RawMessage, bufLen int64) (TensorInfo, error) {
	var e rawEntry
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return TensorInfo{}, tensorErr(file, name, "header entry is not a JSON object: %.60s", trimmed)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&e); err != nil {
		return TensorInfo{}, wrapErr(file, name, "malformed header entry", err)
	}
	switch {
	case e.DType == nil:
		return TensorInfo{}, tensorErr(file, name, "header entry is missing \"dtype\"")
	case e.Shape == nil:
		return TensorInfo{}, tensorErr(file, name, "header entry is missing \"shape\"")
	case e.Offsets == nil:
		return TensorInfo{}, tensorErr(file, name, "header entry is missing \"data_offsets\"")
	}
	dt := DType(*e.DType)
	if !dt.Valid() {
		return TensorInfo{}, tensorErr(file, name, "unknown dtype %q", *e.DType)
	}
	shape := make([]int, len(*e.Shape))
	numel := uint64(1)
	overflow := false
	for i, num := range *e.Shape {
		d, err := parseNonNeg(num)
		if err != nil {
			return TensorInfo{}, tensorErr(file, name, "shape dimension %d (%s) is %v", i, num, err)
		}
		if d > math.MaxInt {
			overflow = true
		}
		shape[i] = int(d)
		hi, lo := bits.Mul64(numel, d)
		if hi != 0 {
			overflow = true
		}
		numel = lo
	}
	if overflow || numel > math.MaxInt64 {
		return TensorInfo{}, tensorErr(file, name, "shape %v: number of elements overflows", *e.Shape)
	}
	hi, nbytes := bits.Mul64(numel, uint64(dt.Size()))
	if hi != 0 || nbytes > math.MaxInt64 {
		return TensorInfo{}, tensorErr(file, name, "shape %v: byte size (numel*%d) overflows", *e.Shape, dt.Size())
	}
	if len(*e.Offsets) != 2 {
		return TensorInfo{}, tensorErr(file, name, "data_offsets must have 2 elements, has %d", len(*e.Offsets))
	}
	begin, err := parseNonNeg((*e.Offsets)[0])
	if err != nil {
		return TensorInfo{}, tensorErr(file, name, "data_offsets begin (%s) is %v", (*e.Offsets)[0], err)
	}
	end, err := parseNonNeg((*e.Offsets)[1])
	if err != nil {
		return TensorInfo{}, tensorErr(file, name, "data_offsets end (%s) is %v", (*e.Offsets)[1], err)
	}
	if end < begin {
		return TensorInfo{}, tensorErr(file, name, "data_offsets end %d < begin %d", end, begin)
	}
	if end > uint64(bufLen) {
		return TensorInfo{}, tensorErr(file, name, "data_offsets [%d,%d] out of the data buffer (%d bytes)", begin, end, bufLen)
	}
	if end-begin != nbytes {
		return TensorInfo{}, tensorErr(file, name, "data size %d bytes != %d elements * %d bytes (%s %v)",
			end-begin, numel, dt.Size(), dt, shape)
	}
	return TensorInfo{Name: name, DType: dt, Shape: shape, begin: int64(begin), end: int64(end)}, nil
}

func parseNonNeg(n json.Number) (uint64, error) {
	s := n.String()
	if len(s) > 1 && s[0] == '-' && isIntSyntax(s[1:]) {
		return 0, fmt.Errorf("negative")
	}
	if !isIntSyntax(s) {
		return 0, fmt.Errorf("not a non-negative integer")
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("too large")
	}
	return v, nil
}

func isIntSyntax(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// checkCoverage requires the tensors (with absolute offsets) to tile the data
// buffer [start, fileSize) exactly: no overlaps, no holes.
func checkCoverage(file string, ts []TensorInfo, start, fileSize int64) error {
	idx := make([]int, len(ts))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool {
		ta, tb := &ts[idx[a]], &ts[idx[b]]
		if ta.begin != tb.begin {
			return ta.begin < tb.begin
		}
		return ta.end < tb.end
	})
	pos := start
	prev := ""
	for _, i := range idx {
		t := &ts[i]
		if t.begin < pos {
			return tensorErr(file, t.Name, "data range [%d,%d] overlaps tensor %q", t.begin-start, t.end-start, prev)
		}
		if t.begin > pos {
			return tensorErr(file, t.Name, "hole in the data buffer: bytes [%d,%d) are not covered by any tensor", pos-start, t.begin-start)
		}
		pos = t.end
		if t.end > t.begin {
			prev = t.Name
		}
	}
	if pos != fileSize {
		return fileErr(file, "hole in the data buffer: bytes [%d,%d) at the end are not covered by any tensor", pos-start, fileSize-start)
	}
	return nil
}
