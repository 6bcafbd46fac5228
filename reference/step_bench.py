#!/usr/bin/env python3
"""PyTorch (float32, CPU) side of the Switch-KD training-step benchmark.

Mirrors `switchkd bench-step` (cmd/switchkd/bench_step.go): the same preset shapes, the same sample
layout and one Switch-KD step as train/step.go + train/trainer.go do it:

  teacher forward under no_grad (logits only at the supervised positions),
  student forward, visual-switch forward (student vision features -> teacher connector -> teacher
  LLM; the teacher's weights are frozen, so the gradient reaches the student's vision tower only),
  loss = CE + DBiLD(z_T, z_S) + DBiLD(z_T, z_W), each averaged over the supervised positions
  (tau 3, window 64, k_min 4), backward, gradient-norm clipping at 1.0 and an AdamW step over
  every student parameter (vision tower, connector, LLM).

  python3 reference/step_bench.py --preset small|qwen05 [--layers N] [--steps N] [--threads 2]

Prints one JSON object with the keys of the Go command (plus a "torch" object with a per-phase
breakdown). Differences from the Go graph, all on the PyTorch side's favour unless --mirror-go:
  * the student's vision tower runs once per step and feeds both the student and the switch path
    (Go's graph calls VisionFeatures twice, once in Hidden and once in HiddenFromArch);
  * the student's LM head runs once on the supervised rows (Go gathers the CE rows and the KD rows
    separately and applies the LM head to each);
  --mirror-go does both the Go way, for an op-for-op comparison.
The vision tower has `--layers`+1 layers with feature layer -2 in Go's config; the last layer is
never run, so here the tower is built with `--layers` layers and feature layer -1 (same computation,
no unused weights in memory). The sequence is right-padded to a multiple of 32 (Go's SeqBucket);
padding sits after every real token, so causal attention alone keeps it out of the real rows.
"""

import argparse
import json
import math
import os
import resource
import sys
import time

import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from tinyllava_ref import RefModel, tensor_specs, IMAGE_TOKEN_INDEX, IGNORE_INDEX  # noqa: E402
from losses_ref import bild_batched, dbild_batched, check_batched_against_rows  # noqa: E402


def mk_cfg(h, inter, heads, kv, nl, vocab, vh, vinter, vheads, vl, img, patch):
    """Go's presetConfigs mk(), except the vision tower: vl layers + feature layer -1 (see above)."""
    return {"model_type": "tinyllava", "connector_type": "mlp2x_gelu", "tokenizer_model_max_length": 4096,
            "vision_feature_layer": -1, "vision_feature_select_strategy": "patch",
            "text_config": {"model_type": "qwen2", "vocab_size": vocab, "hidden_size": h, "intermediate_size": inter,
                            "num_hidden_layers": nl, "num_attention_heads": heads, "num_key_value_heads": kv,
                            "rope_theta": 1000000.0, "rms_norm_eps": 1e-6, "tie_word_embeddings": True,
                            "max_position_embeddings": 32768, "hidden_act": "silu"},
            "vision_config": {"model_type": "siglip_vision_model", "hidden_size": vh, "intermediate_size": vinter,
                              "num_hidden_layers": vl, "num_attention_heads": vheads, "image_size": img,
                              "patch_size": patch, "layer_norm_eps": 1e-6, "hidden_act": "gelu_pytorch_tanh",
                              "num_channels": 3}}


def preset_configs(preset, layers):
    if preset == "small":
        return (mk_cfg(128, 256, 4, 2, 2, 512, 64, 128, 4, 2, 64, 8),
                mk_cfg(64, 128, 4, 2, 2, 512, 64, 128, 4, 2, 64, 8))
    if preset == "qwen05":
        return (mk_cfg(2048, 11008, 16, 2, layers, 151936, 1152, 4304, 16, layers, 384, 14),
                mk_cfg(896, 4864, 14, 2, layers, 151936, 1152, 4304, 16, layers, 384, 14))
    raise SystemExit("unknown preset %r (small, qwen05)" % preset)


UNUSED = (".post_layernorm.", ".head.")


def random_weights(cfg, std, seed, requires_grad):
    """tinyllava.RandomParams' scheme: weights ~ N(0, std), biases 0, norm weights 1, position
    embedding ~ N(0, 1/sqrt(D)); float32, only the tensors the model reads."""
    g = torch.Generator().manual_seed(seed)
    w = {}
    for name, shape, _ in sorted(tensor_specs(cfg)):
        if any(u in name for u in UNUSED):
            continue
        if "norm" in name and name.endswith(".weight"):
            t = torch.ones(shape)
        elif name.endswith(".bias"):
            t = torch.zeros(shape)
        else:
            s = 1 / math.sqrt(shape[-1]) if "position_embedding" in name else std
            t = torch.empty(shape).normal_(0, s, generator=g)
        w[name] = t.requires_grad_(requires_grad)
    return w


class StepModel(RefModel):
    """RefModel with the LLM stopped before the LM head, so logits are taken at chosen rows only."""

    def hidden(self, x, pos):
        """RefModel.llm without cache, key mask and LM head: final-norm hidden states [B,T,H]
        (pos None: positions 0..T-1)."""
        w, mp = self.w, self.mp
        B, T, _ = x.shape
        nh, nkv, hd = self.nh, self.nkv, self.hd
        if pos is None:
            pos = torch.arange(T)[None]
        cos, sin = self.rope(pos)
        cos, sin = cos[:, None], sin[:, None]
        causal = torch.ones(T, T, dtype=torch.bool).tril()
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
            k = k.repeat_interleave(nh // nkv, dim=1)
            v = v.repeat_interleave(nh // nkv, dim=1)
            sc = (q @ k.transpose(-1, -2)) / math.sqrt(hd)
            sc = sc.masked_fill(~causal, float("-inf"))
            a = torch.softmax(sc, dim=-1)
            o = (a @ v).transpose(1, 2).reshape(B, T, nh * hd)
            x = r + F.linear(o, w[lp + "self_attn.o_proj.weight"])
            r = x
            h = self.rms(x, w[lp + "post_attention_layernorm.weight"])
            g = F.linear(h, w[lp + "mlp.gate_proj.weight"])
            u = F.linear(h, w[lp + "mlp.up_proj.weight"])
            x = r + F.linear(F.silu(g) * u, w[lp + "mlp.down_proj.weight"])
        return self.rms(x, w[mp + "norm.weight"])

    def embeds(self, ids, img_emb, seq_bucket):
        """One sample (one image at ids[1]) spliced and right-padded: [1, Tpad, H]."""
        e = torch.cat([self.embed(ids[:1]), img_emb[0], self.embed(ids[2:])])
        pad = -e.shape[0] % seq_bucket
        if pad:
            e = torch.cat([e, e.new_zeros(pad, e.shape[1])])
        return e[None]

    def logits_at(self, h, rows, v=None):
        z = F.linear(h[0, rows], self.lm_head)
        return z if v is None else z[:, :v]


def make_sample(nimg, img, answer, seed=1):
    g = torch.Generator().manual_seed(seed)
    px = torch.rand(1, 3, img, img, generator=g) * 2 - 1
    q = (2 + torch.randint(0, 400, (32,), generator=g)).tolist()
    a = (2 + torch.randint(0, 400, (answer,), generator=g)).tolist()
    ids = [1, IMAGE_TOKEN_INDEX] + q + a
    labels = [IGNORE_INDEX] * (2 + 32) + a
    spliced = [IGNORE_INDEX] + [IGNORE_INDEX] * nimg + labels[2:]   # labels after splicing the image
    targets = spliced[1:] + [IGNORE_INDEX]                           # next-token target of each position
    rows = [i for i, t in enumerate(targets) if t >= 0]
    ids_t = torch.tensor([i if i >= 0 else 0 for i in ids])
    return px, ids_t, torch.tensor(rows), torch.tensor([targets[i] for i in rows]), len(spliced)


def time_losses(n, v, reps):
    """Go's timeLosses: CE + BiLD + DBiLD(T, S) + DBiLD(T, W) forward + gradient w.r.t. s and w
    on random [n, v] logits (N(0, 3)); best of reps after one warm-up."""
    g = torch.Generator().manual_seed(3)
    t = torch.randn(n, v, generator=g) * 3
    s0 = torch.randn(n, v, generator=g) * 3
    w0 = torch.randn(n, v, generator=g) * 3
    lab = torch.randint(0, v, (n,), generator=g)
    best = None
    for r in range(reps + 1):
        s = s0.clone().requires_grad_(True)
        w = w0.clone().requires_grad_(True)
        st = time.perf_counter()
        loss = (F.cross_entropy(s, lab, reduction="sum") + bild_batched(t, s, 8, 3.0).sum()
                + dbild_batched(t, s, 3.0, 64, 4).sum() + dbild_batched(t, w, 3.0, 64, 4).sum())
        gs, gw = torch.autograd.grad(loss, (s, w))
        d = time.perf_counter() - st
        del gs, gw, loss, s, w
        if r > 0 and (best is None or d < best):
            best = d
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="small")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--answer-tokens", type=int, default=32)
    ap.add_argument("--seq-bucket", type=int, default=32)
    ap.add_argument("--mirror-go", action="store_true",
                    help="run the student vision tower twice and the student LM head on CE and KD rows separately, as Go's graph does")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    check_batched_against_rows()  # batched losses equal the per-row reference, finite gradients
    t_start = time.perf_counter()
    tcfg, scfg = preset_configs(a.preset, a.layers)
    teacher = StepModel(tcfg, random_weights(tcfg, 0.02, 1, False), dtype=torch.float32)
    student = StepModel(scfg, random_weights(scfg, 0.02, 2, True), dtype=torch.float32)
    params = list(student.w.values())
    nparams = sum(p.numel() for p in params)
    opt = torch.optim.AdamW(params, lr=1e-5, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    vcfg = scfg["vision_config"]
    nimg = (vcfg["image_size"] // vcfg["patch_size"]) ** 2 - 1
    px, ids, rows, targets, seq_len = make_sample(nimg, vcfg["image_size"], a.answer_tokens)
    V = min(tcfg["text_config"]["vocab_size"], scfg["text_config"]["vocab_size"])
    n_sup = len(rows)
    build_s = time.perf_counter() - t_start

    def step():
        ph = {}
        t0 = time.perf_counter()
        with torch.no_grad():   # teacher: frozen, logits at the supervised rows only
            h = teacher.hidden(teacher.embeds(ids, teacher.encode_images(px), a.seq_bucket), None)
            zt = teacher.logits_at(h, rows, V)
            del h
        t1 = time.perf_counter()
        feats = student.vision_features(px)   # V_S(x_v), shared by z_S and z_W
        hs = student.hidden(student.embeds(ids, student.connector(feats), a.seq_bucket), None)
        if a.mirror_go:
            z_ce = student.logits_at(hs, rows)
            zs = student.logits_at(hs, rows, V)
        else:
            z_ce = student.logits_at(hs, rows)
            zs = z_ce[:, :V]
        t2 = time.perf_counter()
        feats_w = student.vision_features(px) if a.mirror_go else feats
        hw = teacher.hidden(teacher.embeds(ids, teacher.connector(feats_w), a.seq_bucket), None)
        zw = teacher.logits_at(hw, rows, V)
        t3 = time.perf_counter()
        ce = F.cross_entropy(z_ce, targets, reduction="sum")
        align = dbild_batched(zt, zs, 3.0, 64, 4).sum()
        vsd = dbild_batched(zt, zw, 3.0, 64, 4).sum()
        loss = ce / n_sup + align / n_sup + vsd / n_sup
        t4 = time.perf_counter()
        loss.backward()
        t5 = time.perf_counter()
        norm = torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        t6 = time.perf_counter()
        ph.update(teacher_fwd_s=t1 - t0, student_fwd_s=t2 - t1, switch_fwd_s=t3 - t2, losses_fwd_s=t4 - t3,
                  backward_s=t5 - t4, clip_adamw_s=t6 - t5)
        return t6 - t0, ph, dict(ce=float(ce) / n_sup, align=float(align) / n_sup, vsd=float(vsd) / n_sup,
                                 grad_norm=float(norm))

    tpad = seq_len + (-seq_len % a.seq_bucket)
    t_loop = time.perf_counter()
    times, phases, terms = [], [], []
    for _ in range(a.steps + 1):
        d, ph, tm = step()
        times.append(d)
        phases.append(ph)
        terms.append(tm)
    loop_s = time.perf_counter() - t_loop
    timed = times[1:]
    best = min(timed)
    ib = 1 + timed.index(best)
    loss_s = time_losses((n_sup + 31) // 32 * 32, V, a.steps)
    res = {"preset": a.preset, "layers": a.layers, "batch": 1, "seq_len": seq_len,
           "supervised_tokens": n_sup, "step_s_best": best, "step_s_mean": sum(timed) / len(timed),
           "tokens_per_s": seq_len / best, "losses_fwd_bwd_s": loss_s, "losses_share": loss_s / best,
           "wall_s_incl_compile": build_s + loop_s,
           "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1 << 20),
           "torch": {"version": torch.__version__, "threads": a.threads, "dtype": "float32",
                     "mirror_go": a.mirror_go, "padded_seq_len": tpad, "student_params": nparams,
                     "build_s": build_s, "step_s_all": times, "phases_of_best_step": phases[ib],
                     "terms_first_step": terms[0], "load_avg_1m_at_end": os.getloadavg()[0]}}
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
