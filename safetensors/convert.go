package safetensors

import (
	"encoding/binary"
	"math"
	"runtime"
	"unsafe"
)

// nativeLE is true on little-endian machines, where tensor bytes can be
// reinterpreted in place instead of decoded byte by byte.
var nativeLE = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// unalignedOK: architectures whose ordinary loads and stores tolerate any
// alignment (tensor data in third-party files need not be aligned).
var unalignedOK = runtime.GOARCH == "amd64" || runtime.GOARCH == "arm64" || runtime.GOARCH == "386"

// view reinterprets b as a slice of n elements of T when that is safe
// (little-endian host, suitably aligned or alignment-tolerant CPU).
func view[T uint16 | uint32 | uint64](b []byte, n int) ([]T, bool) {
	if n == 0 || !nativeLE {
		return nil, false
	}
	var zero T
	p := unsafe.Pointer(unsafe.SliceData(b))
	if !unalignedOK && uintptr(p)%unsafe.Sizeof(zero) != 0 {
		return nil, false
	}
	return unsafe.Slice((*T)(p), n), true
}

func u32view(f []float32) []uint32 {
	return unsafe.Slice((*uint32)(unsafe.Pointer(unsafe.SliceData(f))), len(f))
}

// f16Table maps every IEEE 754 binary16 bit pattern to its binary32 bits.
var f16Table = func() *[1 << 16]uint32 {
	var t [1 << 16]uint32
	for i := range t {
		t[i] = f16BitsToF32Bits(uint16(i))
	}
	return &t
}()

// f16BitsToF32Bits converts binary16 to binary32 exactly. Subnormals become
// normal float32 values; infinities stay infinities; NaNs keep sign and
// payload and are made quiet (as x86 F16C and PyTorch do).
func f16BitsToF32Bits(h uint16) uint32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	man := uint32(h & 0x3ff)
	switch exp {
	case 0x1f:
		if man == 0 {
			return sign | 0x7f800000
		}
		return sign | 0x7fc00000 | man<<13
	case 0:
		if man == 0 {
			return sign
		}
		// Subnormal: man * 2^-24. Normalise.
		e := uint32(127 - 15 + 1)
		for man&0x400 == 0 {
			man <<= 1
			e--
		}
		return sign | e<<23 | (man&0x3ff)<<13
	}
	return sign | (exp+127-15)<<23 | man<<13
}

// F16ToFloat32 converts binary16 bits to a float32.
func F16ToFloat32(h uint16) float32 { return math.Float32frombits(f16Table[h]) }

// BF16ToFloat32 converts bfloat16 bits to a float32 (exact).
func BF16ToFloat32(b uint16) float32 { return math.Float32frombits(uint32(b) << 16) }

// Float32ToBF16 rounds a float32 to bfloat16, round to nearest, ties to even,
// overflowing to infinity like PyTorch. A NaN becomes the quiet NaN 0x7FC0
// with its sign kept.
func Float32ToBF16(f float32) uint16 {
	u := math.Float32bits(f)
	if u&0x7fffffff > 0x7f800000 {
		return uint16(u>>16)&0x8000 | 0x7fc0
	}
	u += 0x7fff + (u>>16)&1
	return uint16(u >> 16)
}

// Float32ToF16 rounds a float32 to IEEE binary16, round to nearest, ties to
// even, including results that are subnormal in binary16; values whose
// rounded magnitude exceeds 65504 become infinity. A NaN becomes 0x7E00 with
// its sign kept (as PyTorch does).
func Float32ToF16(f float32) uint16 {
	u := math.Float32bits(f)
	sign := uint16(u>>16) & 0x8000
	exp := int32(u>>23) & 0xff
	man := u & 0x7fffff
	if exp == 0xff {
		if man != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 {
		if e < -10 {
			return sign // below half the smallest subnormal: rounds to zero
		}
		m := man | 0x800000
		shift := uint32(14 - e)
		h := m >> shift
		rem := m & (1<<shift - 1)
		half := uint32(1) << (shift - 1)
		if rem > half || (rem == half && h&1 == 1) {
			h++
		}
		return sign | uint16(h)
	}
	h := uint32(e)<<10 | man>>13
	rem := man & 0x1fff
	if rem > 0x1000 || (rem == 0x1000 && h&1 == 1) {
		h++ // a carry into the exponent is correct, up to infinity
	}
	return sign | uint16(h)
}

// decodeFloat32 converts n = len(dst) elements of dtype dt from src (which
// holds exactly len(dst)*dt.Size() bytes) into dst.
func decodeFloat32(dt DType, src []byte, dst []float32) {
	src = src[:len(dst)*dt.Size()]
	switch dt {
	case F32:
		if s, ok := view[uint32](src, len(dst)); ok {
			copy(u32view(dst), s)
			return
		}
	case BF16:
		if s, ok := view[uint16](src, len(dst)); ok {
			d := u32view(dst)
			for i, v := range s {
				d[i] = uint32(v) << 16
			}
			return
		}
	case F16:
		if s, ok := view[uint16](src, len(dst)); ok {
			d, t := u32view(dst), f16Table
			for i, v := range s {
				d[i] = t[v]
			}
			return
		}
	}
	switch dt {
	case F32:
		src = src[:len(dst)*4]
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
		}
	case BF16:
		src = src[:len(dst)*2]
		for i := range dst {
			dst[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(src[2*i:])) << 16)
		}
	case F16:
		src = src[:len(dst)*2]
		t := f16Table
		for i := range dst {
			dst[i] = math.Float32frombits(t[binary.LittleEndian.Uint16(src[2*i:])])
		}
	case F64:
		src = src[:len(dst)*8]
		for i := range dst {
			dst[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(src[8*i:])))
		}
	default:
		panic("safetensors: decodeFloat32 on " + string(dt))
	}
}

// encodeFloat32 converts src to dtype dt into dst, which holds exactly
// len(src)*dt.Size() bytes.
func encodeFloat32(dt DType, src []float32, dst []byte) {
	dst = dst[:len(src)*dt.Size()]
	switch dt {
	case F32:
		if d, ok := view[uint32](dst, len(src)); ok {
			copy(d, u32view(src))
			return
		}
	case BF16:
		if d, ok := view[uint16](dst, len(src)); ok {
			for i, v := range src {
				d[i] = Float32ToBF16(v)
			}
			return
		}
	case F16:
		if d, ok := view[uint16](dst, len(src)); ok {
			for i, v := range src {
				d[i] = Float32ToF16(v)
			}
			return
		}
	}
	switch dt {
	case F32:
		dst = dst[:len(src)*4]
		for i, v := range src {
			binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(v))
		}
	case BF16:
		dst = dst[:len(src)*2]
		for i, v := range src {
			binary.LittleEndian.PutUint16(dst[2*i:], Float32ToBF16(v))
		}
	case F16:
		dst = dst[:len(src)*2]
		for i, v := range src {
			binary.LittleEndian.PutUint16(dst[2*i:], Float32ToF16(v))
		}
	case F64:
		dst = dst[:len(src)*8]
		for i, v := range src {
			binary.LittleEndian.PutUint64(dst[8*i:], math.Float64bits(float64(v)))
		}
	default:
		panic("safetensors: encodeFloat32 to " + string(dt))
	}
}
