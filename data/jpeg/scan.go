package jpeg

import "fmt"

// scan decodes one SOS segment and its entropy-coded data, leaving d.pos at the next marker.
func (d *decoder) scan(p []byte) error {
	if len(p) < 1 {
		return FormatError("empty SOS segment")
	}
	ns := int(p[0])
	if ns < 1 || ns > 4 || len(p) != 4+2*ns {
		return formatErr("SOS segment of %d bytes for %d components", len(p), ns)
	}
	d.decideColor()
	var sc [4]*component
	for i := 0; i < ns; i++ {
		id := p[1+2*i]
		var c *component
		for j := range d.comps {
			if d.comps[j].id == id {
				c = &d.comps[j]
				break
			}
		}
		if c == nil {
			return formatErr("scan refers to unknown component id %d", id)
		}
		for _, o := range sc[:i] {
			if o == c {
				return formatErr("component id %d twice in one scan", id)
			}
		}
		c.dcTab, c.acTab = int(p[2+2*i]>>4), int(p[2+2*i]&15)
		if c.dcTab > 3 || c.acTab > 3 {
			return formatErr("component %d Huffman table selectors %d/%d", id, c.dcTab, c.acTab)
		}
		// libjpeg latches each component's quantization table at its first scan.
		if c.q == nil {
			if !d.qtSet[c.tq] {
				return formatErr("quantization table %d (component %d) is not defined", c.tq, id)
			}
			q := d.qt[c.tq]
			c.q = &q
		}
		sc[i] = c
	}
	ss, se := int(p[1+2*ns]), int(p[2+2*ns])
	ah, al := int(p[3+2*ns]>>4), int(p[3+2*ns]&15)
	comps := sc[:ns]

	mode := scanBaseline
	if d.progressive {
		dc := ss == 0
		if dc && se != 0 || !dc && (ss > se || se > 63 || ns != 1) || ah != 0 && al != ah-1 || al > 13 {
			return formatErr("invalid progressive scan parameters Ss=%d Se=%d Ah=%d Al=%d (%d components)", ss, se, ah, al, ns)
		}
		switch {
		case dc && ah == 0:
			mode = scanDCFirst
		case dc:
			mode = scanDCRefine
		case ah == 0:
			mode = scanACFirst
		default:
			mode = scanACRefine
		}
	}
	// Check the Huffman tables the scan needs.
	for _, c := range comps {
		needDC := mode == scanBaseline || mode == scanDCFirst
		needAC := mode == scanBaseline || mode == scanACFirst || mode == scanACRefine
		if needDC && !d.dcTabs[c.dcTab].defined {
			return formatErr("DC Huffman table %d (component %d) is not defined", c.dcTab, c.id)
		}
		if needAC && !d.acTabs[c.acTab].defined {
			return formatErr("AC Huffman table %d (component %d) is not defined", c.acTab, c.id)
		}
	}

	// MCU geometry.
	mcusX, mcusY := d.mcusX, d.mcusY
	if ns == 1 {
		mcusX, mcusY = comps[0].wBlocks, comps[0].hBlocks
	} else {
		blocks := 0
		for _, c := range comps {
			blocks += c.h * c.v
		}
		if blocks > 10 {
			return formatErr("sampling factors too large for an interleaved scan (%d blocks per MCU)", blocks)
		}
	}

	for _, c := range comps {
		c.dcPred = 0
		c.scanned = true
		if d.progressive {
			for k := ss; k <= min(se, 9); k++ {
				c.coefBits[k] = al
			}
		}
	}
	d.eobrun = 0
	d.scans++

	var r bitReader
	r.reset(d.data, d.pos)
	var blk [64]int32
	total := mcusX * mcusY
	rstExpect := 0
	for mcu := 0; mcu < total; mcu++ {
		if d.restartInterval > 0 && mcu > 0 && mcu%d.restartInterval == 0 {
			if err := d.restart(&r, rstExpect); err != nil {
				return err
			}
			rstExpect = (rstExpect + 1) & 7
			for _, c := range comps {
				c.dcPred = 0
			}
			d.eobrun = 0
		}
		mx, my := mcu%mcusX, mcu/mcusX
		for _, c := range comps {
			if ns == 1 {
				if err := d.block(&r, c, mx, my, mode, ss, se, ah, al, &blk); err != nil {
					return err
				}
				continue
			}
			for v := 0; v < c.v; v++ {
				for h := 0; h < c.h; h++ {
					if err := d.block(&r, c, mx*c.h+h, my*c.v+v, mode, ss, se, ah, al, &blk); err != nil {
						return err
					}
				}
			}
		}
		if r.overrun() {
			return r.truncErr()
		}
	}
	// Leave d.pos at the marker that follows (libjpeg skips anything before it).
	d.pos = r.pos
	if d.pos > len(d.data) {
		d.pos = len(d.data)
	}
	return nil
}

const (
	scanBaseline = iota
	scanDCFirst
	scanDCRefine
	scanACFirst
	scanACRefine
)

// restart consumes the RSTn marker that must end a restart interval.
func (d *decoder) restart(r *bitReader, want int) error {
	if r.overrun() {
		return r.truncErr()
	}
	// Drop the buffered bits and any stray bytes, then expect the marker.
	d.pos = r.pos
	code, ok := d.nextMarker()
	if !ok {
		return fmt.Errorf("%w: scan data ends before restart marker RST%d", ErrTruncated, want)
	}
	if code != byte(mRST0+want) {
		return formatErr("expected restart marker RST%d, found 0xFF%02X", want, code)
	}
	r.reset(d.data, d.pos)
	return nil
}

// block decodes one 8x8 block at block position (bx, by) of component c.
func (d *decoder) block(r *bitReader, c *component, bx, by int, mode, ss, se, ah, al int, blk *[64]int32) error {
	switch mode {
	case scanBaseline:
		*blk = [64]int32{}
		if r.n < 32 {
			r.fill()
		}
		t, err := r.decode(&d.dcTabs[c.dcTab])
		if err != nil {
			return err
		}
		c.dcPred += r.receiveExtend(int(t))
		blk[0] = int32(int16(c.dcPred))
		ac := &d.acTabs[c.acTab]
		for k := 1; k < 64; k++ {
			if r.n < 32 {
				r.fill()
			}
			rs, err := r.decode(ac)
			if err != nil {
				return err
			}
			run, s := int(rs>>4), int(rs&15)
			if s != 0 {
				k += run
				blk[unzig[k]] = int32(int16(r.receiveExtend(s)))
			} else {
				if run != 15 {
					break
				}
				k += 15
			}
		}
		if bx < c.bw && by < c.bh {
			stride := 8 * c.bw
			idctISlow(blk, c.q, c.plane[8*by*stride+8*bx:], stride)
		}
		return nil
	}
	coef := c.coefs[64*(by*c.bw+bx):][:64]
	switch mode {
	case scanDCFirst:
		if r.n < 32 {
			r.fill()
		}
		t, err := r.decode(&d.dcTabs[c.dcTab])
		if err != nil {
			return err
		}
		c.dcPred += r.receiveExtend(int(t))
		coef[0] = int16(c.dcPred << uint(al))
	case scanDCRefine:
		if r.bit() {
			coef[0] |= int16(1 << uint(al))
		}
	case scanACFirst:
		if d.eobrun > 0 {
			d.eobrun--
			return nil
		}
		ac := &d.acTabs[c.acTab]
		for k := ss; k <= se; k++ {
			if r.n < 32 {
				r.fill()
			}
			rs, err := r.decode(ac)
			if err != nil {
				return err
			}
			run, s := int(rs>>4), int(rs&15)
			if s != 0 {
				k += run
				coef[unzig[k]] = int16(r.receiveExtend(s) << uint(al))
			} else {
				if run != 15 {
					d.eobrun = 1 << uint(run)
					if run > 0 {
						d.eobrun += r.bits(run)
					}
					d.eobrun--
					break
				}
				k += 15
			}
		}
	case scanACRefine:
		return d.acRefine(r, c, coef, ss, se, al)
	}
	return nil
}

// acRefine is a successive-approximation refinement pass over the AC band ss..se of one block.
func (d *decoder) acRefine(r *bitReader, c *component, coef []int16, ss, se, al int) error {
	p1 := int16(1 << uint(al))
	m1 := int16(-1 << uint(al))
	refine := func(i int) {
		if r.bit() && coef[i]&p1 == 0 {
			if coef[i] >= 0 {
				coef[i] += p1
			} else {
				coef[i] += m1
			}
		}
	}
	k := ss
	if d.eobrun == 0 {
		ac := &d.acTabs[c.acTab]
		for ; k <= se; k++ {
			if r.n < 32 {
				r.fill()
			}
			rs, err := r.decode(ac)
			if err != nil {
				return err
			}
			run, s := int(rs>>4), int(rs&15)
			var val int16
			if s != 0 {
				// s must be 1 (libjpeg warns otherwise and carries on).
				if r.bit() {
					val = p1
				} else {
					val = m1
				}
			} else if run != 15 {
				d.eobrun = 1 << uint(run)
				if run > 0 {
					d.eobrun += r.bits(run)
				}
				break
			}
			// Skip run zero-history coefficients (refining the nonzero ones passed on the way),
			// then place val on the next zero-history one.
			for k <= se {
				i := unzig[k]
				if coef[i] != 0 {
					if r.n < 16 {
						r.fill()
					}
					refine(i)
				} else {
					if run == 0 {
						break
					}
					run--
				}
				k++
			}
			if val != 0 {
				coef[unzig[k]] = val
			}
		}
	}
	if d.eobrun > 0 {
		for ; k <= se; k++ {
			i := unzig[k]
			if coef[i] != 0 {
				if r.n < 16 {
					r.fill()
				}
				refine(i)
			}
		}
		d.eobrun--
	}
	return nil
}
