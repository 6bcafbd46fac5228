package tokenizer

import (
	"strings"
	"unicode/utf8"
)

// The GPT-2 byte-to-unicode table: printable Latin-1 bytes map to themselves, the other 68
// bytes (controls, space, 0x7F-0xA0, 0xAD) map in order to U+0100, U+0101, ...
var (
	byteToRune [256]rune
	runeToByte = map[rune]byte{}
	// byteToStr[b] is string(byteToRune[b]), so mapping a piece allocates once.
	byteToStr [256]string
)

func init() {
	printable := func(b int) bool {
		return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)
	}
	n := 0
	for b := 0; b < 256; b++ {
		if printable(b) {
			byteToRune[b] = rune(b)
		} else {
			byteToRune[b] = rune(256 + n)
			n++
		}
		runeToByte[byteToRune[b]] = byte(b)
		byteToStr[b] = string(byteToRune[b])
	}
}

// byteLevelMap maps every byte of s to its byte-level character.
func byteLevelMap(s string) string {
	var sb strings.Builder
	sb.Grow(2 * len(s))
	for i := 0; i < len(s); i++ {
		sb.WriteString(byteToStr[s[i]])
	}
	return sb.String()
}

// byteLevelUnmap appends the bytes a token stands for to dst. Like Hugging Face's ByteLevel
// decoder, a token holding any character outside the byte-level alphabet (an added token
// such as "<|im_start|>" is fine, its characters are all in the alphabet) contributes its raw
// UTF-8 bytes instead.
func byteLevelUnmap(dst []byte, tok string) []byte {
	start := len(dst)
	for _, r := range tok {
		b, ok := runeToByte[r]
		if !ok {
			return append(dst[:start], tok...)
		}
		dst = append(dst, b)
	}
	return dst
}

// lossyUTF8 converts b to a valid UTF-8 string the way Rust's String::from_utf8_lossy and
// Python's bytes.decode("utf-8", "replace") do: every maximal ill-formed subsequence (the
// longest prefix of a valid sequence, or a single bad byte) becomes one U+FFFD.
func lossyUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var sb strings.Builder
	sb.Grow(len(b) + 8)
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r != utf8.RuneError || size > 1 {
			sb.Write(b[i : i+size])
			i += size
			continue
		}
		// Invalid: skip the maximal subpart of a well-formed sequence starting at i.
		i += maximalSubpart(b[i:])
		sb.WriteRune(utf8.RuneError)
	}
	return sb.String()
}

// maximalSubpart returns how many bytes at the start of b (which does not start with a valid
// sequence) form the maximal prefix of some well-formed UTF-8 sequence, at least 1.
func maximalSubpart(b []byte) int {
	c := b[0]
	var need int
	lo, hi := byte(0x80), byte(0xBF) // allowed range for the second byte
	switch {
	case c >= 0xC2 && c <= 0xDF:
		need = 1
	case c == 0xE0:
		need, lo = 2, 0xA0
	case c >= 0xE1 && c <= 0xEC, c == 0xEE, c == 0xEF:
		need = 2
	case c == 0xED:
		need, hi = 2, 0x9F
	case c == 0xF0:
		need, lo = 3, 0x90
	case c >= 0xF1 && c <= 0xF3:
		need = 3
	case c == 0xF4:
		need, hi = 3, 0x8F
	default:
		return 1
	}
	n := 1
	for k := 0; k < need && n < len(b); k++ {
		x := b[n]
		if k == 0 {
			if x < lo || x > hi {
				break
			}
		} else if x < 0x80 || x > 0xBF {
			break
		}
		n++
	}
	return n
}

// validUTF8 returns s unchanged when it is valid UTF-8, else with every maximal ill-formed
// subsequence replaced by U+FFFD (see lossyUTF8).
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return lossyUTF8([]byte(s))
}
