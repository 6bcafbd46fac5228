#!/usr/bin/env python3
"""Writes the fixtures of package data/jpeg (run with /usr/bin/python3; writes next to this file).

Each case is NAME.jpg plus the reference decode PIL gives TinyLLaVA-style,
Image.open(NAME.jpg).convert("RGB").tobytes(), as NAME.rgb (raw HWC uint8). Large cases store only
the SHA-256 of those bytes. manifest.json lists every case with PIL's and libjpeg-turbo's versions.

Most files are written by PIL's encoder (libjpeg-turbo). PIL 9.4 cannot write restart markers,
4:4:0 or 4:1:1 sampling, Adobe-RGB, YCCK or a progressive file with restart intervals, so a small
encoder below (sequential or spectral-selection progressive Huffman JPEG, flat Huffman codes)
writes those; PIL still decodes them for the reference.
"""
import hashlib
import io
import json
import os

import numpy as np
from PIL import Image, features

HERE = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(20260511)
cases = []


def photo(w, h, noise=12.0, seed=0):
    """Photo-like RGB content: smooth gradients, a few soft shapes, sharp edges and sensor noise."""
    r = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    u, v = xx / max(w - 1, 1), yy / max(h - 1, 1)
    img = np.stack([200 * u + 30, 160 * v + 50, 120 + 100 * np.sin(6 * u + 3 * v)], axis=-1)
    for _ in range(6):
        cx, cy, rad = r.uniform(0, 1), r.uniform(0, 1), r.uniform(0.1, 0.35)
        col = r.uniform(0, 255, 3)
        m = np.exp(-(((u - cx) ** 2 + (v - cy) ** 2) / rad**2) * 3)
        img = img * (1 - m[..., None]) + col * m[..., None]
    # a hard-edged rectangle and a thin diagonal line (ringing, chroma edges)
    img[(u > 0.6) & (u < 0.8) & (v > 0.2) & (v < 0.7)] = (250, 20, 40)
    img[np.abs(u - v) < 1.5 / max(w, h)] = (10, 10, 10)
    img += r.normal(0, noise, img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def add(name, data, big=False, note=""):
    path = os.path.join(HERE, name + ".jpg")
    with open(path, "wb") as f:
        f.write(data)
    im = Image.open(path)
    mode = im.mode
    rgb = im.convert("RGB").tobytes()
    w, h = im.size
    case = {"name": name, "w": w, "h": h, "pil_mode": mode, "note": note}
    if big:
        case["sha256"] = hashlib.sha256(rgb).hexdigest()
    else:
        with open(os.path.join(HERE, name + ".rgb"), "wb") as f:
            f.write(rgb)
    cases.append(case)


def pil_jpeg(arr, mode="RGB", **kw):
    im = Image.fromarray(arr, "RGB" if arr.ndim == 3 and arr.shape[2] == 3 else None)
    if mode != im.mode:
        im = im.convert(mode)
    b = io.BytesIO()
    im.save(b, "JPEG", **kw)
    return b.getvalue()


# ---------------------------------------------------------------- files written by PIL (libjpeg-turbo)
add("q75_444_40x30", pil_jpeg(photo(40, 30, seed=1), quality=75, subsampling=0), note="baseline 4:4:4")
add("q50_422_37x23", pil_jpeg(photo(37, 23, seed=2), quality=50, subsampling=1), note="baseline 4:2:2, odd size")
add("q95_420_37x23", pil_jpeg(photo(37, 23, seed=3), quality=95, subsampling=2), note="baseline 4:2:0, odd size")
add("q75_420_1x1", pil_jpeg(photo(1, 1, seed=4), quality=75, subsampling=2), note="1x1")
add("q75_420_17x9", pil_jpeg(photo(17, 9, seed=5), quality=75, subsampling=2), note="17x9 (chroma 9x5)")
add("q75_420_3x5", pil_jpeg(photo(3, 5, seed=6), quality=75, subsampling=2), note="chroma width 2: box upsampling")
add("q60_422_opt_23x17", pil_jpeg(photo(23, 17, seed=7), quality=60, subsampling=1, optimize=True), note="optimized Huffman")
add("q75_420_prog_48x40", pil_jpeg(photo(48, 40, seed=8), quality=75, subsampling=2, progressive=True),
    note="progressive, successive approximation")
add("q90_444_prog_opt_33x21", pil_jpeg(photo(33, 21, seed=9), quality=90, subsampling=0, progressive=True, optimize=True),
    note="progressive 4:4:4, optimized")
add("q80_gray_19x13", pil_jpeg(photo(19, 13, seed=10), mode="L", quality=80), note="grayscale")
add("q70_gray_prog_21x11", pil_jpeg(photo(21, 11, seed=11), mode="L", quality=70, progressive=True), note="grayscale progressive")
add("q90_cmyk_16x12", pil_jpeg(photo(16, 12, seed=12), mode="CMYK", quality=90), note="CMYK, Adobe transform 0")
add("q100_444_16x16", pil_jpeg(photo(16, 16, noise=60, seed=13), quality=100, subsampling=0), note="quality 100, heavy noise")


# ---------------------------------------------------------------- a small JPEG encoder for the rest
ZIGZAG = sorted(range(64), key=lambda i: (i // 8 + i % 8, (i // 8) if (i // 8 + i % 8) % 2 else -(i // 8)))
STD_LUMA_Q = [16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
              14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
              49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99]


def dct_matrix():
    c = np.array([[np.sqrt((1 if k == 0 else 2) / 8) * np.cos((2 * n + 1) * k * np.pi / 16) for n in range(8)]
                  for k in range(8)])
    return c


DCT = dct_matrix()


def seg(marker, payload):
    return bytes([0xFF, marker]) + (len(payload) + 2).to_bytes(2, "big") + payload


def magnitude(v):
    n = int(abs(v)).bit_length()
    bits = v if v >= 0 else v + (1 << n) - 1
    return n, bits


class BitWriter:
    def __init__(self):
        self.out = bytearray()
        self.acc = 0
        self.n = 0

    def put(self, bits, n):
        for i in range(n - 1, -1, -1):
            self.acc = (self.acc << 1) | ((bits >> i) & 1)
            self.n += 1
            if self.n == 8:
                self.out.append(self.acc)
                if self.acc == 0xFF:
                    self.out.append(0)
                self.acc = self.n = 0

    def align(self):
        if self.n:
            self.put((1 << (8 - self.n)) - 1, 8 - self.n)


def flat_table(symbols):
    """A valid canonical code giving every used symbol the same length (no all-ones code)."""
    syms = sorted(set(symbols))
    n = max(1, (len(syms)).bit_length())
    if len(syms) == (1 << n) - 1 or len(syms) >= (1 << n):
        n += 1
    counts = [0] * 16
    counts[n - 1] = len(syms)
    codes = {s: (i, n) for i, s in enumerate(syms)}
    return bytes(counts) + bytes(syms), codes


def encode(planes, factors, ids, quality_q, app=b"", restart=0, progressive=False, qscale=1.0, plan=None):
    """planes: full-resolution uint8 arrays (h, w), one per component; factors: (h, v) per component."""
    H, W = planes[0].shape
    mh, mv = max(f[0] for f in factors), max(f[1] for f in factors)
    mcux, mcuy = -(-W // (8 * mh)), -(-H // (8 * mv))
    q = np.maximum(1, np.round(np.array(STD_LUMA_Q, dtype=np.float64) * qscale)).astype(int)
    qnat = np.zeros(64, int)
    for k in range(64):
        qnat[ZIGZAG[k]] = q[ZIGZAG[k]]
    comps = []
    for p, (h, v) in zip(planes, factors):
        fx, fy = mh // h, mv // v
        dw, dh = -(-W * h // mh), -(-H * v // mv)
        padp = np.pad(p.astype(np.float64), ((0, dh * fy - H), (0, dw * fx - W)), mode="edge")
        ds = padp.reshape(dh, fy, dw, fx).mean(axis=(1, 3))
        bw, bh = (mcux * h, mcuy * v) if len(planes) > 1 else (-(-dw // 8), -(-dh // 8))
        full = np.pad(ds, ((0, bh * 8 - dh), (0, bw * 8 - dw)), mode="edge") - 128
        blocks = np.zeros((bh, bw, 64), int)
        for by in range(bh):
            for bx in range(bw):
                f = DCT @ full[by * 8:by * 8 + 8, bx * 8:bx * 8 + 8] @ DCT.T
                blocks[by, bx] = np.round(f.reshape(64) / qnat)
        comps.append(dict(h=h, v=v, blocks=blocks, wb=-(-dw // 8), hb=-(-dh // 8)))

    def mcus(sel):
        """(component index, block) in MCU order for a scan over the components sel."""
        if len(sel) == 1:
            c = comps[sel[0]]
            return [[(sel[0], c["blocks"][by, bx])] for by in range(c["hb"]) for bx in range(c["wb"])]
        res = []
        for my in range(mcuy):
            for mx in range(mcux):
                m = []
                for ci in sel:
                    c = comps[ci]
                    for v in range(c["v"]):
                        for h in range(c["h"]):
                            m.append((ci, c["blocks"][my * c["v"] + v, mx * c["h"] + h]))
                res.append(m)
        return res

    def scan(sel, ss, se):
        """Returns (tables segment, SOS segment + entropy-coded data) of one scan (Ah = Al = 0)."""
        units = mcus(sel)
        events = []  # per MCU: list of (cls, symbol, bits, nbits) ; None marks a restart point
        pred = {ci: 0 for ci in sel}
        eobrun = 0

        def flush(ev):
            nonlocal eobrun
            if eobrun:
                r = eobrun.bit_length() - 1
                ev.append((1, r << 4, eobrun - (1 << r), r))
                eobrun = 0

        for i, mcu in enumerate(units):
            if restart and i and i % restart == 0:
                flush(events)
                events.append(None)
                pred = {ci: 0 for ci in sel}
            for ci, blk in mcu:
                zz = [int(blk[ZIGZAG[k]]) for k in range(64)]
                if ss == 0:
                    d = zz[0] - pred[ci]
                    pred[ci] = zz[0]
                    n, b = magnitude(d)
                    events.append((0, n, b, n))
                    if se == 0:
                        continue
                band = zz[max(ss, 1):se + 1]
                last = max((k for k, x in enumerate(band) if x), default=-1)
                if progressive and last < 0:
                    eobrun += 1
                    if eobrun == 0x7FFF:
                        flush(events)
                    continue
                if progressive:
                    flush(events)
                run = 0
                for k in range(last + 1):
                    x = band[k]
                    if x == 0:
                        run += 1
                        continue
                    while run > 15:
                        events.append((1, 0xF0, 0, 0))
                        run -= 16
                    n, b = magnitude(x)
                    events.append((1, (run << 4) | n, b, n))
                    run = 0
                if last < len(band) - 1:
                    if progressive:
                        eobrun += 1
                        if eobrun == 0x7FFF:
                            flush(events)
                    else:
                        events.append((1, 0, 0, 0))
        flush(events)
        tabs, codes = b"", [None, None]
        for cls in (0, 1):
            syms = [e[1] for e in events if e and e[0] == cls]
            if syms:
                spec, codes[cls] = flat_table(syms)
                tabs += seg(0xC4, bytes([cls << 4]) + spec)
        bw = BitWriter()
        rst = 0
        for e in events:
            if e is None:
                bw.align()
                bw.out += bytes([0xFF, 0xD0 + rst])
                rst = (rst + 1) & 7
                continue
            code, n = codes[e[0]][e[1]]
            bw.put(code, n)
            bw.put(e[2], e[3])
        bw.align()
        sos = bytes([len(sel)]) + b"".join(bytes([ids[ci], 0x00]) for ci in sel) + bytes([ss, se, 0])
        return tabs, seg(0xDA, sos) + bytes(bw.out)

    out = b"\xFF\xD8" + app
    out += seg(0xDB, bytes([0]) + bytes(int(q[ZIGZAG[k]]) for k in range(64)))
    sof = bytes([8]) + H.to_bytes(2, "big") + W.to_bytes(2, "big") + bytes([len(planes)])
    sof += b"".join(bytes([ids[i], (f[0] << 4) | f[1], 0]) for i, f in enumerate(factors))
    out += seg(0xC2 if progressive else 0xC0, sof)
    if restart:
        out += seg(0xDD, restart.to_bytes(2, "big"))
    if plan is not None:
        pass
    elif progressive:
        plan = [(list(range(len(planes))), 0, 0)]
        for ci in range(len(planes)):
            plan += [([ci], 1, 5), ([ci], 6, 63)]
    else:
        plan = [(list(range(len(planes))), 0, 63)]
    for sel, ss, se in plan:
        t, s = scan(sel, ss, se)
        out += t + s
    return out + b"\xFF\xD9"


JFIF = seg(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")


def adobe(transform):
    return seg(0xEE, b"Adobe\x00\x64\x00\x00\x00\x00" + bytes([transform]))


def ycc(arr):
    a = arr.astype(np.float64)
    y = 0.299 * a[..., 0] + 0.587 * a[..., 1] + 0.114 * a[..., 2]
    cb = 128 - 0.168736 * a[..., 0] - 0.331264 * a[..., 1] + 0.5 * a[..., 2]
    cr = 128 + 0.5 * a[..., 0] - 0.418688 * a[..., 1] - 0.081312 * a[..., 2]
    return [np.clip(np.round(c), 0, 255) for c in (y, cb, cr)]


p = photo(29, 19, seed=20)
add("enc_420_rst2_29x19", encode(ycc(p), [(2, 2), (1, 1), (1, 1)], [1, 2, 3], None, JFIF, restart=2),
    note="restart interval 2 MCUs")
p = photo(26, 22, seed=21)
add("enc_440_rst1_26x22", encode(ycc(p), [(1, 2), (1, 1), (1, 1)], [1, 2, 3], None, JFIF, restart=1),
    note="4:4:0 (h1v2 fancy upsampling), restart every MCU")
p = photo(35, 13, seed=22)
add("enc_411_35x13", encode(ycc(p), [(4, 1), (1, 1), (1, 1)], [1, 2, 3], None, JFIF, qscale=0.5),
    note="4:1:1: box replication")
p = photo(20, 14, seed=23)
add("enc_adobe_rgb_20x14", encode([p[..., i] for i in range(3)], [(1, 1)] * 3, [1, 2, 3], None, adobe(0)),
    note="Adobe transform 0: RGB, no colour conversion")
p = photo(18, 10, seed=24)
add("enc_rgb_ids_18x10", encode([p[..., i] for i in range(3)], [(1, 1)] * 3, [82, 71, 66], None),
    note="no JFIF/Adobe, component ids R G B")
p = photo(22, 18, seed=25)
k = np.clip(np.round(40 + 60 * np.linspace(0, 1, 22)[None, :] + np.zeros((18, 1))), 0, 255)
add("enc_ycck_420_22x18", encode(ycc(255 - p) + [k], [(2, 2), (1, 1), (1, 1), (2, 2)], [1, 2, 3, 4], None, adobe(2)),
    note="YCCK (Adobe transform 2), subsampled chroma")
p = photo(41, 27, seed=26)
add("enc_prog_rst3_41x27", encode(ycc(p), [(2, 2), (1, 1), (1, 1)], [1, 2, 3], None, JFIF, restart=3, progressive=True),
    note="progressive (spectral selection, EOB runs) with restart interval 3")
p = photo(30, 20, seed=27)
add("enc_prog_422_30x20", encode(ycc(p), [(2, 1), (1, 1), (1, 1)], [1, 2, 3], None, JFIF, progressive=True, qscale=2.0),
    note="progressive 4:2:2, long EOB runs")


# ---------------------------------------------------------------- incomplete progression: block smoothing
def keep_scans(data, n):
    """The first n scans of a JPEG followed by EOI (what PIL with LOAD_TRUNCATED_IMAGES decodes)."""
    pos, seen = 2, 0
    while True:
        assert data[pos] == 0xFF
        marker, length = data[pos + 1], int.from_bytes(data[pos + 2:pos + 4], "big")
        pos += 2 + length
        if marker != 0xDA:
            continue
        seen += 1
        while not (data[pos] == 0xFF and data[pos + 1] not in (0x00, *range(0xD0, 0xD8))):
            pos += 1
        if seen == n:
            return data[:pos] + b"\xFF\xD9"


prog = pil_jpeg(photo(64, 56, seed=40), quality=75, subsampling=2, progressive=True)
add("prog_cut2_64x56", keep_scans(prog, 2),
    note="first 2 scans of libjpeg's script (DC Al=1, Y AC1-5 Al=2): smoothing, DC re-estimated for chroma")
add("prog_cut6_64x56", keep_scans(prog, 6), note="first 6 scans (all AC with Al=1): smoothing with clamped estimates")
p = photo(70, 50, seed=41)
add("enc_prog_dcchroma_70x50", encode(ycc(p), [(2, 2), (1, 1), (1, 1)], [1, 2, 3], None, JFIF, progressive=True,
                                      plan=[([0, 1, 2], 0, 0), ([0], 1, 2), ([0], 3, 63)]),
    note="progressive, chroma DC only: smoothing")

# ---------------------------------------------------------------- benchmark-size photo (hash only)
add("photo_640x480", pil_jpeg(photo(640, 480, noise=6, seed=30), quality=85, subsampling=2), big=True,
    note="640x480 4:2:0 q85, benchmark")
add("photo_prog_640x480", pil_jpeg(photo(640, 480, noise=6, seed=31), quality=85, subsampling=2, progressive=True), big=True,
    note="640x480 progressive")

with open(os.path.join(HERE, "manifest.json"), "w") as f:
    json.dump({"pil_version": Image.__version__, "libjpeg_turbo": features.version("libjpeg_turbo"), "cases": cases}, f, indent=1)
print(len(cases), "cases")
