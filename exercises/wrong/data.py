"""Wrong solutions to the chapter 3 exercises (see ``__init__``)."""

from __future__ import annotations

import hashlib

import numpy as np

from wrong import says


def _luhn_sum(digits: list[int], doubled_parity: int) -> int:
    total = 0
    for i, d in enumerate(digits):
        if i % 2 == doubled_parity:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total


@says("counting from the rightmost")
def luhn_valid__doubles_from_the_left(number: str) -> bool:
    """Doubles the first, third, ... digit from the left (right only for
    an even number of digits)."""
    digits = [int(c) for c in number if c.isdigit()]
    if not 13 <= len(digits) <= 19:
        return False
    return _luhn_sum(digits, 0) % 10 == 0


@says("13 to 19 digits")
def luhn_valid__no_length_check(number: str) -> bool:
    """Accepts any number of digits passing the checksum."""
    digits = [int(c) for c in number if c.isdigit()]
    return _luhn_sum(digits[::-1], 1) % 10 == 0


@says("k-word tuples")
def shingle_jaccard__compares_word_sets(a: str, b: str, k: int) -> float:
    """Jaccard of the sets of words, not of k-word shingles."""
    x, y = set(a.lower().split()), set(b.lower().split())
    return len(x & y) / len(x | y) if x | y else 1.0


@says("shorter than k words is one shingle")
def shingle_jaccard__drops_short_texts(a: str, b: str, k: int) -> float:
    """A text of fewer than k words gets no shingle at all."""
    def shingles(text: str) -> set[tuple[str, ...]]:
        words = text.lower().split()
        return {tuple(words[i:i + k]) for i in range(len(words) - k + 1)}

    x, y = shingles(a), shingles(b)
    return len(x & y) / len(x | y) if x | y else 1.0


@says("all b bands miss")
def candidate_probability__bands_and_rows_swapped(s, bands: int,
                                                  rows: int):
    """1 - (1 - s^b)^r."""
    return 1 - (1 - np.asarray(s, dtype=float) ** bands) ** rows


@says("all b bands miss")
def candidate_probability__no_band_matches(s, bands: int, rows: int):
    """The probability that no band matches, not that one does."""
    return (1 - np.asarray(s, dtype=float) ** rows) ** bands


@says("only an approximation")
def steepest_point__threshold_rule_of_thumb(bands: int,
                                            rows: int) -> float:
    """The usual threshold (1/b)^(1/r), which is near but not at the
    steepest point."""
    return (1 / bands) ** (1 / rows)


@says("find where the slope is largest")
def steepest_point__forgets_the_root(bands: int, rows: int) -> float:
    """Returns u = s^r = (r-1)/(br-1) instead of s."""
    return (rows - 1) / (bands * rows - 1)


@says("big-endian")
def hash_split__little_endian(doc_id: str, val_fraction: float) -> str:
    """Reads the first 8 bytes of the digest as little-endian."""
    digest = hashlib.sha256(doc_id.encode("utf-8")).digest()
    x = int.from_bytes(digest[:8], "little")
    return "val" if x < val_fraction * 2.0 ** 64 else "train"


@says("SHA-256")
def hash_split__md5(doc_id: str, val_fraction: float) -> str:
    """Uses MD5 instead of SHA-256."""
    digest = hashlib.md5(doc_id.encode("utf-8")).digest()
    x = int.from_bytes(digest[:8], "big")
    return "val" if x < val_fraction * 2.0 ** 64 else "train"


@says("mod 2^32")
def minhash_signature__no_wrap_around(hashes: np.ndarray, a: np.ndarray,
                                      b: np.ndarray) -> np.ndarray:
    """Computes in 64 bits, so (a*x + b) is never reduced mod 2^32."""
    if len(hashes) == 0:
        return np.full(len(a), 0xFFFFFFFF, dtype=np.uint64)
    values = (hashes.astype(np.uint64)[:, None] * a.astype(np.uint64)
              + b.astype(np.uint64))
    return values.min(axis=0)


@says("one minimum per hash function")
def minhash_signature__minimum_over_wrong_axis(
    hashes: np.ndarray, a: np.ndarray, b: np.ndarray
) -> np.ndarray:
    """Takes the minimum over the hash functions, per document hash."""
    if len(hashes) == 0:
        return np.full(len(a), 0xFFFFFFFF, dtype=np.uint32)
    values = hashes.astype(np.uint32)[:, None] * a + b
    return values.min(axis=1)
