#!/usr/bin/env python3
"""Independent float64 PyTorch reference for TinyLLaVA (SigLIP -> connector -> Qwen2).

Written from scratch for switchkd's Go parity tests: no Hugging Face library is used.
The tokenizer, the safetensors reader/writer, the template, the label masking, the image
preprocessing and the model are all implemented here, following the conventions of
TinyLLaVA Factory (qwen2_base template, prepare_inputs_labels_for_multimodal) and of the
transformers SigLIP / Qwen2 models.

Commands (see reference/README.md):
  fixtures [--out testdata/models]     regenerate the tiny fixture configurations (deterministic)
  check    [--dir testdata/models]     recompute every fixture from its files and compare
  bench    --out DIR [--time]          real-shape random BF16 checkpoint (+ float32 CPU timing)
"""

import argparse
import collections
import json
import math
import os
import struct
import sys
import time
import unicodedata

import numpy as np
import regex
import torch
import torch.nn.functional as F
from PIL import Image

IGNORE_INDEX = -100
IMAGE_TOKEN_INDEX = -200
DEFAULT_IMAGE_TOKEN = "<image>"
EOS_TOKEN = "<|endoftext|>"
SYSTEM = ("A chat between a curious user and an artificial intelligence assistant. "
          "The assistant gives helpful, detailed, and polite answers to the user's questions.")
SEP = " ASSISTANT: "
QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
                 r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
ADDED_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
FORMAT_VERSION = "switchkd-tinyllava-ref/1"

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


# ----------------------------------------------------------------------------------------------
# Byte-level BPE tokenizer (Hugging Face tokenizer.json, Qwen2 style)
# ----------------------------------------------------------------------------------------------

def bytes_to_unicode():
    """GPT-2 byte -> printable unicode map. Its order also defines base token ids 0..255."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + \
        list(range(ord("\xae"), ord("\xff") + 1))
    cs = list(bs)
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [(b, chr(c)) for b, c in zip(bs, cs)]


B2U_LIST = bytes_to_unicode()
B2U = dict(B2U_LIST)
U2B = {u: b for b, u in B2U_LIST}


def split_isolated(pattern, text):
    """Split pre-tokenizer with behavior Isolated: every match is a piece, and so is every gap."""
    out = []
    pos = 0
    for m in pattern.finditer(text):
        if m.start() > pos:
            out.append(text[pos:m.start()])
        if m.end() > m.start():
            out.append(m.group(0))
        pos = m.end()
    if pos < len(text):
        out.append(text[pos:])
    return out


class BPETokenizer:
    """Encoder/decoder for a byte-level BPE tokenizer.json (NFC, Split Isolated, ByteLevel)."""

    def __init__(self, tj):
        model = tj["model"]
        assert model["type"] == "BPE"
        self.vocab = dict(model["vocab"])
        pairs = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
        self.ranks = {p: i for i, p in enumerate(pairs)}
        self.added = {t["content"]: t["id"] for t in tj["added_tokens"]}
        self.special_ids = {t["id"] for t in tj["added_tokens"] if t.get("special")}
        self.id_to_token = {i: t for t, i in self.vocab.items()}
        for t, i in self.added.items():
            self.id_to_token[i] = t
        pre = tj["pre_tokenizer"]
        pres = pre["pretokenizers"] if pre["type"] == "Sequence" else [pre]
        split = [p for p in pres if p["type"] == "Split"][0]
        assert split["behavior"] == "Isolated" and not split.get("invert", False)
        self.pattern = regex.compile(split["pattern"]["Regex"])
        norm = tj.get("normalizer")
        self.nfc = norm is not None and norm.get("type") == "NFC"
        # longest alternative first: leftmost-longest match of added tokens
        names = sorted(self.added, key=lambda s: (-len(s), s))
        self.added_re = regex.compile("|".join(regex.escape(s) for s in names)) if names else None
        self.cache = {}

    @property
    def size(self):
        return len(self.id_to_token)

    def bpe(self, word):
        if word in self.cache:
            return self.cache[word]
        parts = list(word)
        while len(parts) > 1:
            best, best_rank = None, None
            for i in range(len(parts) - 1):
                r = self.ranks.get((parts[i], parts[i + 1]))
                if r is not None and (best_rank is None or r < best_rank):
                    best, best_rank = (parts[i], parts[i + 1]), r
            if best is None:
                break
            merged = []
            i = 0
            while i < len(parts):
                if i < len(parts) - 1 and (parts[i], parts[i + 1]) == best:
                    merged.append(parts[i] + parts[i + 1])
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = merged
        self.cache[word] = parts
        return parts

    def encode_ordinary(self, text):
        if self.nfc:
            text = unicodedata.normalize("NFC", text)
        ids = []
        for piece in split_isolated(self.pattern, text):
            word = "".join(B2U[b] for b in piece.encode("utf-8"))
            ids.extend(self.vocab[t] for t in self.bpe(word))
        return ids

    def encode(self, text):
        """tokenizer(text).input_ids for Qwen2: no BOS/EOS is added."""
        ids = []
        pos = 0
        if self.added_re is not None:
            for m in self.added_re.finditer(text):
                if m.start() > pos:
                    ids.extend(self.encode_ordinary(text[pos:m.start()]))
                ids.append(self.added[m.group(0)])
                pos = m.end()
        if pos < len(text):
            ids.extend(self.encode_ordinary(text[pos:]))
        return ids

    def decode(self, ids, skip_special_tokens=False):
        """ByteLevel decode; ids without a token (model padding rows) decode to nothing;
        invalid UTF-8 becomes U+FFFD (Python's errors='replace')."""
        buf = bytearray()
        for i in ids:
            t = self.id_to_token.get(int(i))
            if t is None:
                continue
            if int(i) in self.special_ids and skip_special_tokens:
                continue
            if t in self.added:
                buf.extend(t.encode("utf-8"))
            else:
                buf.extend(U2B[c] for c in t)
        return bytes(buf).decode("utf-8", errors="replace")


def train_bpe(texts, n_merges):
    """Deterministic byte-level BPE training: most frequent pair, ties -> smallest pair."""
    pat = regex.compile(QWEN2_PATTERN)
    counts = collections.Counter()
    for text in texts:
        for chunk in regex.split("(" + "|".join(regex.escape(a) for a in ADDED_TOKENS) + ")", text):
            if chunk in ADDED_TOKENS or not chunk:
                continue
            for piece in split_isolated(pat, unicodedata.normalize("NFC", chunk)):
                counts[tuple(B2U[b] for b in piece.encode("utf-8"))] += 1
    words = dict(counts)
    merges = []
    for _ in range(n_merges):
        pc = collections.Counter()
        for w, c in words.items():
            for a, b in zip(w, w[1:]):
                pc[(a, b)] += c
        if not pc:
            break
        best = min(pc.items(), key=lambda kv: (-kv[1], kv[0]))[0]
        merges.append(best)
        new_words = {}
        for w, c in words.items():
            out = []
            i = 0
            while i < len(w):
                if i < len(w) - 1 and (w[i], w[i + 1]) == best:
                    out.append(w[i] + w[i + 1])
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new_words[tuple(out)] = new_words.get(tuple(out), 0) + c
        words = new_words
    vocab = {}
    for _, u in B2U_LIST:
        vocab[u] = len(vocab)
    for a, b in merges:
        if a + b not in vocab:
            vocab[a + b] = len(vocab)
    return vocab, merges


def tokenizer_json(vocab, merges, merges_as_pairs=False):
    n = len(vocab)
    added = [{"id": n + i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for i, t in enumerate(ADDED_TOKENS)]
    bl = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": QWEN2_PATTERN}, "behavior": "Isolated", "invert": False},
            dict(bl)]},
        "post_processor": dict(bl),
        "decoder": dict(bl),
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False,
                  "ignore_merges": False, "vocab": vocab,
                  "merges": [[a, b] for a, b in merges] if merges_as_pairs else [a + " " + b for a, b in merges]},
    }


# ----------------------------------------------------------------------------------------------
# TinyLLaVA qwen2_base template, tokenizer_image_token, label masking ("-1" rule)
# ----------------------------------------------------------------------------------------------

def split_messages(conversations):
    qs, ans = [], []
    first_not_q = 0
    for i, m in enumerate(conversations):
        if i == 0 and m["from"] != "human":
            first_not_q = 1
            continue
        if i % 2 == first_not_q:
            qs.append(m["value"])
        else:
            ans.append(m["value"])
    assert len(qs) == len(ans), "question/answer count mismatch"
    return qs, ans


def build_prompt(conversations):
    """Answers that are None give the eval-mode ending 'ASSISTANT:' (no trailing space)."""
    qs, ans = split_messages(conversations)
    msg = ""
    for i, (q, a) in enumerate(zip(qs, ans)):
        if i == 0:
            msg += SYSTEM + " "
        if DEFAULT_IMAGE_TOKEN in q:
            q = q.replace(DEFAULT_IMAGE_TOKEN, "").strip()
            q = ("<image>\n" + q).strip()
        msg += "USER: " + q + " "
        msg += "ASSISTANT:" if a is None else "ASSISTANT: " + a + EOS_TOKEN
    return msg


def tokenizer_image_token(prompt, tok):
    chunks = [tok.encode(c) for c in prompt.split(DEFAULT_IMAGE_TOKEN)]
    ids = []
    for i, c in enumerate(chunks):
        if i > 0:
            ids.append(IMAGE_TOKEN_INDEX)
        ids.extend(c)  # Qwen2 has no BOS token, so no offset handling
    return ids


def make_labels(input_ids, prompt, tok, model_max_length, pad_id, eos_id):
    labels = list(input_ids)
    n = len(labels)
    total_len = sum(1 for x in labels if x != pad_id)
    if pad_id == eos_id:
        total_len += prompt.count(EOS_TOKEN)
    rounds = prompt.split(EOS_TOKEN)
    eos_len = len(tok.encode(EOS_TOKEN))
    cur = 0
    for rou in rounds:
        if rou == "":
            break
        parts = rou.split(SEP)
        if len(parts) != 2:
            break
        parts[0] += SEP
        round_len = len(tokenizer_image_token(rou, tok)) + eos_len
        instruction_len = len(tokenizer_image_token(parts[0], tok)) - 1   # TinyLLaVA's "-1"
        for i in range(cur, min(cur + instruction_len, n)):
            labels[i] = IGNORE_INDEX
        cur += round_len
    for i in range(cur, n):
        labels[i] = IGNORE_INDEX
    if cur < model_max_length and cur != total_len:
        labels = [IGNORE_INDEX] * n     # TinyLLaVA: "tokenization mismatch" -> whole sample ignored
    return labels


# ----------------------------------------------------------------------------------------------
# Image preprocessing (PIL + SiglipImageProcessor semantics)
# ----------------------------------------------------------------------------------------------

def expand2square(img, background):
    w, h = img.size
    if w == h:
        return img
    if w > h:
        res = Image.new(img.mode, (w, w), background)
        res.paste(img, (0, (w - h) // 2))
        return res
    res = Image.new(img.mode, (h, h), background)
    res.paste(img, ((h - w) // 2, 0))
    return res


def preprocess_image(path, pp, aspect):
    """Returns float32 [3,H,W]: convert('RGB'), optional pad, PIL bicubic resize,
    x.astype(f64)*rescale -> f32, (x - mean)/std in f32."""
    img = Image.open(path).convert("RGB")
    mean = pp["image_mean"]
    std = pp["image_std"]
    if aspect == "pad":
        img = expand2square(img, tuple(int(x * 255) for x in mean))
    h, w = pp["size"]["height"], pp["size"]["width"]
    img = img.resize((w, h), resample=pp.get("resample", 3))
    arr = np.asarray(img)
    arr = (arr.astype(np.float64) * pp.get("rescale_factor", 1 / 255)).astype(np.float32)
    arr = (arr - np.array(mean, dtype=np.float32)) / np.array(std, dtype=np.float32)
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


# ----------------------------------------------------------------------------------------------
# safetensors (own reader / writer, streaming capable)
# ----------------------------------------------------------------------------------------------

ST_DTYPES = {"F32": (torch.float32, 4), "F16": (torch.float16, 2), "BF16": (torch.bfloat16, 2)}


def tensor_to_bytes(t, dt):
    t = t.detach().to(ST_DTYPES[dt][0]).contiguous()
    if dt == "BF16":
        return t.view(torch.int16).numpy().tobytes()
    return t.numpy().tobytes()


def bytes_to_tensor(b, dt, shape):
    if dt == "BF16":
        t = torch.from_numpy(np.frombuffer(b, dtype=np.int16).copy()).view(torch.bfloat16)
    elif dt == "F16":
        t = torch.from_numpy(np.frombuffer(b, dtype=np.float16).copy())
    elif dt == "F32":
        t = torch.from_numpy(np.frombuffer(b, dtype=np.float32).copy())
    else:
        raise ValueError("unsupported dtype " + dt)
    return t.reshape(shape)


def write_safetensors(path, specs, chunks, metadata=None):
    """specs: [(name, dtype, shape)] in file order; chunks: iterable with one item per spec, either
    bytes or an iterable of byte pieces, produced lazily (a generator keeps one piece in memory)."""
    header = {"__metadata__": metadata or {"format": "pt"}}
    off = 0
    for name, dt, shape in specs:
        n = int(np.prod(shape)) * ST_DTYPES[dt][1] if len(shape) else ST_DTYPES[dt][1]
        header[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + n]}
        off += n
    hb = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hb += b" " * ((8 - len(hb) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)))
        f.write(hb)
        for (name, dt, shape), data in zip(specs, chunks):
            want = header[name]["data_offsets"][1] - header[name]["data_offsets"][0]
            got = 0
            for piece in ([data] if isinstance(data, (bytes, bytearray)) else data):
                f.write(piece)
                got += len(piece)
            assert got == want, (name, got, want)
    return off


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        base = 8 + n
        out = {}
        for name, h in header.items():
            if name == "__metadata__":
                continue
            a, b = h["data_offsets"]
            f.seek(base + a)
            out[name] = bytes_to_tensor(f.read(b - a), h["dtype"], h["shape"])
    return out


def load_checkpoint(d, dtype=torch.float64):
    idx = os.path.join(d, "model.safetensors.index.json")
    files = sorted(set(json.load(open(idx))["weight_map"].values())) if os.path.exists(idx) \
        else ["model.safetensors"]
    w = {}
    for fn in files:
        for k, v in read_safetensors(os.path.join(d, fn)).items():
            w[k] = v.to(dtype)
    return w


def save_checkpoint(d, tensors, dt, shards=1):
    """tensors: {name: tensor}. Writes model.safetensors or N shards + index (names sorted)."""
    names = sorted(tensors)
    blobs = {k: tensor_to_bytes(tensors[k], dt) for k in names}
    total = sum(len(b) for b in blobs.values())
    if shards == 1:
        write_safetensors(os.path.join(d, "model.safetensors"),
                          [(k, dt, list(tensors[k].shape)) for k in names], (blobs[k] for k in names))
        return total
    groups = [[] for _ in range(shards)]
    acc = 0
    for k in names:   # contiguous split by byte count
        g = min(int(acc * shards / total), shards - 1)
        groups[g].append(k)
        acc += len(blobs[k])
    weight_map = {}
    for i, g in enumerate(groups):
        fn = "model-%05d-of-%05d.safetensors" % (i + 1, shards)
        write_safetensors(os.path.join(d, fn), [(k, dt, list(tensors[k].shape)) for k in g],
                          (blobs[k] for k in g))
        for k in g:
            weight_map[k] = fn
    with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))},
                  f, indent=2)
        f.write("\n")
    return total


# ----------------------------------------------------------------------------------------------
# Configuration (defaults follow the HF classes, for keys a real config.json omits)
# ----------------------------------------------------------------------------------------------

QWEN2_DEFAULTS = {"hidden_act": "silu", "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
                  "tie_word_embeddings": False, "attention_dropout": 0.0}
SIGLIP_DEFAULTS = {"hidden_act": "gelu_pytorch_tanh", "layer_norm_eps": 1e-6, "num_channels": 3}


def tc(cfg, k):
    t = cfg["text_config"]
    if k == "num_key_value_heads":
        return t.get(k, t["num_attention_heads"])
    return t[k] if k in t else QWEN2_DEFAULTS[k]


def vc(cfg, k):
    v = cfg["vision_config"]
    return v[k] if k in v else SIGLIP_DEFAULTS[k]


def tensor_specs(cfg):
    """[(name, shape, kind)] of every tensor a TinyLLaVA (SigLIP + connector + Qwen2) checkpoint holds."""
    D = vc(cfg, "hidden_size")
    I = vc(cfg, "intermediate_size")
    p = vc(cfg, "patch_size")
    C = vc(cfg, "num_channels")
    npos = (vc(cfg, "image_size") // p) ** 2
    H = tc(cfg, "hidden_size")
    Im = tc(cfg, "intermediate_size")
    nh = tc(cfg, "num_attention_heads")
    nkv = tc(cfg, "num_key_value_heads")
    hd = H // nh
    V = tc(cfg, "vocab_size")
    s = []
    vp = "vision_tower._vision_tower.vision_model."
    s += [(vp + "embeddings.patch_embedding.weight", [D, C, p, p], "conv"),
          (vp + "embeddings.patch_embedding.bias", [D], "bias"),
          (vp + "embeddings.position_embedding.weight", [npos, D], "pos")]
    for i in range(vc(cfg, "num_hidden_layers")):
        lp = vp + "encoder.layers.%d." % i
        for ln in ("layer_norm1", "layer_norm2"):
            s += [(lp + ln + ".weight", [D], "lnw"), (lp + ln + ".bias", [D], "bias")]
        for pr in ("q_proj", "k_proj", "v_proj", "out_proj"):
            s += [(lp + "self_attn." + pr + ".weight", [D, D], "qk" if pr in ("q_proj", "k_proj") else "lin"),
                  (lp + "self_attn." + pr + ".bias", [D], "bias")]
        s += [(lp + "mlp.fc1.weight", [I, D], "lin"), (lp + "mlp.fc1.bias", [I], "bias"),
              (lp + "mlp.fc2.weight", [D, I], "lin"), (lp + "mlp.fc2.bias", [D], "bias")]
    # unused by TinyLLaVA, present in its checkpoints: post_layernorm and the attention-pooling head
    s += [(vp + "post_layernorm.weight", [D], "lnw"), (vp + "post_layernorm.bias", [D], "bias"),
          (vp + "head.probe", [1, 1, D], "small"),
          (vp + "head.attention.in_proj_weight", [3 * D, D], "small"),
          (vp + "head.attention.in_proj_bias", [3 * D], "small"),
          (vp + "head.attention.out_proj.weight", [D, D], "small"),
          (vp + "head.attention.out_proj.bias", [D], "small"),
          (vp + "head.layernorm.weight", [D], "lnw"), (vp + "head.layernorm.bias", [D], "bias"),
          (vp + "head.mlp.fc1.weight", [I, D], "small"), (vp + "head.mlp.fc1.bias", [I], "small"),
          (vp + "head.mlp.fc2.weight", [D, I], "small"), (vp + "head.mlp.fc2.bias", [D], "small")]
    ct = cfg["connector_type"]
    if ct == "linear":
        s += [("connector._connector.weight", [H, D], "lin"), ("connector._connector.bias", [H], "bias")]
    else:
        depth = int(regex.match(r"^mlp(\d+)x_gelu$", ct).group(1))
        for j in range(depth):
            s += [("connector._connector.%d.weight" % (2 * j), [H, D if j == 0 else H], "lin"),
                  ("connector._connector.%d.bias" % (2 * j), [H], "bias")]
    mp = "language_model.model."
    s += [(mp + "embed_tokens.weight", [V, H], "embed")]
    for i in range(tc(cfg, "num_hidden_layers")):
        lp = mp + "layers.%d." % i
        s += [(lp + "input_layernorm.weight", [H], "lnw"),
              (lp + "self_attn.q_proj.weight", [nh * hd, H], "qk"), (lp + "self_attn.q_proj.bias", [nh * hd], "qkbias"),
              (lp + "self_attn.k_proj.weight", [nkv * hd, H], "qk"), (lp + "self_attn.k_proj.bias", [nkv * hd], "qkbias"),
              (lp + "self_attn.v_proj.weight", [nkv * hd, H], "lin"), (lp + "self_attn.v_proj.bias", [nkv * hd], "bias"),
              (lp + "self_attn.o_proj.weight", [H, nh * hd], "lin"),
              (lp + "post_attention_layernorm.weight", [H], "lnw"),
              (lp + "mlp.gate_proj.weight", [Im, H], "lin"), (lp + "mlp.up_proj.weight", [Im, H], "lin"),
              (lp + "mlp.down_proj.weight", [H, Im], "lin")]
    s += [(mp + "norm.weight", [H], "lnw")]
    if not tc(cfg, "tie_word_embeddings"):
        s += [("language_model.lm_head.weight", [V, H], "head")]
    return s


def init_tensor(shape, kind, gen, dtype=torch.float64, logit_std=3.0, fan_in=None):
    """Random init chosen so that activations and logits are far from degenerate."""
    if fan_in is None:
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
    r = torch.randn(*shape, generator=gen, dtype=dtype)
    if kind in ("lin", "conv"):
        return r / math.sqrt(fan_in)
    if kind == "qk":
        return r * (1.5 / math.sqrt(fan_in))
    if kind == "bias":
        return r * 0.1
    if kind == "qkbias":
        return r * 0.3
    if kind == "lnw":
        return 1.0 + 0.1 * r
    if kind == "pos":
        return r * 0.5
    if kind in ("embed", "head"):
        return r * (logit_std / math.sqrt(shape[1]))
    if kind == "small":
        return r * 0.02
    raise ValueError(kind)


# ----------------------------------------------------------------------------------------------
# The model (functional, float64 by default)
# ----------------------------------------------------------------------------------------------

class RefModel:
    def __init__(self, cfg, weights, dtype=torch.float64):
        self.cfg = cfg
        self.w = {k: v.to(dtype) for k, v in weights.items()}
        self.dtype = dtype
        self.vp = "vision_tower._vision_tower.vision_model."
        self.mp = "language_model.model."
        self.H = tc(cfg, "hidden_size")
        self.nh = tc(cfg, "num_attention_heads")
        self.nkv = tc(cfg, "num_key_value_heads")
        self.hd = self.H // self.nh
        self.L = tc(cfg, "num_hidden_layers")
        self.eps = float(tc(cfg, "rms_norm_eps"))
        self.theta = float(tc(cfg, "rope_theta"))
        assert tc(cfg, "hidden_act") == "silu"
        lm = "language_model.lm_head.weight"
        self.lm_head = self.w[lm] if lm in self.w else self.w[self.mp + "embed_tokens.weight"]
        if tc(cfg, "tie_word_embeddings"):
            assert lm not in self.w, "tied config but lm_head stored"

    # ---- vision tower: returns hidden_states list (embeddings, layer 1 .. layer N)
    def vision_hidden_states(self, pixels):
        w, vp = self.w, self.vp
        D = vc(self.cfg, "hidden_size")
        heads = vc(self.cfg, "num_attention_heads")
        eps = float(vc(self.cfg, "layer_norm_eps"))
        act = vc(self.cfg, "hidden_act")
        assert act in ("gelu_pytorch_tanh", "gelu")
        p = vc(self.cfg, "patch_size")
        x = F.conv2d(pixels.to(self.dtype), w[vp + "embeddings.patch_embedding.weight"],
                     w[vp + "embeddings.patch_embedding.bias"], stride=p)
        x = x.flatten(2).transpose(1, 2)
        x = x + w[vp + "embeddings.position_embedding.weight"][None]
        B, N, _ = x.shape
        hd = D // heads
        hs = [x]
        for i in range(vc(self.cfg, "num_hidden_layers")):
            lp = vp + "encoder.layers.%d." % i
            r = x
            h = F.layer_norm(x, (D,), w[lp + "layer_norm1.weight"], w[lp + "layer_norm1.bias"], eps)

            def proj(name, t):
                return F.linear(t, w[lp + "self_attn.%s.weight" % name], w[lp + "self_attn.%s.bias" % name])
            q = proj("q_proj", h).view(B, N, heads, hd).transpose(1, 2)
            k = proj("k_proj", h).view(B, N, heads, hd).transpose(1, 2)
            v = proj("v_proj", h).view(B, N, heads, hd).transpose(1, 2)
            a = torch.softmax(q @ k.transpose(-1, -2) * hd ** -0.5, dim=-1)
            o = (a @ v).transpose(1, 2).reshape(B, N, D)
            x = r + proj("out_proj", o)
            r = x
            h = F.layer_norm(x, (D,), w[lp + "layer_norm2.weight"], w[lp + "layer_norm2.bias"], eps)
            h = F.linear(h, w[lp + "mlp.fc1.weight"], w[lp + "mlp.fc1.bias"])
            h = F.gelu(h, approximate="tanh" if act == "gelu_pytorch_tanh" else "none")
            x = r + F.linear(h, w[lp + "mlp.fc2.weight"], w[lp + "mlp.fc2.bias"])
            hs.append(x)
        return hs

    def vision_features(self, pixels):
        hs = self.vision_hidden_states(pixels)
        f = hs[self.cfg.get("vision_feature_layer", -2)]
        strat = self.cfg.get("vision_feature_select_strategy", "patch")
        if strat == "patch":
            return f[:, 1:]
        if strat == "cls_patch":
            return f
        raise ValueError(strat)

    def connector(self, f):
        w = self.w
        ct = self.cfg["connector_type"]
        if ct == "linear":
            return F.linear(f, w["connector._connector.weight"], w["connector._connector.bias"])
        depth = int(regex.match(r"^mlp(\d+)x_gelu$", ct).group(1))
        for j in range(depth):
            if j > 0:
                f = F.gelu(f)   # nn.GELU(): exact erf form
            f = F.linear(f, w["connector._connector.%d.weight" % (2 * j)], w["connector._connector.%d.bias" % (2 * j)])
        return f

    def encode_images(self, pixels):
        return self.connector(self.vision_features(pixels))

    def embed(self, ids):
        return self.w[self.mp + "embed_tokens.weight"][ids]

    # ---- Qwen2 decoder
    def rms(self, x, weight):
        var = x.pow(2).mean(-1, keepdim=True)
        return weight * (x * torch.rsqrt(var + self.eps))

    def rope(self, pos):
        hd = self.hd
        inv = 1.0 / (self.theta ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
        fr = pos.to(torch.float64)[..., None] * inv
        emb = torch.cat([fr, fr], dim=-1)
        return emb.cos().to(self.dtype), emb.sin().to(self.dtype)

    @staticmethod
    def rotate_half(x):
        h = x.shape[-1] // 2
        return torch.cat([-x[..., h:], x[..., :h]], dim=-1)

    def llm(self, x, pos, key_mask=None, cache=None, last_only=False):
        """x: [B,T,H] input embeddings; pos: [B,T] positions; key_mask: [B,S] bool (True = real
        token) over all keys (cache + new); cache: list of (k, v) per layer, updated in place."""
        w, mp = self.w, self.mp
        B, T, _ = x.shape
        nh, nkv, hd = self.nh, self.nkv, self.hd
        cos, sin = self.rope(pos)
        cos, sin = cos[:, None], sin[:, None]
        for i in range(self.L):
            lp = mp + "layers.%d." % i
            r = x
            h = self.rms(x, w[lp + "input_layernorm.weight"])
            q = F.linear(h, w[lp + "self_attn.q_proj.weight"], w[lp + "self_attn.q_proj.bias"])
            k = F.linear(h, w[lp + "self_attn.k_proj.weight"], w[lp + "self_attn.k_proj.bias"])
            v = F.linear(h, w[lp + "self_attn.v_proj.weight"], w[lp + "self_attn.v_proj.bias"])
            q = q.view(B, T, nh, hd).transpose(1, 2)
            k = k.view(B, T, nkv, hd).transpose(1, 2)
            v = v.view(B, T, nkv, hd).transpose(1, 2)
            q = q * cos + self.rotate_half(q) * sin
            k = k * cos + self.rotate_half(k) * sin
            if cache is not None:
                if len(cache) > i:
                    k = torch.cat([cache[i][0], k], dim=2)
                    v = torch.cat([cache[i][1], v], dim=2)
                    cache[i] = (k, v)
                else:
                    cache.append((k, v))
            S = k.shape[2]
            off = S - T
            k = k.repeat_interleave(nh // nkv, dim=1)
            v = v.repeat_interleave(nh // nkv, dim=1)
            sc = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
            allowed = torch.arange(S)[None, :] <= (torch.arange(T)[:, None] + off)
            allowed = allowed[None, None].expand(B, 1, T, S)
            if key_mask is not None:
                allowed = allowed & key_mask[:, None, None, :]
            sc = sc.masked_fill(~allowed, float("-inf"))
            a = torch.softmax(sc, dim=-1)
            o = (a @ v).transpose(1, 2).reshape(B, T, nh * hd)
            x = r + F.linear(o, w[lp + "self_attn.o_proj.weight"])
            r = x
            h = self.rms(x, w[lp + "post_attention_layernorm.weight"])
            g = F.linear(h, w[lp + "mlp.gate_proj.weight"])
            u = F.linear(h, w[lp + "mlp.up_proj.weight"])
            x = r + F.linear(F.silu(g) * u, w[lp + "mlp.down_proj.weight"])
        if last_only:
            x = x[:, -1:]
        x = self.rms(x, w[mp + "norm.weight"])
        return F.linear(x, self.lm_head)

    # ---- TinyLLaVA assembly (prepare_inputs_labels_for_multimodal)
    def splice(self, ids, labels, pixels, feats=None):
        """One sample: ids (list, may hold -200), labels (list or None), pixels [3,H,W] or None.
        Returns (embeds [T,H], labels [T] or None, n_image_tokens)."""
        ids_t = torch.tensor(ids, dtype=torch.long)
        lab_t = torch.tensor(labels, dtype=torch.long) if labels is not None \
            else torch.full_like(ids_t, IGNORE_INDEX)
        where = (ids_t == IMAGE_TOKEN_INDEX).nonzero().flatten().tolist()
        if not where:
            emb, lab, nimg = self.embed(ids_t), lab_t, 0
        else:
            assert pixels is not None or feats is not None, "sample has <image> but no pixel tensor"
            assert len(where) == 1, "one image per sample"
            if feats is None:
                feats = self.encode_images(pixels[None])[0]
            bounds = [-1] + where + [len(ids)]
            e_parts, l_parts = [], []
            for j in range(len(bounds) - 1):
                seg = ids_t[bounds[j] + 1:bounds[j + 1]]
                e_parts.append(self.embed(seg))
                l_parts.append(lab_t[bounds[j] + 1:bounds[j + 1]])
                if j < len(where):
                    e_parts.append(feats)
                    l_parts.append(torch.full((feats.shape[0],), IGNORE_INDEX, dtype=torch.long))
            emb, lab, nimg = torch.cat(e_parts), torch.cat(l_parts), feats.shape[0]
        ml = self.cfg.get("tokenizer_model_max_length")
        if ml is not None:
            emb, lab = emb[:ml], lab[:ml]
        return emb, (lab if labels is not None else None), nimg

    def forward_batch(self, samples):
        """samples: [(ids, labels, pixels)]; right padding as TinyLLaVA. Returns per-sample
        (logits [T_i,V], spliced labels [T_i], number of image tokens spliced)."""
        sp = [self.splice(*s) for s in samples]
        T = max(e.shape[0] for e, _, _ in sp)
        B = len(sp)
        x = torch.zeros(B, T, self.H, dtype=self.dtype)
        mask = torch.zeros(B, T, dtype=torch.bool)
        pos = torch.zeros(B, T, dtype=torch.long)
        for i, (e, _, _) in enumerate(sp):
            n = e.shape[0]
            x[i, :n] = e
            mask[i, :n] = True
            pos[i, :n] = torch.arange(n)
        logits = self.llm(x, pos, key_mask=mask)
        return [(logits[i, :e.shape[0]], lab, nimg) for i, (e, lab, nimg) in enumerate(sp)]

    def generate(self, ids, pixels, max_new_tokens, eos_id, use_cache=True):
        emb, _, _ = self.splice(ids, None, pixels)
        T = emb.shape[0]
        out = []
        if use_cache:
            cache = []
            logits = self.llm(emb[None], torch.arange(T)[None], cache=cache)
            for step in range(max_new_tokens):
                nxt = int(torch.argmax(logits[0, -1]))
                out.append(nxt)
                if nxt == eos_id:
                    break
                logits = self.llm(self.embed(torch.tensor([[nxt]])), torch.tensor([[T + step]]), cache=cache)
        else:
            seq = emb
            for step in range(max_new_tokens):
                logits = self.llm(seq[None], torch.arange(seq.shape[0])[None])
                nxt = int(torch.argmax(logits[0, -1]))
                out.append(nxt)
                if nxt == eos_id:
                    break
                seq = torch.cat([seq, self.embed(torch.tensor([nxt]))])
        return out


def nll_from_logits(logits, labels):
    """HF causal-LM loss for one sample: logits[t] predicts labels[t+1]; mean over labels != -100."""
    lg = logits[:-1].to(torch.float64)
    lb = labels[1:]
    m = lb != IGNORE_INDEX
    if int(m.sum()) == 0:
        return float("nan"), 0
    lp = torch.log_softmax(lg[m], dim=-1)
    nll = -lp.gather(1, lb[m][:, None]).squeeze(1)
    return float(nll.mean()), int(m.sum())


# ----------------------------------------------------------------------------------------------
# Fixture definitions
# ----------------------------------------------------------------------------------------------

def tokenizer_corpus():
    qa = [
        "What is shown?", "A red square.", "Name a color.", "Blue.", "Describe the picture.",
        "It shows a cat on a mat.", "How many cats are there?", "2 cats.", "How many lines?", "3",
        "What color is this?", "I can not see an image.", "What is in the image?", "Tell me a story.",
        "The picture shows a small house with a green door.", "Is it sunny?", "Yes, it is sunny.",
        "What shape is it?", "It is a circle.", "Where is the dog?", "The dog is under the table.",
    ]
    texts = []
    for _ in range(12):
        texts.append(SYSTEM + " USER: <image>\nWhat is shown? ASSISTANT: A red square." + EOS_TOKEN)
    for i in range(6):
        for j in range(0, len(qa) - 1, 2):
            texts.append("USER: " + qa[j] + " ASSISTANT: " + qa[j + 1] + EOS_TOKEN)
    texts.append("Numbers like 12, 345 and 6789 are split into digits. It's the user's cat; they're here.")
    texts.append("Caf\u00e9 na\u00efve \u00c5ngstr\u00f6m stra\u00dfe \u4e2d\u6587 \U0001F642 tab\there\nnew line\r\n")
    return texts


N_MERGES = 160   # 256 byte tokens + 160 merges + 3 added tokens = 419 tokenizer ids

FIXTURE_CONFIGS = [
    dict(name="tiny-a", seed=1001, eos_scale=4.0, dtype="F32", shards=1, sparse_config=True,
         vision=dict(hidden=32, inter=64, layers=3, heads=4, image=56, patch=14, eps=1e-6),
         llm=dict(hidden=64, inter=96, layers=2, heads=4, kv=4, rope=1e6, eps=1e-6, vocab=432, tied=True),
         connector="mlp2x_gelu", feature_layer=-2, select="patch", aspect="square",
         mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5], max_len=2048, merges_as_pairs=False),
    dict(name="tiny-b", seed=2002, eos_scale=2.5, dtype="BF16", shards=1, sparse_config=False,
         vision=dict(hidden=32, inter=64, layers=2, heads=2, image=28, patch=7, eps=1e-6),
         llm=dict(hidden=48, inter=96, layers=2, heads=4, kv=2, rope=1e6, eps=1e-6, vocab=448, tied=False),
         connector="linear", feature_layer=-1, select="patch", aspect="pad",
         mean=[0.48145466, 0.4578275, 0.40821073], std=[0.26862954, 0.26130258, 0.27577711],
         max_len=2048, merges_as_pairs=False),
    dict(name="tiny-c", seed=3003, eos_scale=2.5, dtype="F16", shards=2, sparse_config=False,
         vision=dict(hidden=32, inter=48, layers=3, heads=4, image=42, patch=14, eps=1e-5),
         llm=dict(hidden=64, inter=112, layers=2, heads=4, kv=1, rope=10000.0, eps=1e-5, vocab=419, tied=True),
         connector="mlp2x_gelu", feature_layer=-2, select="cls_patch", aspect="square",
         mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5], max_len=96, merges_as_pairs=True),
]

DATA = [
    {"id": "s0_image_short", "image": "rgba.png",
     "conversations": [{"from": "human", "value": "<image>\nWhat is shown?"},
                       {"from": "gpt", "value": "A red square."}]},
    {"id": "s1_text_only",
     "conversations": [{"from": "human", "value": "Name a color."},
                       {"from": "gpt", "value": "Blue."}]},
    {"id": "s2_multiturn_jpeg", "image": "photo.jpg",
     "conversations": [{"from": "human", "value": "<image>\nDescribe the picture."},
                       {"from": "gpt", "value": "It shows a cat on a mat."},
                       {"from": "human", "value": "How many cats are there?"},
                       {"from": "gpt", "value": "2 cats."}]},
    {"id": "s3_digit_gray", "image": "gray.png",
     "conversations": [{"from": "human", "value": "How many lines?\n<image>"},
                       {"from": "gpt", "value": "3"}]},
    {"id": "s4_missing_image",
     "conversations": [{"from": "human", "value": "<image>\nWhat color is this?"},
                       {"from": "gpt", "value": "I can not see an image."}]},
    {"id": "s5_palette_long", "image": "palette.png",
     "conversations": [{"from": "human", "value": "<image>\nWhat shape is it?"},
                       {"from": "gpt", "value": "It is a circle."},
                       {"from": "human", "value": "Is it sunny?"},
                       {"from": "gpt", "value": "Yes, it is sunny."},
                       {"from": "human", "value": "Where is the dog?"},
                       {"from": "gpt", "value": "The dog is under the table. It's the user's dog; they're 12 years old."}]},
]

GEN_QUESTIONS = ["What is in the image?", "Tell me a story.", "Describe the picture.", "What shape is it?",
                 "Is it sunny?", "Where is the dog?", "Name a color.", "How many cats are there?",
                 "What color is this?", "How many lines?", "What is shown?", "Is there a door?",
                 "What is the cat doing?", "Why?", "Say something.", "Count to 3.", "Who are you?",
                 "What is on the table?", "Is it a circle?", "Which color is the house?"]

TOKENIZER_CASES = [
    "Hello world!  It's 2024.\n\nNew   line\t tab",
    "Cafe\u0301 nai\u0308ve e\u0301te\u0301 \u212b",            # decomposed accents -> NFC
    "<|im_start|>user\nHi<|im_end|>\n<|endoftext|>tail",
    "I'LL SEE YOU'RE HERE, he'd've",
    "emoji \U0001F642 and \u4e2d\u6587 and \u00c5ngstr\u00f6m",
    "  leading spaces and trailing  ",
    "ASSISTANT: 3 apples",
    "ASSISTANT: Three apples",
    "line\r\nbreak \n\n  x",
    "a<|endoftext|><|endoftext|>b",
]


def make_images(d):
    os.makedirs(d, exist_ok=True)
    y, x = np.mgrid[0:30, 0:40]
    rgba = np.zeros((30, 40, 4), np.uint8)
    rgba[..., 0] = (x * 6) % 256
    rgba[..., 1] = (y * 8) % 256
    rgba[..., 2] = ((x + y) * 5) % 256
    rgba[..., 3] = np.where(x < 8, 0, (x * 7 + y * 3) % 256)   # alpha 0 with colour behind it
    rgba[5:20, 12:30, :3] = [220, 30, 40]
    Image.fromarray(rgba, "RGBA").save(os.path.join(d, "rgba.png"))
    y, x = np.mgrid[0:36, 0:50]
    rgb = np.stack([(128 + 100 * np.sin(x / 5.0)), (128 + 100 * np.cos(y / 4.0)),
                    ((x * y) % 256)], axis=-1).clip(0, 255).astype(np.uint8)
    rgb[10:26, 15:35] = [30, 160, 60]
    Image.fromarray(rgb, "RGB").save(os.path.join(d, "photo.jpg"), quality=95, subsampling=0)
    y, x = np.mgrid[0:48, 0:24]
    gray = ((y // 6) % 2 * 180 + x * 3).clip(0, 255).astype(np.uint8)
    Image.fromarray(gray, "L").save(os.path.join(d, "gray.png"))
    y, x = np.mgrid[0:36, 0:36]
    idx = (((x // 9) + (y // 9) * 4) % 8).astype(np.uint8)
    idx[(x - 18) ** 2 + (y - 18) ** 2 < 80] = 7
    pal = Image.fromarray(idx, "L").convert("P")
    pal.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 0, 255, 0, 255, 0, 255, 255,
                    250, 250, 250] + [0] * (256 * 3 - 24))
    pal.save(os.path.join(d, "palette.png"))


def build_config(fc, tok_size):
    v, l = fc["vision"], fc["llm"]
    eos_id = tok_size - 3
    text = {
        "_name_or_path": "switchkd/%s-qwen2" % fc["name"],
        "architectures": ["Qwen2ForCausalLM"],
        "attention_dropout": 0.0,
        "bos_token_id": eos_id,
        "eos_token_id": eos_id,
        "hidden_act": "silu",
        "hidden_size": l["hidden"],
        "initializer_range": 0.02,
        "intermediate_size": l["inter"],
        "max_position_embeddings": 4096,
        "max_window_layers": l["layers"],
        "model_type": "qwen2",
        "num_attention_heads": l["heads"],
        "num_hidden_layers": l["layers"],
        "num_key_value_heads": l["kv"],
        "rms_norm_eps": l["eps"],
        "rope_theta": l["rope"],
        "sliding_window": 4096,
        "tie_word_embeddings": l["tied"],
        "torch_dtype": "bfloat16",
        "use_cache": True,
        "use_sliding_window": False,
        "vocab_size": l["vocab"],
    }
    vision = {
        "attention_dropout": 0.0,
        "hidden_act": "gelu_pytorch_tanh",
        "hidden_size": v["hidden"],
        "image_size": v["image"],
        "intermediate_size": v["inter"],
        "layer_norm_eps": v["eps"],
        "model_name_or_path": "switchkd/%s-siglip" % fc["name"],
        "model_name_or_path2": "",
        "model_type": "siglip_vision_model",
        "num_attention_heads": v["heads"],
        "num_channels": 3,
        "num_hidden_layers": v["layers"],
        "patch_size": v["patch"],
    }
    if fc["sparse_config"]:
        # like real TinyLLaVA checkpoints: keys equal to the class defaults are not written
        for k in ("attention_dropout", "hidden_act", "rms_norm_eps", "initializer_range"):
            text.pop(k)
        for k in ("attention_dropout", "num_channels"):
            vision.pop(k)
    tdt = {"F32": "float32", "BF16": "bfloat16", "F16": "float16"}[fc["dtype"]]
    return {
        "architectures": ["TinyLlavaForConditionalGeneration"],
        "cache_dir": None,
        "connector_type": fc["connector"],
        "hidden_size": l["hidden"],
        "ignore_index": IGNORE_INDEX,
        "image_aspect_ratio": fc["aspect"],
        "image_token_index": IMAGE_TOKEN_INDEX,
        "llm_model_name_or_path": text["_name_or_path"],
        "model_type": "tinyllava",
        "num_queries": None,
        "num_resampler_layers": None,
        "pad_token": EOS_TOKEN,
        "pad_token_id": eos_id,
        "resampler_hidden_size": None,
        "text_config": text,
        "tokenizer_model_max_length": fc["max_len"],
        "tokenizer_name_or_path": text["_name_or_path"],
        "tokenizer_padding_side": "right",
        "tokenizer_use_fast": False,
        "torch_dtype": tdt,
        "transformers_version": "4.40.1",
        "tune_type_connector": "full",
        "tune_type_llm": "full",
        "tune_type_vision_tower": "frozen",
        "tune_vision_tower_from_layer": 0,
        "use_cache": True,
        "vision_config": vision,
        "vision_feature_layer": fc["feature_layer"],
        "vision_feature_select_strategy": fc["select"],
        "vision_hidden_size": v["hidden"],
        "vision_model_name_or_path": vision["model_name_or_path"],
        "vision_model_name_or_path2": "",
        "vocab_size": l["vocab"],
    }


def tokenizer_files(d, vocab, merges, max_len, merges_as_pairs):
    tj = tokenizer_json(vocab, merges, merges_as_pairs)
    with open(os.path.join(d, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tj, f, ensure_ascii=False, indent=2)
        f.write("\n")
    n = len(vocab)
    tcfg = {
        "add_bos_token": False,
        "add_prefix_space": False,
        "added_tokens_decoder": {str(n + i): {"content": t, "lstrip": False, "normalized": False, "rstrip": False,
                                              "single_word": False, "special": True}
                                 for i, t in enumerate(ADDED_TOKENS)},
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>"],
        "bos_token": None,
        "clean_up_tokenization_spaces": False,
        "eos_token": EOS_TOKEN,
        "errors": "replace",
        "model_max_length": max_len,
        "pad_token": EOS_TOKEN,
        "padding_side": "right",
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": EOS_TOKEN,
    }
    with open(os.path.join(d, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(tcfg, f, ensure_ascii=False, indent=2)
        f.write("\n")
    with open(os.path.join(d, "special_tokens_map.json"), "w", encoding="utf-8") as f:
        json.dump({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"], "eos_token": EOS_TOKEN,
                   "pad_token": EOS_TOKEN, "unk_token": EOS_TOKEN}, f, indent=2)
        f.write("\n")
    # the slow Qwen2Tokenizer (tokenizer_use_fast: false) reads these two
    with open(os.path.join(d, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f, ensure_ascii=False)
    with open(os.path.join(d, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
        for a, b in merges:
            f.write(a + " " + b + "\n")
    return tj


def preprocessor_config(fc):
    return {
        "do_normalize": True,
        "do_rescale": True,
        "do_resize": True,
        "image_mean": fc["mean"],
        "image_processor_type": "SiglipImageProcessor",
        "image_std": fc["std"],
        "processor_class": "SiglipProcessor",
        "resample": 3,
        "rescale_factor": 0.00392156862745098,
        "size": {"height": fc["vision"]["image"], "width": fc["vision"]["image"]},
    }


def write_fixture_json(path, obj):
    """Top-level keys one per line; list-of-dict values one element per line; numbers repr()."""
    lines = ["{"]
    keys = list(obj)
    for i, k in enumerate(keys):
        v = obj[k]
        comma = "," if i < len(keys) - 1 else ""
        if isinstance(v, list) and v and all(isinstance(e, dict) for e in v):
            lines.append(json.dumps(k) + ": [")
            for j, e in enumerate(v):
                lines.append(json.dumps(e, separators=(",", ":"), ensure_ascii=False) +
                             ("," if j < len(v) - 1 else ""))
            lines.append("]" + comma)
        else:
            lines.append(json.dumps(k) + ": " + json.dumps(v, separators=(",", ":"), ensure_ascii=False) + comma)
    lines.append("}")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


class FixtureModelDir:
    """Everything read back from one fixture directory through this file's own readers."""

    def __init__(self, d):
        self.d = d
        self.cfg = json.load(open(os.path.join(d, "config.json")))
        self.tok = BPETokenizer(json.load(open(os.path.join(d, "tokenizer.json"), encoding="utf-8")))
        self.pp = json.load(open(os.path.join(d, "preprocessor_config.json")))
        tcfg = json.load(open(os.path.join(d, "tokenizer_config.json")))
        self.eos_id = self.tok.added[tcfg["eos_token"]]
        self.pad_id = self.tok.added[tcfg["pad_token"]]
        self.max_len = self.cfg["tokenizer_model_max_length"]
        self.model = RefModel(self.cfg, load_checkpoint(d))
        self.image_folder = os.path.join(d, "images")

    def pixels(self, image):
        return preprocess_image(os.path.join(self.image_folder, image), self.pp,
                                self.cfg.get("image_aspect_ratio", "square"))

    def zero_pixels(self):
        return torch.zeros(3, self.pp["size"]["height"], self.pp["size"]["width"])

    def sample(self, s):
        prompt = build_prompt(s["conversations"])
        ids = tokenizer_image_token(prompt, self.tok)
        labels = make_labels(ids, prompt, self.tok, self.max_len, self.pad_id, self.eos_id)
        # TinyLLaVA's dataset gives every sample of a multimodal model a pixel tensor (zeros when
        # there is no image); it is spliced only where the text holds <image>.
        px = self.pixels(s["image"]) if "image" in s else self.zero_pixels()
        return prompt, ids, labels, px


def compute_fixture(md, data, n_logits=2, gen_cases=None):
    samples = []
    batch = []
    for s in data:
        prompt, ids, labels, px = md.sample(s)
        batch.append((ids, labels, px))
        samples.append({"id": s["id"], "image": s.get("image"), "prompt": prompt, "input_ids": ids, "labels": labels})
    single = [md.model.forward_batch([b])[0] for b in batch]
    batched = md.model.forward_batch(batch)
    max_batch_diff = max(float((a[0] - b[0]).abs().max()) for a, b in zip(single, batched))
    for i, (logits, lab, nimg) in enumerate(single):
        nll, ntok = nll_from_logits(logits, lab)
        s = samples[i]
        s["spliced_labels"] = lab.tolist()
        s["seq_len"] = int(logits.shape[0])
        s["num_image_tokens"] = nimg
        s["nll"] = nll
        s["tokens"] = ntok
        s["pixel_sum"] = float(batch[i][2].to(torch.float64).sum())
        if i < n_logits:
            s["logits"] = logits.tolist()
    return samples, single, max_batch_diff


def make_gen_cases(md, data_images):
    """Two greedy cases: one with an image, one text-only; questions are searched (deterministic
    order) so that the image case stops at eos after >= 3 tokens and the text case at max_new_tokens."""
    cases = []
    for want_image, image in ((True, data_images[0]), (False, None)):
        chosen = None
        for q in GEN_QUESTIONS:
            qv = ("<image>\n" + q) if want_image else q
            prompt = build_prompt([{"from": "human", "value": qv}, {"from": "gpt", "value": None}])
            ids = tokenizer_image_token(prompt, md.tok)
            px = md.pixels(image) if want_image else None
            out = md.model.generate(ids, px, 16, md.eos_id)
            stop = "eos" if out and out[-1] == md.eos_id else "max_new_tokens"
            case = {"image": image, "question": qv, "prompt": prompt, "input_ids": ids, "max_new_tokens": 16,
                    "output_ids": out, "stop": stop,
                    "text": md.tok.decode(out, skip_special_tokens=True).strip()}
            if chosen is None:
                chosen = case
            if (want_image and stop == "eos" and len(out) >= 3) or (not want_image and stop != "eos"):
                chosen = case
                break
        cases.append(chosen)
    return cases


def generate_fixtures(out_root):
    vocab, merges = train_bpe(tokenizer_corpus(), N_MERGES)
    tok_size = len(vocab) + len(ADDED_TOKENS)
    report = []
    for fc in FIXTURE_CONFIGS:
        d = os.path.join(out_root, fc["name"])
        os.makedirs(d, exist_ok=True)
        for fn in os.listdir(d):
            if fn.endswith(".safetensors") or fn.endswith(".safetensors.index.json"):
                os.remove(os.path.join(d, fn))
        make_images(os.path.join(d, "images"))
        with open(os.path.join(d, "data.json"), "w", encoding="utf-8") as f:
            json.dump(DATA, f, indent=2, ensure_ascii=False)
            f.write("\n")
        cfg = build_config(fc, tok_size)
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(cfg, f, indent=2)
            f.write("\n")
        with open(os.path.join(d, "generation_config.json"), "w") as f:
            json.dump({"bos_token_id": tok_size - 3, "eos_token_id": tok_size - 3, "max_new_tokens": 2048,
                       "transformers_version": "4.40.1"}, f, indent=2)
            f.write("\n")
        with open(os.path.join(d, "preprocessor_config.json"), "w") as f:
            json.dump(preprocessor_config(fc), f, indent=2)
            f.write("\n")
        tokenizer_files(d, vocab, merges, fc["max_len"], fc["merges_as_pairs"])
        # weights: float64 random, rounded to the on-disk dtype by the writer
        gen = torch.Generator().manual_seed(fc["seed"])
        tensors = {}
        for name, shape, kind in tensor_specs(cfg):
            tensors[name] = init_tensor(shape, kind, gen)
        V = fc["llm"]["vocab"]
        for name in ("language_model.model.embed_tokens.weight", "language_model.lm_head.weight"):
            if name in tensors:
                tensors[name][tok_size:] = 0.0     # padding rows beyond the tokenizer: zeros
        # scale the eos row of the output matrix so that some greedy generations end at eos
        out_name = "language_model.model.embed_tokens.weight" if fc["llm"]["tied"] else "language_model.lm_head.weight"
        tensors[out_name][tok_size - 3] *= fc["eos_scale"]
        save_checkpoint(d, tensors, fc["dtype"], fc["shards"])
        assert V >= tok_size

        md = FixtureModelDir(d)
        samples, single, max_batch_diff = compute_fixture(md, DATA)
        gens = make_gen_cases(md, [s["image"] for s in DATA if "image" in s])
        img0 = DATA[0]["image"]
        px = md.pixels(img0)
        feats = md.model.encode_images(px[None])[0]
        tok_cases = []
        for t in TOKENIZER_CASES:
            ids = md.tok.encode(t)
            tok_cases.append({"text": t, "ids": ids, "decoded": md.tok.decode(ids)})
        fixture = {
            "format": FORMAT_VERSION,
            "config": fc["name"],
            "dtype_on_disk": fc["dtype"],
            "image_folder": "images",
            "eos_token_id": md.eos_id,
            "pad_token_id": md.pad_id,
            "tokenizer_vocab_size": md.tok.size,
            "model_vocab_size": V,
            "image_token_index": IMAGE_TOKEN_INDEX,
            "ignore_index": IGNORE_INDEX,
            "samples": samples,
            "pixel_values": {"image": img0, "shape": list(px.shape), "values": px.to(torch.float64).flatten().tolist()},
            "image_features": {"sample": DATA[0]["id"], "shape": list(feats.shape),
                               "values": feats.flatten().tolist()},
            "generation": gens,
            "tokenizer_cases": tok_cases,
        }
        write_fixture_json(os.path.join(d, "fixture.json"), fixture)
        # self-checks on what was written
        stats = self_check(d, verbose=False)
        lg = single[0][0]
        report.append({"config": fc["name"], "seq_lens": [s["seq_len"] for s in samples],
                       "nll": [s["nll"] for s in samples], "tokens": [s["tokens"] for s in samples],
                       "logit_std_sample0": float(lg.std()), "image_feature_std": float(feats.std()),
                       "max_batch_diff": max_batch_diff,
                       "gen": [(g["stop"], len(g["output_ids"]), g["question"]) for g in gens],
                       "check": stats,
                       "bytes": sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(d) for f in fs)})
    print(json.dumps(report, indent=1, ensure_ascii=False))


def self_check(d, verbose=True, tol=1e-10):
    """Recompute everything of one fixture directory from its files and compare with fixture.json;
    also: batching invariance, nll from the stored logits, cached vs uncached generation."""
    fx = json.load(open(os.path.join(d, "fixture.json"), encoding="utf-8"))
    data = json.load(open(os.path.join(d, "data.json"), encoding="utf-8"))
    md = FixtureModelDir(d)
    samples, single, max_batch_diff = compute_fixture(md, data)
    assert max_batch_diff < tol, ("batching changes logits", max_batch_diff)
    worst = 0.0
    for a, b in zip(samples, fx["samples"]):
        for k in ("id", "input_ids", "labels", "spliced_labels", "seq_len", "tokens", "num_image_tokens"):
            assert a[k] == b[k], (d, a["id"], k)
        worst = max(worst, abs(a["nll"] - b["nll"]))
        if "logits" in b:
            lb = torch.tensor(b["logits"], dtype=torch.float64)
            worst = max(worst, float((lb - torch.tensor(a["logits"], dtype=torch.float64)).abs().max()))
            nll2, n2 = nll_from_logits(lb, torch.tensor(b["spliced_labels"]))
            assert abs(nll2 - b["nll"]) < 1e-12 and n2 == b["tokens"], ("nll vs stored logits", a["id"])
        # supervised positions of the spliced labels = answer tokens + eos (+ lone space before a digit)
        assert b["tokens"] == sum(1 for x in b["spliced_labels"][1:] if x != IGNORE_INDEX)
    assert worst < tol, ("fixture mismatch", worst)
    px = md.pixels(fx["pixel_values"]["image"]).to(torch.float64).flatten()
    assert torch.equal(px, torch.tensor(fx["pixel_values"]["values"], dtype=torch.float64)), "pixel_values"
    for g in fx["generation"]:
        px = md.pixels(g["image"]) if g["image"] else None
        ids = tokenizer_image_token(g["prompt"], md.tok)
        assert ids == g["input_ids"]
        o1 = md.model.generate(ids, px, g["max_new_tokens"], md.eos_id, use_cache=True)
        o2 = md.model.generate(ids, px, g["max_new_tokens"], md.eos_id, use_cache=False)
        assert o1 == o2 == g["output_ids"], ("generation", g["question"], o1, o2, g["output_ids"])
    for c in fx["tokenizer_cases"]:
        ids = md.tok.encode(c["text"])
        assert ids == c["ids"], c["text"]
        assert md.tok.decode(ids) == unicodedata.normalize("NFC", c["text"]) == c["decoded"], c["text"]
    res = {"max_abs_diff": worst, "max_batch_diff": max_batch_diff, "ok": True}
    if verbose:
        print(os.path.basename(d), json.dumps(res))
    return res


# ----------------------------------------------------------------------------------------------
# Benchmark: real TinyLLaVA-Qwen2.5-0.5B + SigLIP-so400m shapes
# ----------------------------------------------------------------------------------------------

BENCH_FC = dict(name="bench-0.5b", seed=7, dtype="BF16", shards=1, sparse_config=False,
                vision=dict(hidden=1152, inter=4304, layers=27, heads=16, image=384, patch=14, eps=1e-6),
                llm=dict(hidden=896, inter=4864, layers=24, heads=14, kv=2, rope=1e6, eps=1e-6, vocab=151936,
                         tied=True),
                connector="mlp2x_gelu", feature_layer=-2, select="patch", aspect="pad",
                mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5], max_len=3072, merges_as_pairs=False)


def bench_write(out):
    os.makedirs(out, exist_ok=True)
    vocab, merges = train_bpe(tokenizer_corpus(), N_MERGES)
    tok_size = len(vocab) + len(ADDED_TOKENS)
    cfg = build_config(BENCH_FC, tok_size)
    cfg["text_config"].update({"_name_or_path": "Qwen/Qwen2.5-0.5B", "max_position_embeddings": 32768,
                               "max_window_layers": 24, "sliding_window": 32768})
    cfg["llm_model_name_or_path"] = cfg["tokenizer_name_or_path"] = "Qwen/Qwen2.5-0.5B"
    cfg["vision_config"]["model_name_or_path"] = cfg["vision_model_name_or_path"] = "google/siglip-so400m-patch14-384"
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    with open(os.path.join(out, "preprocessor_config.json"), "w") as f:
        json.dump(preprocessor_config(BENCH_FC), f, indent=2)
        f.write("\n")
    tokenizer_files(out, vocab, merges, BENCH_FC["max_len"], False)
    specs = sorted(tensor_specs(cfg))
    gen = torch.Generator().manual_seed(BENCH_FC["seed"])

    def pieces(shape, kind):   # row blocks of at most ~4M values: low, constant memory
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        rows = max(1, (1 << 22) // fan_in) if len(shape) > 1 else shape[0]
        for r0 in range(0, shape[0], rows):
            sub = [min(rows, shape[0] - r0)] + list(shape[1:])
            t = init_tensor(sub, kind, gen, dtype=torch.float32, fan_in=fan_in)
            yield tensor_to_bytes(t, "BF16")

    def chunks():   # one tensor at a time, each in row blocks
        for name, shape, kind in specs:
            yield pieces(shape, kind)
    t0 = time.time()
    n = write_safetensors(os.path.join(out, "model.safetensors"), [(nm, "BF16", sh) for nm, sh, _ in specs], chunks())
    return {"tensors": len(specs), "params": n // 2, "data_bytes": n,
            "file_bytes": os.path.getsize(os.path.join(out, "model.safetensors")), "write_s": time.time() - t0}


def bench_time(out, threads=2, prompt_tokens=64, new_tokens=32):
    """Wall and process-CPU seconds (CPU / threads approximates wall on an idle machine)."""
    torch.set_num_threads(threads)
    cfg = json.load(open(os.path.join(out, "config.json")))
    tok = BPETokenizer(json.load(open(os.path.join(out, "tokenizer.json"), encoding="utf-8")))
    t0 = time.time()
    model = RefModel(cfg, load_checkpoint(out, dtype=torch.float32), dtype=torch.float32)
    res = {"threads": threads, "dtype": "float32", "load_s": time.time() - t0}
    q = "<image>\nDescribe the picture in detail."
    prompt = build_prompt([{"from": "human", "value": q}, {"from": "gpt", "value": None}])
    ids = tokenizer_image_token(prompt, tok)
    while len(ids) - 1 < prompt_tokens:   # lengthen the question until ~prompt_tokens text tokens
        q += " What else?"
        prompt = build_prompt([{"from": "human", "value": q}, {"from": "gpt", "value": None}])
        ids = tokenizer_image_token(prompt, tok)
    res["prompt_text_tokens"] = len(ids) - 1
    g = torch.Generator().manual_seed(0)
    size = cfg["vision_config"]["image_size"]
    px = torch.rand(3, size, size, generator=g) * 2 - 1

    def clock():
        return time.time(), time.process_time()

    with torch.no_grad():
        w0, c0 = clock()
        feats = model.encode_images(px[None])[0]
        wv, cv = clock()
        emb, _, nimg = model.splice(ids, None, None, feats=feats)
        T = emb.shape[0]
        cache = []
        logits = model.llm(emb[None], torch.arange(T)[None], cache=cache, last_only=True)
        w1, c1 = clock()
        res.update({"vision_connector_s": wv - w0, "vision_connector_cpu_s": cv - c0,
                    "llm_prefill_s": w1 - wv, "llm_prefill_cpu_s": c1 - cv})
        res.update({"image_tokens": nimg, "prefill_seq_len": T, "prefill_s": w1 - w0, "prefill_cpu_s": c1 - c0,
                    "prefill_tokens_per_s": T / (w1 - w0),
                    "prefill_tokens_per_s_from_cpu": T / ((c1 - c0) / threads)})
        w0, c0 = clock()
        for step in range(new_tokens):
            nxt = int(torch.argmax(logits[0, -1]))
            logits = model.llm(model.embed(torch.tensor([[nxt]])), torch.tensor([[T + step]]), cache=cache)
        w1, c1 = clock()
        res.update({"decode_tokens": new_tokens, "decode_s": w1 - w0, "decode_cpu_s": c1 - c0,
                    "decode_tokens_per_s": new_tokens / (w1 - w0),
                    "decode_tokens_per_s_from_cpu": new_tokens / ((c1 - c0) / threads)})
    res["load_average_1m_at_end"] = os.getloadavg()[0]
    res["cpus"] = os.cpu_count()
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("fixtures")
    p.add_argument("--out", default=os.path.join(REPO, "testdata", "models"))
    p = sub.add_parser("check")
    p.add_argument("--dir", default=os.path.join(REPO, "testdata", "models"))
    p = sub.add_parser("bench")
    p.add_argument("--out", required=True)
    p.add_argument("--time", action="store_true", help="time the float32 forward (2 threads)")
    p.add_argument("--skip-write", action="store_true", help="reuse the checkpoint already in --out")
    p.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    if a.cmd == "fixtures":
        generate_fixtures(a.out)
    elif a.cmd == "check":
        for fc in FIXTURE_CONFIGS:
            self_check(os.path.join(a.dir, fc["name"]))
    else:
        res = {}
        if not a.skip_write:
            res["write"] = bench_write(a.out)
        res["disk_bytes"] = sum(os.path.getsize(os.path.join(a.out, f)) for f in os.listdir(a.out))
        if a.time:
            res["time"] = bench_time(a.out, threads=a.threads)
        print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
