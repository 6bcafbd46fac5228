#!/usr/bin/env python3
"""Independent float64 PyTorch reference for the Switch-KD loss terms (package distill).

Written from /work/shared/spec/SWITCH-KD.md ("The objective", "DBiLD", "Conventions"), one
position at a time, so that it shares no structure with the Go graph code. Used only to write the
fixtures in testdata/losses/ (never at test time) and for the `bench` comparison.

  python3 reference/losses_ref.py fixtures [--out testdata/losses]
  python3 reference/losses_ref.py bench

Conventions this package adds where the spec is silent (mirrored in distill/knee.go, pairs.go):
  * -inf entries of the leader's window are never candidates: the knee is taken over the finite
    head of the window (M' entries, x_i = (i-1)/(M'-1)), k_min and k_max are capped at M';
    fewer than 2 finite entries means no pairs and a zero term.
  * BiLD's fixed k is capped the same way.
  * 0 * log 0 = 0 in every KL / JSD.
  * In DBiLD/BiLD pair differences, values below -2^122 (i.e. -inf followers) are clamped to
    -2^122: an impossible token gives a huge finite KL instead of NaN.
"""
import argparse
import base64
import json
import math
import os
import sys
import time

import numpy as np
import torch

F64 = torch.float64


# ---------------------------------------------------------------------------------------------
# Per-position definitions (float64)

def stable_desc_order(u):
    """Indices of u in descending order, lower index first among equal values."""
    # Python's sort is stable; sort by -value.
    vals = u.tolist()
    return sorted(range(len(vals)), key=lambda i: -vals[i])


def knee(top, k_min, k_max):
    """Spec step 1 on an already sorted (descending) window `top` (list of floats)."""
    m = len(top)
    if k_max is None or k_max <= 0 or k_max > m:
        k_max = m
    mf = 0
    while mf < m and top[mf] != -math.inf:
        mf += 1
    k_max = min(k_max, mf)
    k_min = min(k_min, k_max)
    if mf < 2:
        return mf
    u1, um = top[0], top[mf - 1]
    if u1 == um:
        return k_max
    best, best_d = None, None
    for i in range(1, mf + 1):  # 1-based as in the spec
        x = (i - 1) / (mf - 1)
        y = (top[i - 1] - um) / (u1 - um)
        d = (1 - x) - y
        if best is None or d > best_d:  # first maximum on ties
            best, best_d = i, d
    if best_d <= 0:
        return k_max
    return max(k_min, min(k_max, best))


NEG_CLAMP = -2.0 ** 122


def pair_logits(v, k, tau):
    """(v_i - v_j)/tau for all pairs i < j among the first k entries, as a 1-D tensor.

    A -inf follower value (the leader's entries are finite by the knee convention) is clamped to
    -2^122, so that an impossible token gives a huge finite KL instead of NaN (package convention).
    """
    v = torch.clamp(v, min=NEG_CLAMP)
    out = []
    for i in range(k):
        for j in range(i + 1, k):
            out.append((v[i] - v[j]) / tau)
    return torch.stack(out)


def kl(p_logits, q_logits):
    """KL(softmax(p_logits) || softmax(q_logits)) with 0 log 0 = 0."""
    lp = torch.log_softmax(p_logits, 0)
    lq = torch.log_softmax(q_logits, 0)
    p = lp.exp()
    # 0 log 0 = 0; the inner where keeps NaN (-inf - -inf) out of the backward pass too.
    diff = torch.where(p > 0, lp - lq, torch.zeros_like(p))
    return (p * diff).sum()


def zero_like_graph(s):
    """A 0 that is still attached to s's autograd graph (s may hold -inf)."""
    return torch.where(torch.isfinite(s), s, torch.zeros_like(s)).sum() * 0


def shared(t, s):
    v = min(t.shape[-1], s.shape[-1])
    return t[..., :v], s[..., :v]


def dbild_row(t, s, tau, window, k_min, k_max):
    """Returns (L_t, L_s, k_t, k_s) for one position; s may require grad."""
    t, s = shared(t, s)
    m = min(window, t.shape[0])
    # Teacher-led
    order_t = stable_desc_order(t.detach())[:m]
    kt = knee([float(t[i]) for i in order_t], k_min, k_max)
    if kt >= 2:
        I = torch.tensor(order_t[:kt])
        a, b = t[I], s[I]
        P, Q = pair_logits(a, kt, tau), pair_logits(b, kt, tau)
        lt = kl(Q, P)  # reverse KL: KL(Q || P)
    else:
        lt = zero_like_graph(s)
    # Student-led (selection without gradient)
    order_s = stable_desc_order(s.detach())[:m]
    ks = knee([float(s.detach()[i]) for i in order_s], k_min, k_max)
    if ks >= 2:
        J = torch.tensor(order_s[:ks])
        c, e = s[J], t[J]
        Qp, Pp = pair_logits(c, ks, tau), pair_logits(e, ks, tau)
        ls = kl(Qp, Pp)  # KL(Q' || P')
    else:
        ls = zero_like_graph(s)
    return lt, ls, kt, ks


def bild_row(t, s, k, tau):
    t, s = shared(t, s)
    out = zero_like_graph(s)
    for lead_is_t in (True, False):
        lead = (t if lead_is_t else s).detach()
        order = stable_desc_order(lead)
        nfin = sum(1 for x in lead.tolist() if x != -math.inf)
        kk = min(k, len(order), nfin)
        if kk < 2:
            continue
        idx = torch.tensor(order[:kk])
        P = pair_logits(t[idx], kk, tau)
        Q = pair_logits(s[idx], kk, tau)
        out = out + kl(P, Q)  # forward KL(P || Q)
    return out


def ce_row(s, label):
    return torch.logsumexp(s, 0) - s[label]


def fkl_row(t, s, tau):
    t, s = shared(t, s)
    return tau * tau * kl(t / tau, s / tau)


def rkl_row(t, s, tau):
    t, s = shared(t, s)
    return tau * tau * kl(s / tau, t / tau)


def jsd_row(t, s, tau):
    t, s = shared(t, s)
    pt, ps = torch.softmax(t / tau, 0), torch.softmax(s / tau, 0)
    m = 0.5 * (pt + ps)

    def kl_p_m(p):
        pos = p > 0
        one = torch.ones_like(p)
        diff = torch.where(pos, torch.log(torch.where(pos, p, one)) - torch.log(torch.where(pos, m, one)),
                           torch.zeros_like(p))
        return (p * diff).sum()
    return 0.5 * kl_p_m(pt) + 0.5 * kl_p_m(ps)


# ---------------------------------------------------------------------------------------------
# Fixtures

def f32(x):
    return np.asarray(x, dtype=np.float32).astype(np.float64)


def b64f32(a):
    """Row-major little-endian float32 bytes, base64 (exact, compact, keeps -inf)."""
    return base64.b64encode(np.ascontiguousarray(a, dtype="<f4").tobytes()).decode()


def enc(a):
    """Float array -> nested lists with -inf as null (JSON has no infinities)."""
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 0:
        return None if a == -np.inf else float(a)
    return [enc(x) for x in a]


def make_case(name, rng, n, vt, vs, tau, window, k_min, kind="normal", scale=2.0, dense_grads=True):
    t = rng.normal(size=(n, vt)) * scale
    s = rng.normal(size=(n, vs)) * scale
    if kind == "ties":
        t = rng.integers(-2, 3, size=(n, vt)).astype(np.float64)
        s = rng.integers(-2, 3, size=(n, vs)).astype(np.float64)
    elif kind == "heads":
        # row 0: flat head (top window all equal) in t, steep in s; row 1: steep t, flat s;
        # row 2: both flat everywhere; row 3: one dominant logit (very steep); row 4: linear head.
        t[0, :] = rng.normal(size=vt) - 10
        t[0, :window + 3] = 5.0
        s[0, 0] = 20.0
        t[1, 0], t[1, 1] = 30.0, 25.0
        s[1, :] = 1.5
        t[2, :] = 0.25
        s[2, :] = -0.75
        t[3, 7] = 60.0
        s[3, 3] = 45.0
        t[4, :] = -np.arange(vt) * 0.5
        s[4, :] = -np.arange(vs) * 0.25 + 3
    elif kind == "neginf":
        v = min(vt, vs)
        for r in range(n):
            nb = rng.integers(1, v // 2)
            cols = rng.choice(v, size=nb, replace=False)
            t[r, cols] = -np.inf
            s[r, cols] = -np.inf
        # last row: fewer finite entries than the window (and than k_min for the teacher)
        t[n - 1, 3:] = -np.inf
        s[n - 1, 5:] = -np.inf
        s[n - 1, 3:] = -np.inf  # -inf positions are shared: no loss is infinite
    elif kind == "huge":
        t = t * 1e4
        s = s * 1e4
        t[0] *= 1e26  # 1e30 scale
        s[0] *= 1e26
    t, s = f32(t), f32(s)
    labels = rng.integers(0, vs, size=n)
    for r in range(n):
        while not np.isfinite(s[r, labels[r]]):
            labels[r] = rng.integers(0, vs)
    mask = np.ones(n)
    if n >= 4:
        mask[n - 2] = 0.0  # a padding row in the middle of the bucket
        labels[n - 2] = -100
    case = dict(name=name, n=n, vt=vt, vs=vs, tau=tau, window=window, k_min=k_min, k_max=0, bild_k=8,
                t_f32=b64f32(t), s_f32=b64f32(s), labels=labels.tolist(), mask=mask.tolist())
    T = torch.tensor(t, dtype=F64)
    valid = [r for r in range(n) if mask[r] > 0]
    losses = {
        "ce": lambda r, S: ce_row(S[r], int(labels[r])),
        "fkl": lambda r, S: fkl_row(T[r], S[r], tau),
        "rkl": lambda r, S: rkl_row(T[r], S[r], tau),
        "jsd": lambda r, S: jsd_row(T[r], S[r], tau),
        "bild": lambda r, S: bild_row(T[r], S[r], 8, 3.0),
        "dbild": lambda r, S: sum(dbild_row(T[r], S[r], tau, window, k_min, 0)[:2]),
    }
    if not dense_grads:  # large vocabulary: only the top-M terms (dense gradients would be too big)
        for k in ("ce", "fkl", "rkl", "jsd"):
            del losses[k]
    if kind == "huge":
        del losses["jsd"]  # JSD at 1e30 scale is 0 or log 2 exactly: kept out, covered by KL
    exp = {}
    for lname, fn in losses.items():
        S = torch.tensor(s, dtype=F64, requires_grad=True)
        per = []
        for r in range(n):
            per.append(fn(r, S) if mask[r] > 0 else torch.zeros((), dtype=F64))
        mean = sum(per[r] for r in valid) / max(len(valid), 1)
        mean.backward()
        ent = {"per_pos": [float(p) for p in per], "mean": float(mean)}
        gr = S.grad.numpy()
        if dense_grads:
            ent["grad"] = gr.tolist()
        else:
            nz = np.nonzero(gr)
            ent["grad_sparse"] = [[int(i), int(j), float(gr[i, j])] for i, j in zip(*nz)]
        exp[lname] = ent
    lt, ls, kt, ks = [], [], [], []
    for r in range(n):
        a, b, c, d = dbild_row(T[r], torch.tensor(s[r], dtype=F64), tau, window, k_min, 0)
        lt.append(float(a)); ls.append(float(b)); kt.append(c); ks.append(d)
    exp["dbild_terms"] = dict(lt=lt, ls=ls, kt=kt, ks=ks)
    case["expected"] = exp
    return case


def fixtures(out):
    rng = np.random.default_rng(20261126)
    cases = [
        make_case("basic", rng, 6, 50, 50, 3.0, 16, 4),
        make_case("vs_bigger", rng, 5, 40, 48, 2.0, 12, 3),
        make_case("vt_bigger", rng, 4, 48, 40, 1.5, 64, 4),
        make_case("ties", rng, 6, 24, 24, 1.0, 10, 2, kind="ties"),
        make_case("heads", rng, 6, 30, 30, 3.0, 8, 3, kind="heads"),
        make_case("neginf", rng, 5, 20, 20, 2.0, 64, 4, kind="neginf"),
        make_case("huge", rng, 4, 32, 32, 3.0, 16, 4, kind="huge"),
        make_case("tiny_vocab", rng, 4, 6, 7, 3.0, 64, 4),
        make_case("tournament", rng, 2, 4100, 4100, 3.0, 64, 4, scale=3.0, dense_grads=False),
    ]
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "losses.json")
    with open(path, "w") as f:
        json.dump(dict(generator="reference/losses_ref.py fixtures", torch=torch.__version__, cases=cases), f,
                  separators=(",", ":"))
    print(f"wrote {path}: {os.path.getsize(path)} bytes, {len(cases)} cases")


# ---------------------------------------------------------------------------------------------
# Batched float32 versions for the benchmark (same definitions, vectorised)

def knee_batched(top, k_min, k_max):
    n, m = top.shape
    u1, um = top[:, :1], top[:, -1:]
    x = torch.arange(m, dtype=top.dtype) / max(m - 1, 1)
    rng = (u1 - um)
    y = (top - um) / torch.where(rng == 0, torch.ones_like(rng), rng)
    d = (1 - x) - y
    mx, arg = d.max(1)
    k = (arg + 1).clamp(k_min, k_max)
    flat = (rng[:, 0] == 0) | (mx <= 0)
    return torch.where(flat, torch.full_like(k, k_max), k)


def pair_kl_batched(tv, sv, k, tau, reverse):
    n, m = tv.shape
    ii = torch.arange(m).view(1, m, 1)
    jj = torch.arange(m).view(1, 1, m)
    valid = (ii < jj) & (jj < k.view(n, 1, 1))
    A = (tv.unsqueeze(2) - tv.unsqueeze(1)) / tau
    B = (sv.unsqueeze(2) - sv.unsqueeze(1)) / tau
    ninf = torch.tensor(-math.inf, dtype=tv.dtype)
    lA = torch.log_softmax(torch.where(valid, A, ninf).view(n, -1), 1).view(n, m, m)
    lB = torch.log_softmax(torch.where(valid, B, ninf).view(n, -1), 1).view(n, m, m)
    # The mask sits inside the difference: at masked pairs lB - lA = -inf - (-inf) = NaN, and a
    # where() around the product would still send that NaN into the backward pass.
    zero = torch.zeros((), dtype=tv.dtype)
    if reverse:
        return (lB.exp() * torch.where(valid, lB - lA, zero)).sum((1, 2))
    return (lA.exp() * torch.where(valid, lA - lB, zero)).sum((1, 2))


def dbild_batched(t, s, tau=3.0, window=64, k_min=4):
    m = min(window, t.shape[1])
    a, it = t.topk(m, 1)  # sorted; tie order may differ from the stable rule (bench only)
    b = s.gather(1, it)
    lt = pair_kl_batched(a, b, knee_batched(a, k_min, m), tau, True)
    c, js = s.detach().topk(m, 1)
    c = s.gather(1, js)
    e = t.gather(1, js)
    ls = pair_kl_batched(e, c, knee_batched(c.detach(), k_min, m), tau, True)
    return lt + ls


def bild_batched(t, s, k=8, tau=3.0):
    kk = torch.full((t.shape[0],), k)
    a, it = t.topk(k, 1)
    l1 = pair_kl_batched(a, s.gather(1, it), kk, tau, False)
    _, js = s.detach().topk(k, 1)
    l2 = pair_kl_batched(t.gather(1, js), s.gather(1, js), kk, tau, False)
    return l1 + l2


def check_batched_against_rows():
    rng = np.random.default_rng(7)
    t = torch.tensor(rng.normal(size=(5, 300)) * 2)
    s = torch.tensor(rng.normal(size=(5, 300)) * 2)
    rows = torch.stack([sum(dbild_row(t[r], s[r], 3.0, 64, 4, 0)[:2]) for r in range(5)])
    assert torch.allclose(rows, dbild_batched(t, s), rtol=1e-10), (rows, dbild_batched(t, s))
    rows = torch.stack([bild_row(t[r], s[r], 8, 3.0) for r in range(5)])
    assert torch.allclose(rows, bild_batched(t, s), rtol=1e-10)
    sg = s.clone().requires_grad_(True)
    gr, = torch.autograd.grad((dbild_batched(t, sg) + bild_batched(t, sg)).sum(), sg)
    assert torch.isfinite(gr).all(), "batched pair-KL gradient is not finite"


def bench(reps):
    torch.set_num_threads(2)
    check_batched_against_rows()
    for n, v in ((64, 512), (256, 151936)):
        g = torch.Generator().manual_seed(0)
        t = torch.randn(n, v, generator=g) * 3
        s0 = torch.randn(n, v, generator=g) * 3
        labels = torch.randint(0, v, (n,), generator=g)
        times, cpus = [], []
        for _ in range(reps):
            s = s0.clone().requires_grad_(True)
            c0 = time.process_time()
            t0 = time.perf_counter()
            loss = (torch.nn.functional.cross_entropy(s, labels, reduction="none")
                    + bild_batched(t, s) + dbild_batched(t, s)).mean()
            loss.backward()
            times.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
        print(f"torch {torch.__version__} float32, 2 threads: CE+BiLD+DBiLD fwd+bwd N={n} V={v}: "
              f"wall best {min(times)*1e3:.1f} ms, median {sorted(times)[len(times)//2]*1e3:.1f} ms; "
              f"cpu (all threads) best {min(cpus)*1e3:.1f} ms, median {sorted(cpus)[len(cpus)//2]*1e3:.1f} ms "
              f"({reps} reps)")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fixtures")
    f.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testdata", "losses"))
    b = sub.add_parser("bench")
    b.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    if args.cmd == "fixtures":
        check_batched_against_rows()
        fixtures(os.path.normpath(args.out))
    else:
        bench(args.reps)


if __name__ == "__main__":
    sys.exit(main())
