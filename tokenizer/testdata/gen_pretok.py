#!/usr/bin/env python3
"""Generates pretok_regex.jsonl.gz: random strings and how the Qwen2 and GPT-2 split regexes
cut them, computed with the Python `regex` module (an engine independent of regexp2 and of
the hand-written Go matchers, with \\s = White_Space and Unicode case folding for (?i)).

Run: python3 gen_pretok.py  (needs the `regex` package)."""
import gzip, json, random, unicodedata
import regex

QWEN = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"

rng = random.Random(20260101)
# Characters assigned in Unicode 14 (this Python's unicodedata) from many blocks, plus the
# characters that decide the alternatives.
pool = []
for cp in list(range(0x20, 0x3000)) + list(range(0x3000, 0x3100)) + list(range(0xA000, 0xA100)) + \
        list(range(0xAC00, 0xAC40)) + list(range(0xFB00, 0xFFFE)) + list(range(0x10000, 0x10200)) + \
        list(range(0x1D400, 0x1D800)) + list(range(0x1F300, 0x1FA00)) + list(range(0x20000, 0x20040)):
    c = chr(cp)
    if unicodedata.category(c) in ("Cn", "Cs", "Co"):
        continue
    pool.append(c)
tricky = list("aAsStTlLdDrReEvVmM'' '  \t\n\r\x0b\x0c\x85\xa0\u1680\u2000\u2028\u2029\u202f\u3000\ufeff\u200b\u180e\x1c") + \
    ["'s", "'S", "'ſ", "'ll", "'LL", "'Re", "'vE", "\r\n", " \n", "  ", "0", "1", "١", "Ⅻ", "½", "\u0301"]

def text():
    parts = []
    for _ in range(rng.randint(1, 24)):
        parts.append(rng.choice(tricky) if rng.random() < 0.5 else rng.choice(pool))
    return "".join(parts)

with gzip.open("pretok_regex.jsonl.gz", "wt", encoding="utf-8", compresslevel=9) as f:
    # mtime-free output for reproducibility is not needed: the data is what matters.
    for _ in range(4000):
        s = text()
        rec = {"text": s, "qwen": regex.findall(QWEN, s), "gpt2": regex.findall(GPT2, s)}
        assert "".join(rec["qwen"]) == s and "".join(rec["gpt2"]) == s
        f.write(json.dumps(rec, ensure_ascii=False) + "\n")
