#!/usr/bin/env python3
"""Independent float64 reference for `switchkd losses` (per-sample Switch-KD loss terms).

Builds a tiny TEACHER / STUDENT TinyLLaVA pair in testdata/switch/ and writes fixture.json with,
per objective setting and per sample: tokens, ce, align, vsd, total. The Go test
train/losses_parity_test.go compares train.Losses against it (Go never runs Python).

The models, template, labels, splicing and image preprocessing come from tinyllava_ref.py (its
own float64 reference, itself checked against testdata/models). The loss terms (CE, DBiLD, BiLD,
forward/reverse KL, JSD) are written here from the text of /work/shared/spec/SWITCH-KD.md
("The objective", "DBiLD", "Conventions") with plain Python loops over float64 tensors, without
looking at the Go code or at reference/losses_ref.py.

  write [--out testdata/switch]   build the pair, data, images, fixture.json; then run `check`
  check [--dir testdata/switch]   recompute fixture.json from the files and compare (1e-12)

The pair:
* same tokenizer (tiny-a's files copied), same vision tower shape (SigLIP hidden 16, 2 layers,
  image 28, patch 7 -> 16 patches, feature layer -2, `patch`: 15 image tokens), same
  preprocessing (square, mean/std 0.5);
* the student's vision weights are the teacher's plus N(0, 0.02) noise (the paper initialises
  the student's vision tower from the teacher's; the noise makes the visual-switch term non-zero);
* teacher LLM: Qwen2 hidden 32, mlp 64, 3 layers, 4 heads / 2 kv heads, vocab 432, tied, BF16
  on disk; student LLM: hidden 16, mlp 32, 2 layers, 2 heads / 1 kv head, vocab 440, tied,
  F32 on disk (all of testdata/switch stays < 300 KB). Distillation therefore uses the first
  432 logits; CE the student's 440.
* padding rows (ids 419..V-1) of the output matrices are random, not zero (like real Qwen
  checkpoints): a CE over the wrong vocabulary, or a distillation term over the wrong cut,
  changes the numbers far beyond the tolerance.
* data.json = tinyllava_ref.DATA (6 samples: text-only, multi-turn with a digit-start answer,
  digit-only answer, <image> without an image file, long 3-round) with the JPEG swapped for a
  PNG (see switch_data); images copied from testdata/models/tiny-a/images.

Tie rules (first maximum of d_i, lower index first among equal logits) are not exercised by these
random real-valued logits; the spec's worked example (asserted below) and distill's unit tests
cover them.

Near-discontinuities: DBiLD's knee (argmax of d_i) and the top-k sets are discrete choices. A
float32 implementation agrees with this float64 one only if every choice has a margin well above
float32 noise. `check` (run by `write`) reruns the same models in float32 and asserts that every
term stays within F32_BUDGET (20%) of the Go test's tolerance; `margins` in fixture.json records,
per setting, the smallest knee gap (max d_i minus the best d_i that would give a different clamped
k) and the smallest top-k gap (k-th minus (k+1)-th leader logit) over all positions and both
directions, for information.
"""

import argparse
import json
import math
import os
import shutil
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import tinyllava_ref as ref  # noqa: E402

REPO = os.path.dirname(HERE)
FORMAT = "switchkd-losses-ref/1"
SEED = 4242
F32_BUDGET = 0.2   # a float32 run of this reference may use at most this fraction of the Go tolerance
IMAGES = ["rgba.png", "gray.png", "palette.png"]


def switch_data():
    """tinyllava_ref.DATA with the JPEG swapped for a PNG: Go's JPEG decoder differs from
    libjpeg's by one level in some pixels (tolerated by the spec), which moves the loss terms by
    up to a few percent (vsd is a small difference of two paths) -- far beyond this fixture's
    1e-4. JPEG decoding is covered by the vlm parity test; here the inputs must be bit-exact."""
    data = json.loads(json.dumps(ref.DATA))
    for s in data:
        if s.get("image", "").endswith(".jpg"):
            s["id"] = s["id"].replace("_jpeg", "_png")
            s["image"] = "rgba.png"
    assert all(s.get("image", "") in IMAGES + [""] for s in data)
    return data
TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt"]

VISION = dict(hidden=16, inter=32, layers=2, heads=2, image=28, patch=7, eps=1e-6)
COMMON = dict(connector="mlp2x_gelu", feature_layer=-2, select="patch", aspect="square",
              mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5], max_len=2048, merges_as_pairs=False,
              sparse_config=False, shards=1, vision=VISION)
TEACHER = dict(COMMON, name="switch-teacher", dtype="BF16", eos_scale=1.0,
               llm=dict(hidden=32, inter=64, layers=3, heads=4, kv=2, rope=1e6, eps=1e-6, vocab=432, tied=True))
STUDENT = dict(COMMON, name="switch-student", dtype="F32", eos_scale=1.0,
               llm=dict(hidden=16, inter=32, layers=2, heads=2, kv=1, rope=1e6, eps=1e-6, vocab=440, tied=True))

# Objective settings (names and keys follow the YAML `objective:` block of docs/DISTILL.md).
BASE = dict(w_ce=1.0, w_align=1.0, w_vsd=1.0, align="dbild", vsd="dbild", tau=3.0, window=64, k_min=4,
            k_max=64, bild_k=8)
SETTINGS = [
    ("default", dict(BASE)),
    ("bild", dict(BASE, align="bild", vsd="bild")),
    ("fkl", dict(BASE, align="fkl", vsd="fkl")),
    ("rkl", dict(BASE, align="rkl", vsd="rkl")),
    ("jsd", dict(BASE, align="jsd", vsd="jsd")),
    # non-default knobs reach the loss: window 16 (raw knees 2..14 on these logits, so both the
    # k_min and the k_max clamps bind), tau, weights; mixed terms
    ("dbild_w16_tau2", dict(BASE, tau=2.0, window=16, k_min=4, k_max=9, w_ce=0.5, w_align=2.0, w_vsd=0.25)),
    ("fkl_tau1_bild_k5", dict(BASE, tau=1.0, align="fkl", vsd="bild", bild_k=5, w_vsd=3.0)),
]


# ----------------------------------------------------------------------------------------------
# Loss terms, float64, per position, from the spec text
# ----------------------------------------------------------------------------------------------

def desc_order(u):
    """Indices of u in descending order; among equal values the lower index first (stable)."""
    vals = u.tolist()
    return sorted(range(len(vals)), key=lambda i: (-vals[i], i))


def knee(u, window, k_min, k_max):
    """Spec "DBiLD" step 1. Returns (k, margin): margin = max d_i minus the largest d_i whose
    clamped index differs (inf when every index clamps to the same k or k = k_max by rule)."""
    V = u.shape[0]
    M = min(window, V)
    order = desc_order(u)[:M]
    top = [float(u[i]) for i in order]
    u1, uM = top[0], top[-1]
    if u1 == uM:
        return k_max, math.inf
    d = []
    for i in range(1, M + 1):
        x = (i - 1) / (M - 1)
        y = (top[i - 1] - uM) / (u1 - uM)
        d.append((1.0 - x) - y)
    dmax = max(d)
    if dmax <= 0:   # d_1 = d_M = 0, so every interior d_i < 0 (or == 0: fragile, margin 0)
        return k_max, -max(d[1:M - 1]) if M > 2 else math.inf
    arg = d.index(dmax) + 1  # first maximum, 1-based
    k = min(max(arg, k_min), k_max)
    other = [d[i - 1] for i in range(1, M + 1) if min(max(i, k_min), k_max) != k]
    margin = dmax - max(other) if other else math.inf
    return k, min(margin, dmax)   # dmax -> 0 would switch to k_max


def topk(u, k):
    """(indices of the k largest entries in descending order, gap between k-th and (k+1)-th)."""
    order = desc_order(u)
    idx = order[:k]
    gap = float(u[order[k - 1]] - u[order[k]]) if k < len(order) else math.inf
    return idx, gap


def pair_logits(v, tau):
    """(v_i - v_j) / tau for all i < j, in the given order."""
    n = v.shape[0]
    i, j = torch.triu_indices(n, n, 1)   # row-major: (0,1), (0,2), ..., (n-2,n-1)
    return (v[i] - v[j]) / tau


def kl(p_logits, q_logits):
    """KL(P || Q) with P = softmax(p_logits), Q = softmax(q_logits)."""
    lp = torch.log_softmax(p_logits, 0)
    lq = torch.log_softmax(q_logits, 0)
    return float((lp.exp() * (lp - lq)).sum())


def dbild(t, s, tau, window, k_min, k_max, stats):
    V = t.shape[0]
    M = min(window, V)
    k_max = min(k_max, M)
    kt, mt = knee(t, window, k_min, k_max)
    ks, ms = knee(s, window, k_min, k_max)
    I, gt = topk(t, kt)
    J, gs = topk(s, ks)
    stats["knee"] = min(stats["knee"], mt, ms)
    stats["topk"] = min(stats["topk"], gt, gs)
    stats["k"].append((kt, ks))
    a, b = t[I], s[I]
    l_t = kl(pair_logits(b, tau), pair_logits(a, tau))   # KL(Q || P), reverse
    c, e = s[J], t[J]
    l_s = kl(pair_logits(c, tau), pair_logits(e, tau))   # KL(Q' || P')
    return l_t + l_s


def bild(t, s, k, tau, stats):
    I, gt = topk(t, k)
    J, gs = topk(s, k)
    stats["topk"] = min(stats["topk"], gt, gs)
    l_t = kl(pair_logits(t[I], tau), pair_logits(s[I], tau))   # KL(P || Q), forward
    l_s = kl(pair_logits(t[J], tau), pair_logits(s[J], tau))   # KL(P' || Q')
    return l_t + l_s


def divergence(name, t, s, o, stats):
    tau = o["tau"]
    if name == "dbild":
        return dbild(t, s, tau, o["window"], o["k_min"], o["k_max"], stats)
    if name == "bild":
        return bild(t, s, o["bild_k"], tau, stats)
    if name == "fkl":
        return tau * tau * kl(t / tau, s / tau)
    if name == "rkl":
        return tau * tau * kl(s / tau, t / tau)
    if name == "jsd":
        lpt = torch.log_softmax(t / tau, 0)
        lps = torch.log_softmax(s / tau, 0)
        lm = torch.logaddexp(lpt, lps) - math.log(2.0)   # log of m = (p_T + p_S) / 2
        return float(0.5 * (lpt.exp() * (lpt - lm)).sum() + 0.5 * (lps.exp() * (lps - lm)).sum())
    if name == "none":
        return 0.0
    raise ValueError(name)


def spec_example():
    """The spec's worked DBiLD example must reproduce (tau 1, M 5, k_min 3)."""
    t = torch.tensor([1, 4, 0, 2, 0.5], dtype=torch.float64)
    s = torch.tensor([3, 2, -0.5, 0, 1], dtype=torch.float64)
    assert knee(t, 5, 3, 5)[0] == 3 and knee(s, 5, 3, 5)[0] == 4
    I, _ = topk(t, 3)
    J, _ = topk(s, 4)
    l_t = kl(pair_logits(s[I], 1.0), pair_logits(t[I], 1.0))
    l_s = kl(pair_logits(s[J], 1.0), pair_logits(t[J], 1.0))
    assert abs(l_t - 1.138617) < 5e-7, l_t
    assert abs(l_s - 2.372789) < 5e-7, l_s
    st = dict(knee=math.inf, topk=math.inf, k=[])
    tot = dbild(t, s, 1.0, 5, 3, 5, st)
    assert abs(tot - 3.511406) < 1e-6, tot
    return l_t, l_s


# ----------------------------------------------------------------------------------------------
# Forward passes: teacher, student, visual switch
# ----------------------------------------------------------------------------------------------

def supervised_positions(labels):
    """Positions t whose next-token label is not -100 (HF causal shift)."""
    lab = labels.tolist()
    return [t for t in range(len(lab) - 1) if lab[t + 1] != ref.IGNORE_INDEX]


class SwitchModel(ref.RefModel):
    """The teacher's connector and LLM reading the STUDENT's vision features."""

    def __init__(self, teacher, student):
        self.__dict__.update(teacher.__dict__)
        self._teacher, self._student = teacher, student

    def encode_images(self, pixels):
        return self._teacher.connector(self._student.vision_features(pixels))


def forward_all(d, dtype=torch.float64):
    """Logits of teacher, student and switch per sample. dtype float32 runs the same models in
    float32 (the logits are then widened back to float64) to measure how robust the fixture's
    discrete choices (knees, top-k sets) are to float32 noise."""
    mt = ref.FixtureModelDir(os.path.join(d, "teacher"))
    ms = ref.FixtureModelDir(os.path.join(d, "student"))
    for md in (mt, ms):
        md.image_folder = os.path.join(d, "images")
        if dtype != torch.float64:
            md.model = ref.RefModel(md.cfg, md.model.w, dtype=dtype)
    data = json.load(open(os.path.join(d, "data.json"), encoding="utf-8"))
    sw = SwitchModel(mt.model, ms.model)
    out = []
    for s in data:
        _, ids_s, lab_s, px_s = ms.sample(s)
        _, ids_t, lab_t, px_t = mt.sample(s)
        zs, ls, ni_s = ms.model.forward_batch([(ids_s, lab_s, px_s)])[0]
        zt, lt, ni_t = mt.model.forward_batch([(ids_t, lab_t, px_t)])[0]
        zs, zt = zs.to(torch.float64), zt.to(torch.float64)
        # the switch reads the student's pixels and runs in the student's layout
        zw, lw, ni_w = sw.forward_batch([(ids_s, lab_s, px_s)])[0]
        zw = zw.to(torch.float64)
        assert ni_w == ni_s and torch.equal(lw, ls)
        out.append(dict(id=s["id"], zs=zs, ls=ls, zt=zt, lt=lt, zw=zw, n_img=(ni_t, ni_s)))
    return mt, ms, data, out


def compute(d, dtype=torch.float64):
    mt, ms, data, fw = forward_all(d, dtype)
    VT, VS = mt.cfg["text_config"]["vocab_size"], ms.cfg["text_config"]["vocab_size"]
    V = min(VT, VS)
    settings, margins = [], []
    for name, o in SETTINGS:
        stats = dict(knee=math.inf, topk=math.inf, k=[])
        rows = []
        for f in fw:
            ps, pt = supervised_positions(f["ls"]), supervised_positions(f["lt"])
            # CE: student, full student vocabulary, every supervised position
            lab = f["ls"].tolist()
            ce = 0.0
            for t in ps:
                ce += float(-torch.log_softmax(f["zs"][t], 0)[lab[t + 1]])
            ce /= len(ps)
            # distillation: positions paired by answer-token order, first V logits
            n = min(len(ps), len(pt))
            al = vs = 0.0
            for j in range(n):
                zt = f["zt"][pt[j], :V]
                al += divergence(o["align"], zt, f["zs"][ps[j], :V], o, stats)
                vs += divergence(o["vsd"], zt, f["zw"][ps[j], :V], o, stats)
            al, vs = al / n, vs / n
            total = o["w_ce"] * ce + o["w_align"] * al + o["w_vsd"] * vs
            rows.append(dict(id=f["id"], tokens=len(ps), ce=ce, align=al, vsd=vs, total=total))
        settings.append(dict(name=name, objective=o, samples=rows))
        margins.append(dict(setting=name, knee=stats["knee"] if stats["knee"] != math.inf else None,
                            topk=stats["topk"] if stats["topk"] != math.inf else None,
                            k_range=[min(min(k) for k in stats["k"]), max(max(k) for k in stats["k"])]
                            if stats["k"] else None))
    info = dict(teacher_vocab=VT, student_vocab=VS, distill_vocab=V,
                image_tokens=[list(f["n_img"]) for f in fw],
                seq_lens=[int(f["zs"].shape[0]) for f in fw])
    return settings, margins, info


# ----------------------------------------------------------------------------------------------
# Writing the pair
# ----------------------------------------------------------------------------------------------

def write_model(d, fc, tok_size, tensors_fn):
    os.makedirs(d, exist_ok=True)
    for fn in os.listdir(d):
        os.remove(os.path.join(d, fn))
    cfg = ref.build_config(fc, tok_size)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    with open(os.path.join(d, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": tok_size - 3, "eos_token_id": tok_size - 3, "max_new_tokens": 2048,
                   "transformers_version": "4.40.1"}, f, indent=2)
        f.write("\n")
    with open(os.path.join(d, "preprocessor_config.json"), "w") as f:
        json.dump(ref.preprocessor_config(fc), f, indent=2)
        f.write("\n")
    src = os.path.join(REPO, "testdata", "models", "tiny-a")
    for fn in TOKENIZER_FILES:
        shutil.copyfile(os.path.join(src, fn), os.path.join(d, fn))
    tensors = tensors_fn(cfg)
    ref.save_checkpoint(d, tensors, fc["dtype"], 1)
    return cfg


def write(out, seed=SEED):
    spec_example()
    src = os.path.join(REPO, "testdata", "models", "tiny-a")
    tok_size = ref.BPETokenizer(json.load(open(os.path.join(src, "tokenizer.json"), encoding="utf-8"))).size
    os.makedirs(out, exist_ok=True)
    img = os.path.join(out, "images")
    os.makedirs(img, exist_ok=True)
    for fn in IMAGES:
        shutil.copyfile(os.path.join(src, "images", fn), os.path.join(img, fn))
    with open(os.path.join(out, "data.json"), "w", encoding="utf-8") as f:
        json.dump(switch_data(), f, indent=2, ensure_ascii=False)
        f.write("\n")
    gen = torch.Generator().manual_seed(seed)

    def random_tensors(cfg):
        return {name: ref.init_tensor(shape, kind, gen) for name, shape, kind in ref.tensor_specs(cfg)}

    teacher_vision = {}

    def teacher_fn(cfg):
        t = random_tensors(cfg)
        # the reference computes with what is on disk: keep the BF16-rounded values for the student
        for k, v in t.items():
            if k.startswith("vision_tower."):
                teacher_vision[k] = ref.bytes_to_tensor(ref.tensor_to_bytes(v, "BF16"), "BF16",
                                                        list(v.shape)).to(torch.float64)
        return t

    def student_fn(cfg):
        t = random_tensors(cfg)
        for k, v in teacher_vision.items():
            assert t[k].shape == v.shape
            t[k] = v + 0.02 * torch.randn(*v.shape, generator=gen, dtype=torch.float64)
        return t

    write_model(os.path.join(out, "teacher"), TEACHER, tok_size, teacher_fn)
    write_model(os.path.join(out, "student"), STUDENT, tok_size, student_fn)

    settings, margins, info = compute(out)
    fixture = {
        "format": FORMAT,
        "teacher": "teacher",
        "student": "student",
        "data": "data.json",
        "images": "images",
        "info": info,
        "margins": margins,
        "settings": settings,
    }
    write_fixture(os.path.join(out, "fixture.json"), fixture)
    check(out)
    total = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(out) for f in fs)
    print(json.dumps(dict(info=info, margins=margins, bytes=total), indent=1))
    for s in settings:
        print(s["name"])
        for r in s["samples"]:
            print("  %-20s tok %2d ce %.6f align %.6f vsd %.6f total %.6f" %
                  (r["id"], r["tokens"], r["ce"], r["align"], r["vsd"], r["total"]))


def write_fixture(path, obj):
    """Top-level keys one per line; each setting on its own lines, each sample row on one line."""
    lines = ["{"]
    keys = list(obj)
    for i, k in enumerate(keys):
        comma = "," if i < len(keys) - 1 else ""
        v = obj[k]
        if k == "settings":
            lines.append(json.dumps(k) + ": [")
            for j, s in enumerate(v):
                lines.append('{"name": %s, "objective": %s, "samples": [' %
                             (json.dumps(s["name"]), json.dumps(s["objective"], separators=(",", ":"))))
                for n, r in enumerate(s["samples"]):
                    lines.append(json.dumps(r, separators=(",", ":")) + ("," if n < len(s["samples"]) - 1 else ""))
                lines.append("]}" + ("," if j < len(v) - 1 else ""))
            lines.append("]" + comma)
        elif isinstance(v, list):
            lines.append(json.dumps(k) + ": [")
            for j, e in enumerate(v):
                lines.append(json.dumps(e, separators=(",", ":")) + ("," if j < len(v) - 1 else ""))
            lines.append("]" + comma)
        else:
            lines.append(json.dumps(k) + ": " + json.dumps(v, separators=(",", ":")) + comma)
    lines.append("}")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def check(d, tol=1e-12):
    spec_example()
    fx = json.load(open(os.path.join(d, "fixture.json"), encoding="utf-8"))
    assert fx["format"] == FORMAT
    settings, _, _ = compute(d)
    worst = 0.0
    for a, b in zip(fx["settings"], settings):
        assert a["name"] == b["name"] and a["objective"] == b["objective"]
        for ra, rb in zip(a["samples"], b["samples"]):
            assert ra["id"] == rb["id"] and ra["tokens"] == rb["tokens"]
            for k in ("ce", "align", "vsd", "total"):
                worst = max(worst, abs(ra[k] - rb[k]))
    assert len(fx["settings"]) == len(settings)
    assert worst <= tol, worst
    # the vision perturbation reaches the switch term; the text-only sample has none
    for s in fx["settings"]:
        for r in s["samples"]:
            if r["id"] == "s1_text_only":
                assert abs(r["vsd"]) < 1e-12, r
            else:
                assert r["vsd"] > 0.0, r
    # robustness: the same models run in float32 must stay well inside the Go test's tolerance
    # (max(1e-4 |want|, 1e-6)); a knee or top-k set flipped by float32 noise would show here.
    s32, _, _ = compute(d, torch.float32)
    used = 0.0
    for a, b in zip(fx["settings"], s32):
        for ra, rb in zip(a["samples"], b["samples"]):
            for k in ("ce", "align", "vsd", "total"):
                used = max(used, abs(ra[k] - rb[k]) / max(1e-4 * abs(ra[k]), 1e-6))
    assert used < F32_BUDGET, ("float32 run uses %.2f of the tolerance: fragile fixture, pick another SEED" % used)
    print("check %s: %d settings, max |diff| %.3g; float32 run uses %.3f of the Go tolerance" %
          (d, len(settings), worst, used))
    return used


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("write")
    w.add_argument("--out", default=os.path.join(REPO, "testdata", "switch"))
    w.add_argument("--seed", type=int, default=SEED)
    c = sub.add_parser("check")
    c.add_argument("--dir", default=os.path.join(REPO, "testdata", "switch"))
    a = ap.parse_args()
    torch.set_default_dtype(torch.float64)
    if a.cmd == "write":
        write(a.out, a.seed)
    else:
        check(a.dir)


if __name__ == "__main__":
    main()
