#!/usr/bin/env python3
"""Generates bpe_ref.jsonl.gz: token ids for random and adversarial strings from a second,
independent implementation of the Hugging Face byte-level BPE pipeline, written in Python
(`regex` module for the split patterns, unicodedata for NFC, the classic GPT-2 merge loop).

Run from this folder: python3 gen_bpe_ref.py PATH/qwen2.5/tokenizer.json PATH/gpt2/tokenizer.json"""
import gzip, json, random, sys, unicodedata
import regex

QWEN = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"


def byte_alphabet():
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


BYTES = byte_alphabet()


class Ref:
    def __init__(self, path, pattern, nfc):
        d = json.load(open(path, encoding="utf-8"))
        self.vocab = d["model"]["vocab"]
        merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in d["model"]["merges"]]
        self.ranks = {m: i for i, m in enumerate(merges)}
        # All added tokens in these files have normalized/lstrip/rstrip/single_word false.
        self.added = {a["content"]: a["id"] for a in d["added_tokens"]}
        self.pattern = regex.compile(pattern)
        self.nfc = nfc
        self.cache = {}

    def bpe(self, word):
        if word in self.cache:
            return self.cache[word]
        parts = list(word)
        while len(parts) > 1:
            best, best_rank = None, None
            for i in range(len(parts) - 1):
                r = self.ranks.get((parts[i], parts[i + 1]))
                if r is not None and (best_rank is None or r < best_rank):
                    best, best_rank = i, r
            if best is None:
                break
            a, b = parts[best], parts[best + 1]
            # Merge every occurrence of the best pair, left to right.
            out, i = [], 0
            while i < len(parts):
                if i + 1 < len(parts) and parts[i] == a and parts[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(parts[i])
                    i += 1
            parts = out
        ids = [self.vocab[p] for p in parts]
        self.cache[word] = ids
        return ids

    def encode_segment(self, s):
        if self.nfc:
            s = unicodedata.normalize("NFC", s)
        ids = []
        for piece in self.pattern.findall(s):
            ids += self.bpe("".join(BYTES[b] for b in piece.encode("utf-8")))
        return ids

    def encode(self, text):
        ids, start, i = [], 0, 0
        toks = sorted(self.added, key=len, reverse=True)
        while i < len(text):
            hit = next((t for t in toks if text.startswith(t, i)), None)
            if hit is None:
                i += 1
                continue
            ids += self.encode_segment(text[start:i])
            ids.append(self.added[hit])
            i += len(hit)
            start = i
        return ids + self.encode_segment(text[start:])


def corpus(rng):
    pool = []
    for lo, hi in [(0x20, 0x2500), (0x3000, 0x3100), (0x4E00, 0x4F00), (0xAC00, 0xAD00), (0xFF00, 0xFFF0),
                   (0x1D400, 0x1D500), (0x1F300, 0x1FA00)]:
        pool += [chr(c) for c in range(lo, hi) if unicodedata.category(chr(c)) not in ("Cn", "Cs", "Co")]
    words = ["the", " the", "The", " quick", "don't", "IT'S", "we'LL", "naïve", "cafe\u0301", "Ångström",
             "数据科学", "東京", "안녕하세요", "Привет", "مرحبا", "नमस्ते", "😀", "👩‍💻", "🇯🇵", "1234567",
             "１２３", "3.14", "\n", "\n\n", "\r\n", "\t", "   ", " \n ", "<|endoftext|>", "<|im_start|>",
             "<|im_end|>", "<tool_call>", "<|fim_prefix|>", "<|endoftext|", "<|", "|>", "'s", "'S", "'ſ",
             "\u00a0", "\u3000", "\u0085", "\ufeff", "\u200d", "e\u0301\u0323", "x86_64", "https://a.b/c?d=e"]
    out = []
    for n in range(1500):
        parts = []
        for _ in range(rng.randint(1, 30)):
            x = rng.random()
            if x < 0.45:
                parts.append(rng.choice(words))
            elif x < 0.9:
                parts.append(rng.choice(pool))
            else:
                parts.append(rng.choice([" ", "\n", "a", "7", "!", "中"]) * rng.randint(2, 40))
        out.append("".join(parts))
    out += [" " * 300 + "x", "\n" * 50 + "y", "ab" * 500, "😀" * 64, "a\u0301" * 100, "'s" * 50]
    return out


def main():
    qwen = Ref(sys.argv[1], QWEN, True)
    gpt2 = Ref(sys.argv[2], GPT2, False)
    # The reference must first reproduce every recorded Hugging Face case.
    for line in open("cases.jsonl", encoding="utf-8"):
        c = json.loads(line)
        assert qwen.encode(c["text"]) == c["qwen2.5"], c["name"]
        assert gpt2.encode(c["text"]) == c["gpt2"], c["name"]
    rng = random.Random(42)
    with gzip.open("bpe_ref.jsonl.gz", "wt", encoding="utf-8", compresslevel=9) as f:
        for text in corpus(rng):
            f.write(json.dumps({"text": text, "qwen2.5": qwen.encode(text), "gpt2": gpt2.encode(text)},
                               ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
