#!/usr/bin/env python3
"""Generates the image fixtures of package data (run from anywhere; writes next to this file).

Reference behaviour is PIL's (Pillow 9.4 here), as TinyLLaVA + Hugging Face image processors use it:
  * Image.open(path).convert("RGB")
  * img.resize((w, h), Image.BICUBIC)          (HF resize calls PIL with reducing_gap=None)
  * TinyLLaVA expand2square(img, tuple(int(x * 255) for x in image_mean))
  * HF rescale/normalize: float32(float64(u8) * (1/255)), then (x - mean) / std in float32.

Outputs (all small):
  images/*                      the inputs
  expected/<case>.rgb           raw uint8 RGB (HWC) results
  expected/<case>.f32           raw little-endian float32 CHW results
  manifest.json                 what each expected file is
"""
import io
import json
import os

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
IMG = os.path.join(HERE, "images")
EXP = os.path.join(HERE, "expected")
os.makedirs(IMG, exist_ok=True)
os.makedirs(EXP, exist_ok=True)
rng = np.random.default_rng(20260422)

manifest = {"pil_version": Image.__version__, "convert": [], "resize": [], "pad": [], "preprocess": []}


def smooth_rgb(w, h, noise=40):
    """A gradient + noise RGB array (h, w, 3) uint8: smooth areas plus texture."""
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([
        255.0 * xx / max(w - 1, 1),
        255.0 * yy / max(h - 1, 1),
        127.5 + 127.5 * np.sin(xx * 0.7 + yy * 0.4),
    ], axis=-1)
    arr = base + rng.normal(0, noise, size=base.shape)
    return np.clip(np.round(arr), 0, 255).astype(np.uint8)


def save_input(name, im, **kw):
    path = os.path.join(IMG, name)
    im.save(path, **kw)
    return path


def write_rgb(case, im):
    assert im.mode == "RGB"
    arr = np.asarray(im, dtype=np.uint8)
    fn = case + ".rgb"
    arr.tofile(os.path.join(EXP, fn))
    return {"w": im.size[0], "h": im.size[1], "expected": "expected/" + fn}


def add_convert(name):
    im = Image.open(os.path.join(IMG, name))
    mode = im.mode
    rgb = im.convert("RGB")
    entry = {"image": "images/" + name, "pil_mode": mode}
    entry.update(write_rgb("convert_" + name.replace(".", "_"), rgb))
    manifest["convert"].append(entry)
    return rgb


# ---- inputs -------------------------------------------------------------------------------------
# RGB, non-square, used for the upscale/downscale mix 37x23 -> 28x28.
save_input("rgb_37x23.png", Image.fromarray(smooth_rgb(37, 23)))

# RGBA with every kind of alpha, including 0 over non-zero colour and 255.
a = smooth_rgb(100, 60)
alpha = rng.integers(0, 256, size=(60, 100), dtype=np.uint8)
alpha[:5] = 0
alpha[5:10] = 255
alpha[10:15] = 1
save_input("rgba_100x60.png", Image.fromarray(np.dstack([a, alpha]), "RGBA"))

# Greyscale, tiny square (upscale 9x9 -> 28x28).
save_input("l_9x9.png", Image.fromarray(smooth_rgb(9, 9)[..., 0], "L"))

# Grey + alpha.
g = smooth_rgb(15, 11)[..., 1]
save_input("la_15x11.png", Image.fromarray(np.dstack([g, rng.integers(0, 256, (11, 15), dtype=np.uint8)]), "LA"))

# Palette with several transparent entries (tRNS with per-index alpha).
pal_idx = rng.integers(0, 16, size=(13, 20), dtype=np.uint8)
p = Image.fromarray(pal_idx, "P")
palette = rng.integers(0, 256, size=16 * 3, dtype=np.uint8).tolist()
p.putpalette(palette)
save_input("p_trans_20x13.png", p, transparency=bytes([0, 128, 255, 7] + [255] * 12))

# Palette GIF with a transparent index whose stored colour is not black.
gp = Image.fromarray(rng.integers(0, 8, size=(10, 12), dtype=np.uint8), "P")
gpal = rng.integers(1, 256, size=8 * 3, dtype=np.uint8).tolist()
gp.putpalette(gpal)
save_input("p_trans_12x10.gif", gp, transparency=3)

# 16-bit greyscale PNG (PIL mode "I"): RGB conversion clips at 255.
g16 = rng.integers(0, 600, size=(4, 6)).astype(np.uint16)
g16[0, :3] = [0, 255, 65535]
save_input("gray16_6x4.png", Image.fromarray(g16, "I;16"))

# Tall RGB for the pad option.
save_input("rgb_13x30.png", Image.fromarray(smooth_rgb(13, 30)))

# A bigger noisy RGB for resize stress tests.
save_input("noise_61x47.png", Image.fromarray(rng.integers(0, 256, size=(47, 61, 3), dtype=np.uint8)))

# JPEGs: 4:4:4, 4:2:0 (odd size), 4:2:2, greyscale, CMYK. Smooth content (photo-like).
jp = Image.fromarray(smooth_rgb(40, 30, noise=10))
save_input("jpeg444_40x30.jpg", jp, quality=92, subsampling=0)
save_input("jpeg420_41x31.jpg", Image.fromarray(smooth_rgb(41, 31, noise=10)), quality=92, subsampling=2)
save_input("jpeg422_40x30.jpg", jp, quality=92, subsampling=1)
save_input("jpegL_20x20.jpg", Image.fromarray(smooth_rgb(20, 20, noise=10)[..., 0], "L"), quality=92)
save_input("jpegCMYK_16x12.jpg", Image.fromarray(smooth_rgb(16, 12, noise=10)).convert("CMYK"), quality=95)

# BMP (24-bit).
save_input("rgb_10x7.bmp", Image.fromarray(smooth_rgb(10, 7)))

# ---- convert("RGB") -------------------------------------------------------------------------------
for name in sorted(os.listdir(IMG)):
    add_convert(name)


def rgb_of(name):
    return Image.open(os.path.join(IMG, name)).convert("RGB")


# ---- resize ---------------------------------------------------------------------------------------
for name, (w, h) in [
    ("rgb_37x23.png", (28, 28)),
    ("rgba_100x60.png", (56, 56)),
    ("l_9x9.png", (28, 28)),
    ("noise_61x47.png", (96, 96)),
    ("noise_61x47.png", (20, 20)),
    ("noise_61x47.png", (33, 71)),
    ("noise_61x47.png", (61, 30)),
    ("rgb_13x30.png", (5, 3)),
]:
    out = rgb_of(name).resize((w, h), Image.BICUBIC)
    entry = {"image": "images/" + name, "in_w": out.size[0], "in_h": out.size[1]}
    entry.update(write_rgb("resize_%s_%dx%d" % (name.split(".")[0], w, h), out))
    manifest["resize"].append(entry)


# ---- pad (TinyLLaVA expand2square) ---------------------------------------------------------------
def expand2square(pil_img, background_color):
    width, height = pil_img.size
    if width == height:
        return pil_img
    elif width > height:
        result = Image.new(pil_img.mode, (width, width), background_color)
        result.paste(pil_img, (0, (width - height) // 2))
        return result
    else:
        result = Image.new(pil_img.mode, (height, height), background_color)
        result.paste(pil_img, ((height - width) // 2, 0))
        return result


SIGLIP_MEAN = [0.5, 0.5, 0.5]
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
for name, mean in [("rgb_37x23.png", SIGLIP_MEAN), ("rgb_13x30.png", CLIP_MEAN), ("rgba_100x60.png", SIGLIP_MEAN)]:
    bg = tuple(int(x * 255) for x in mean)
    out = expand2square(rgb_of(name), bg)
    entry = {"image": "images/" + name, "bg": list(bg)}
    entry.update(write_rgb("pad_" + name.split(".")[0], out))
    manifest["pad"].append(entry)


# ---- full preprocessing (pad -> bicubic -> rescale -> normalize), HF arithmetic --------------------
def hf_like(img, size, mean, std):
    arr = np.asarray(img.resize((size, size), Image.BICUBIC), dtype=np.uint8)
    x = (arr.astype(np.float64) * (1 / 255)).astype(np.float32)
    x = (x - np.array(mean, dtype=np.float32)) / np.array(std, dtype=np.float32)
    return x.transpose(2, 0, 1).astype(np.float32)


for name, size, mean, std, pad in [
    ("rgb_37x23.png", 28, [0.5, 0.5, 0.5], [0.5, 0.5, 0.5], True),
    ("rgb_13x30.png", 24, CLIP_MEAN, [0.26862954, 0.26130258, 0.27577711], False),
]:
    img = rgb_of(name)
    if pad:
        img = expand2square(img, tuple(int(x * 255) for x in mean))
    x = hf_like(img, size, mean, std)
    fn = "preprocess_%s_%d.f32" % (name.split(".")[0], size)
    x.astype("<f4").tofile(os.path.join(EXP, fn))
    manifest["preprocess"].append({"image": "images/" + name, "size": size, "mean": mean, "std": std,
                                   "pad": pad, "expected": "expected/" + fn})

with open(os.path.join(HERE, "manifest.json"), "w") as f:
    json.dump(manifest, f, indent=1)
    f.write("\n")
print("ok", sum(os.path.getsize(os.path.join(d, n)) for d in (IMG, EXP) for n in os.listdir(d)), "bytes")
