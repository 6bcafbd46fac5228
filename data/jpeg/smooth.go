package jpeg

// Block smoothing of libjpeg-turbo 2.1 (jdcoefct.c, do_block_smoothing = TRUE): when a progressive
// file ends with some of the first nine AC coefficients of a component not fully sent (never sent,
// or missing refinement bits), libjpeg estimates the missing low-frequency AC coefficients of each
// block (and, when no AC data at all was sent, re-estimates the DC) from the DC values of the 5x5
// neighbouring blocks, before the inverse DCT. PIL's decode of such a file includes these estimates.

// The nine AC coefficients handled, in zigzag order 1..9, as natural-order positions.
var smoothPos = [10]int{0, 1, 8, 16, 9, 2, 3, 10, 17, 24}

// Kernels over the 5x5 DC neighbourhood (rows: two above .. two below; columns: two left .. two
// right). kernAC[k] is used for zigzag coefficient k when some AC data was sent; kernDCI[k] (k = 0
// for the DC itself) when none was.
var kernAC = [6][25]int64{
	1: {0, 0, 0, 0, 0 /**/, 0, 0, 0, 0, 0 /**/, -7, 50, 0, -50, 7 /**/, 0, 0, 0, 0, 0 /**/, 0, 0, 0, 0, 0},
	2: {0, 0, -7, 0, 0 /**/, 0, 0, 50, 0, 0 /**/, 0, 0, 0, 0, 0 /**/, 0, 0, -50, 0, 0 /**/, 0, 0, 7, 0, 0},
	3: {0, 0, -1, 0, 0 /**/, 0, 0, 13, 0, 0 /**/, 0, 0, -24, 0, 0 /**/, 0, 0, 13, 0, 0 /**/, 0, 0, -1, 0, 0},
	4: {0, -1, 0, 1, 0 /**/, -1, 10, 0, -10, 1 /**/, 0, 0, 0, 0, 0 /**/, 1, -10, 0, 10, -1 /**/, 0, 1, 0, -1, 0},
	5: {0, 0, 0, 0, 0 /**/, 0, 0, 0, 0, 0 /**/, -1, 13, -24, 13, -1 /**/, 0, 0, 0, 0, 0 /**/, 0, 0, 0, 0, 0},
}

var kernDCI = [10][25]int64{
	0: {-2, -6, -8, -6, -2 /**/, -6, 6, 42, 6, -6 /**/, -8, 42, 152, 42, -8 /**/, -6, 6, 42, 6, -6 /**/, -2, -6, -8, -6, -2},
	1: {-1, -1, 0, 1, 1 /**/, -3, 13, 0, -13, 3 /**/, -3, 38, 0, -38, 3 /**/, -3, 13, 0, -13, 3 /**/, -1, -1, 0, 1, 1},
	2: {-1, -3, -3, -3, -1 /**/, -1, 13, 38, 13, -1 /**/, 0, 0, 0, 0, 0 /**/, 1, -13, -38, -13, 1 /**/, 1, 3, 3, 3, 1},
	3: {0, 0, 1, 0, 0 /**/, 0, 2, 7, 2, 0 /**/, 0, -5, -14, -5, 0 /**/, 0, 2, 7, 2, 0 /**/, 0, 0, 1, 0, 0},
	4: {-1, 0, 0, 0, 1 /**/, 0, 9, 0, -9, 0 /**/, 0, 0, 0, 0, 0 /**/, 0, -9, 0, 9, 0 /**/, 1, 0, 0, 0, -1},
	5: {0, 0, 0, 0, 0 /**/, 0, 2, -5, 2, 0 /**/, 1, 7, -14, 7, 1 /**/, 0, 2, -5, 2, 0 /**/, 0, 0, 0, 0, 0},
	6: {0, 0, 0, 0, 0 /**/, 0, 1, 0, -1, 0 /**/, 0, 2, 0, -2, 0 /**/, 0, 1, 0, -1, 0 /**/, 0, 0, 0, 0, 0},
	7: {0, 0, 0, 0, 0 /**/, 0, 1, -3, 1, 0 /**/, 0, 0, 0, 0, 0 /**/, 0, -1, 3, -1, 0 /**/, 0, 0, 0, 0, 0},
	8: {0, 0, 0, 0, 0 /**/, 0, 1, 0, -1, 0 /**/, 0, -3, 0, 3, 0 /**/, 0, 1, 0, -1, 0 /**/, 0, 0, 0, 0, 0},
	9: {0, 0, 0, 0, 0 /**/, 0, 1, 2, 1, 0 /**/, 0, 0, 0, 0, 0 /**/, 0, -1, -2, -1, 0 /**/, 0, 0, 0, 0, 0},
}

// smoothingNeeded is libjpeg's smoothing_ok: every component has a quantization table with nonzero
// entries at the ten positions used, some DC data, and at least one component has one of AC 1..9
// not fully known.
func (d *decoder) smoothingNeeded() bool {
	useful := false
	for i := range d.comps {
		c := &d.comps[i]
		if c.q == nil || c.coefBits[0] < 0 {
			return false
		}
		for _, p := range smoothPos {
			if c.q[p] == 0 {
				return false
			}
		}
		for k := 1; k < 10; k++ {
			if c.coefBits[k] != 0 {
				useful = true
			}
		}
	}
	return useful
}

// smoothComponent runs the inverse DCT of component c with libjpeg's block smoothing. Only the
// blocks libjpeg outputs (wBlocks x hBlocks) are written.
func (d *decoder) smoothComponent(c *component) {
	bits := &c.coefBits
	changeDC := true
	for k := 1; k < 10; k++ {
		changeDC = changeDC && bits[k] == -1
	}
	var q [10]int64
	for k, p := range smoothPos {
		q[k] = int64(uint16(c.q[p])) // libjpeg reads the table's 16-bit values here
	}
	dcAt := func(by, bx int) int64 { return int64(c.coefs[64*(by*c.bw+bx)]) }
	lastRow := d.mcusY - 1 // last iMCU row
	lastCol := c.wBlocks - 1
	stride := 8 * c.bw
	var ws [64]int32
	var dc [25]int64
	for by := 0; by < c.hBlocks; by++ {
		R, br := by/c.v, by%c.v // iMCU row and block row within it
		blockRows := c.v
		if R == lastRow {
			if blockRows = c.hBlocks % c.v; blockRows == 0 {
				blockRows = c.v
			}
		}
		// The neighbouring block rows libjpeg uses (its buffer-access rules, edges included).
		prev := by
		if br > 0 || R > 0 {
			prev = by - 1
		}
		prev2 := prev
		if br > 1 || R > 1 {
			prev2 = by - 2
		}
		next := by
		if br < blockRows-1 || R < lastRow {
			next = by + 1
		}
		next2 := next
		if br < blockRows-2 || R+1 < lastRow {
			next2 = by + 2
		}
		rows := [5]int{prev2, prev, by, next, next2}
		// Sliding registers, initialised to column 0 as libjpeg does (also for narrow images).
		for r := 0; r < 5; r++ {
			v := dcAt(rows[r], 0)
			for k := 0; k < 5; k++ {
				dc[5*r+k] = v
			}
		}
		for bx := 0; bx <= lastCol; bx++ {
			blk := c.coefs[64*(by*c.bw+bx):][:64]
			if bx == 0 && bx < lastCol {
				for r := 0; r < 5; r++ {
					dc[5*r+3] = dcAt(rows[r], 1)
				}
			}
			if bx+1 < lastCol {
				for r := 0; r < 5; r++ {
					dc[5*r+4] = dcAt(rows[r], bx+2)
				}
			}
			for i, v := range blk {
				ws[i] = int32(v)
			}
			nAC := 5
			if changeDC {
				nAC = 9
			}
			for k := 1; k <= nAC; k++ {
				al := bits[k]
				p := smoothPos[k]
				if al == 0 || ws[p] != 0 {
					continue
				}
				var kern *[25]int64
				if changeDC {
					kern = &kernDCI[k]
				} else {
					kern = &kernAC[k]
				}
				ws[p] = int32(int16(predict(q[0]*dot(kern, &dc), q[k], al)))
			}
			if changeDC {
				ws[0] = int32(int16(predict(q[0]*dot(&kernDCI[0], &dc), q[0], 0)))
			}
			idctISlow(&ws, c.q, c.plane[8*by*stride+8*bx:], stride)
			// Slide the window one column right.
			for r := 0; r < 5; r++ {
				copy(dc[5*r:5*r+4], dc[5*r+1:5*r+5])
			}
		}
	}
}

func dot(k, dc *[25]int64) int64 {
	s := int64(0)
	for i := range k {
		s += k[i] * dc[i]
	}
	return s
}

// predict rounds num / (256 q) to nearest (ties away from zero) and, for a coefficient whose
// low al bits are unknown (al > 0), limits the magnitude to what those bits could hold.
func predict(num, q int64, al int) int64 {
	neg := num < 0
	if neg {
		num = -num
	}
	p := ((q << 7) + num) / (q << 8)
	if al > 0 && p >= 1<<uint(al) {
		p = 1<<uint(al) - 1
	}
	if neg {
		p = -p
	}
	return p
}
