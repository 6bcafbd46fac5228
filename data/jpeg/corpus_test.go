package jpeg

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCorpus compares against PIL on a directory of NAME.jpg + NAME.jpg.rgb pairs (PIL's
// Image.open(NAME.jpg).convert("RGB").tobytes()), named by $JPEG_CORPUS. Skipped without it.
func TestCorpus(t *testing.T) {
	dir := os.Getenv("JPEG_CORPUS")
	if dir == "" {
		t.Skip("JPEG_CORPUS not set")
	}
	names, _ := filepath.Glob(filepath.Join(dir, "*.rgb"))
	bad := 0
	for _, rgbPath := range names {
		path := strings.TrimSuffix(rgbPath, ".rgb")
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := os.ReadFile(rgbPath)
		img, err := DecodeBytes(raw)
		if err != nil {
			t.Errorf("%s: %v", filepath.Base(path), err)
			bad++
			continue
		}
		n, maxd := diffCount(img.Pix, want)
		if n != 0 {
			bad++
			t.Errorf("%s: %d of %d values differ (max |diff| %d)", filepath.Base(path), n, len(want), maxd)
		} else {
			t.Logf("%s: exact (%dx%d)", filepath.Base(path), img.W, img.H)
		}
	}
	t.Logf("%d of %d files not exact", bad, len(names))
}

func diffCount(got, want []uint8) (n, maxd int) {
	if len(got) != len(want) {
		return max(len(got), len(want)), 255
	}
	for i := range got {
		d := int(got[i]) - int(want[i])
		if d < 0 {
			d = -d
		}
		if d != 0 {
			n++
			maxd = max(maxd, d)
		}
	}
	return
}
