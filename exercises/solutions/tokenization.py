"""Reference solutions for the chapter 4 exercises (tokenization)."""

from __future__ import annotations

from collections import Counter


def count_pairs(ids: list[int]) -> dict[tuple[int, int], int]:
    """How often each adjacent pair occurs in ids."""
    return dict(Counter(zip(ids, ids[1:])))


def merge(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """ids with each non-overlapping pair replaced by new_id."""
    merged = []
    i = 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            merged.append(new_id)
            i += 2
        else:
            merged.append(ids[i])
            i += 1
    return merged


def train_merges(text: str, num_merges: int) -> list[tuple[int, int]]:
    """The merges of byte-level BPE on text, in order."""
    ids = list(text.encode("utf-8"))
    vocab = {i: bytes([i]) for i in range(256)}
    merges = []
    for k in range(num_merges):
        counts = count_pairs(ids)
        if not counts:
            raise ValueError(f"only {k} merges are possible")
        best = max(counts,
                   key=lambda p: (counts[p], vocab[p[0]], vocab[p[1]]))
        ids = merge(ids, best, 256 + k)
        vocab[256 + k] = vocab[best[0]] + vocab[best[1]]
        merges.append(best)
    return merges


def decode(ids: list[int], vocab: dict[int, bytes]) -> str:
    """Text of ids; invalid UTF-8 becomes U+FFFD."""
    return b"".join(vocab[i] for i in ids).decode("utf-8", errors="replace")


def bytes_per_token(encode, texts: list[str]) -> float:
    """Total UTF-8 bytes of texts divided by their total tokens."""
    tokens = sum(len(encode(text)) for text in texts)
    if tokens == 0:
        raise ValueError("no tokens: compression is undefined")
    return sum(len(text.encode("utf-8")) for text in texts) / tokens
