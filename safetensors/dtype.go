package safetensors

// DType is a safetensors element type, spelled as in the file header.
type DType string

// Element types understood by this package. Float32/ReadFloat32Into convert
// F64, F32, F16 and BF16; the others are available as raw bytes via Raw.
const (
	F64  DType = "F64"
	F32  DType = "F32"
	F16  DType = "F16"
	BF16 DType = "BF16"
	I64  DType = "I64"
	I32  DType = "I32"
	I16  DType = "I16"
	I8   DType = "I8"
	U64  DType = "U64"
	U32  DType = "U32"
	U16  DType = "U16"
	U8   DType = "U8"
	BOOL DType = "BOOL"
)

// Size returns the size in bytes of one element, or 0 for an unknown dtype.
func (d DType) Size() int {
	switch d {
	case F64, I64, U64:
		return 8
	case F32, I32, U32:
		return 4
	case F16, BF16, I16, U16:
		return 2
	case I8, U8, BOOL:
		return 1
	}
	return 0
}

// Valid reports whether d is a dtype this package knows.
func (d DType) Valid() bool { return d.Size() != 0 }

// IsFloat reports whether d can be converted to and from float32 by this
// package (F64, F32, F16, BF16). Writing from float32 supports F32, F16, BF16
// and F64.
func (d DType) IsFloat() bool {
	switch d {
	case F64, F32, F16, BF16:
		return true
	}
	return false
}

// TensorInfo describes one tensor of an archive.
type TensorInfo struct {
	Name  string
	DType DType
	Shape []int
	// File is the path of the file holding the tensor (the shard, for a
	// sharded checkpoint).
	File string

	// Position of the data inside the file, absolute (header included).
	begin, end int64
	file       *mappedFile
}

// NumElements returns the product of the dimensions (1 for a scalar).
func (t TensorInfo) NumElements() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// ByteSize returns the size of the tensor data in bytes.
func (t TensorInfo) ByteSize() int64 { return int64(t.NumElements()) * int64(t.DType.Size()) }
