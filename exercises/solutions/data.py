"""Reference solutions for the chapter 3 exercises."""

from __future__ import annotations

import hashlib

import numpy as np


def luhn_valid(number: str) -> bool:
    """Whether ``number`` is a 13-19 digit number passing the Luhn check."""
    digits = [int(c) for c in number if c.isdigit()]
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def shingle_jaccard(a: str, b: str, k: int) -> float:
    """Jaccard similarity of the word k-shingle sets of two texts."""
    def shingles(text: str) -> set[tuple[str, ...]]:
        words = text.lower().split()
        if 0 < len(words) < k:
            return {tuple(words)}
        return {tuple(words[i:i + k]) for i in range(len(words) - k + 1)}

    x, y = shingles(a), shingles(b)
    return len(x & y) / len(x | y) if x | y else 1.0


def candidate_probability(s, bands: int, rows: int):
    """P(a pair with Jaccard s shares at least one LSH bucket)."""
    return 1 - (1 - np.asarray(s, dtype=float) ** rows) ** bands


def steepest_point(bands: int, rows: int) -> float:
    """The similarity at which candidate_probability rises fastest.

    With u = s^r, P'(s) is proportional to s^(r-1) (1-u)^(b-1); setting
    the derivative of its logarithm to zero gives u = (r-1)/(br-1).
    """
    return ((rows - 1) / (bands * rows - 1)) ** (1 / rows)


def hash_split(doc_id: str, val_fraction: float) -> str:
    """"train" or "val", from a hash of the id alone."""
    digest = hashlib.sha256(doc_id.encode("utf-8")).digest()
    x = int.from_bytes(digest[:8], "big")
    return "val" if x < val_fraction * 2.0 ** 64 else "train"


def minhash_signature(hashes: np.ndarray, a: np.ndarray,
                      b: np.ndarray) -> np.ndarray:
    """Per hash function, the minimum of (a*x + b) mod 2^32."""
    if len(hashes) == 0:
        return np.full(len(a), 0xFFFFFFFF, dtype=np.uint32)
    values = hashes.astype(np.uint32)[:, None] * a + b
    return values.min(axis=0)
