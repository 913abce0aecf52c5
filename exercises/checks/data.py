"""Checks for the chapter 3 exercises (Luhn, Jaccard, LSH, split,
MinHash)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np


def luhn_valid(solution: Callable) -> None:
    """Exercise 3.1: the Luhn checksum of card numbers."""
    for number, valid in (("4111111111111111", True),
                          ("4111 1111 1111 1111", True),
                          ("4539-1488-0343-6467", True),
                          ("4111111111111112", False),
                          ("4539148803436468", False),
                          ("79927398713", False),   # valid sum, 11 digits
                          ("", False),
                          ("0000000000000", True),
                          ("4222222222222", True),        # 13 digits
                          ("378282246310005", True),      # 15 digits
                          ("378282246310006", False),
                          ("12345678901234567890", False)):
        got = solution(number)
        assert got is valid or got == valid, (
            f"luhn_valid({number!r}) should be {valid}, got {got} (ignore "
            "non-digits; 13 to 19 digits; double every second digit "
            "counting from the rightmost, which is not doubled)")
    print("✓ luhn_valid is right")


def shingle_jaccard(solution: Callable) -> None:
    """Exercise 3.2: word k-shingle Jaccard similarity."""
    cases = (("a b c d", "a b c e", 2, 2 / 4),
             ("a b c d", "A B C D", 3, 1.0),
             ("a b", "a b c", 3, 0.0),
             ("x y z", "x y z", 5, 1.0),
             ("", "", 3, 1.0),
             ("", "a b c", 3, 0.0),
             ("a b", "a c", 3, 0.0),
             ("b a", "a b", 3, 0.0),
             ("the cat sat on the mat", "the cat sat on a mat", 2, 3 / 7))
    for a, b, k, expected in cases:
        got = solution(a, b, k)
        assert abs(got - expected) < 1e-12, (
            f"shingle_jaccard({a!r}, {b!r}, {k}) should be {expected:.4f}, "
            f"got {got} (compare sets of k-word tuples, lower-cased; a "
            "text shorter than k words is one shingle)")
    print("✓ shingle_jaccard is right")


def candidate_probability(solution: Callable) -> None:
    """Exercise 3.3a: the LSH S-curve."""
    s = np.linspace(0, 1, 11)
    expected = 1 - (1 - s ** 6) ** 20
    got = np.asarray(solution(s, 20, 6), dtype=float)
    assert got.shape == s.shape, f"expected shape {s.shape}, got {got.shape}"
    assert np.allclose(got, expected), (
        f"for b=20, r=6 expected\n{expected.round(4)}\ngot\n{got.round(4)}"
        "\n(a band matches with probability s^r; the pair is a candidate "
        "unless all b bands miss)")
    single = float(solution(0.5, 2, 1))
    assert abs(single - 0.75) < 1e-12, (
        f"s=0.5, b=2, r=1: 1-(1-0.5)^2 = 0.75, got {single}")
    print("✓ candidate_probability is right")


def steepest_point(solution: Callable) -> None:
    """Exercise 3.3b: where the S-curve is steepest."""
    for bands, rows in ((20, 6), (16, 8), (9, 13), (50, 2)):
        expected = ((rows - 1) / (bands * rows - 1)) ** (1 / rows)
        got = float(solution(bands, rows))
        assert abs(got - expected) < 1e-3, (
            f"b={bands}, r={rows}: the steepest point is near "
            f"{expected:.4f}, got {got:.4f} (the threshold (1/b)^(1/r) is "
            "only an approximation: find where the slope is largest)")
    print("✓ steepest_point is right")


def hash_split(solution: Callable) -> None:
    """Exercise 3.4: the hash-based train/validation split."""
    def reference(doc_id: str, val_fraction: float) -> str:
        digest = hashlib.sha256(doc_id.encode("utf-8")).digest()
        x = int.from_bytes(digest[:8], "big")
        return "val" if x < val_fraction * 2.0 ** 64 else "train"

    for fraction in (0.0, 0.05, 0.5, 1.0):
        for i in range(500):
            doc_id = f"doc-{i}-é"
            got = solution(doc_id, fraction)
            want = reference(doc_id, fraction)
            assert got == want, (
                f"hash_split({doc_id!r}, {fraction}) should be {want!r}, "
                f"got {got!r} (SHA-256 of the UTF-8 id; its first 8 bytes "
                "as a big-endian integer x; 'val' when x < fraction * "
                "2**64)")
    print("✓ hash_split is right")


def minhash_signature(solution: Callable) -> None:
    """Exercise 3.5: vectorised MinHash of one document."""
    rng = np.random.default_rng(0)
    a = (rng.integers(0, 1 << 31, 64, dtype=np.uint32) * np.uint32(2)
         + np.uint32(1))
    b = rng.integers(0, 1 << 32, 64, dtype=np.uint32)
    hashes = rng.integers(0, 1 << 32, 300, dtype=np.uint32)
    expected = np.array([min((int(aj) * int(x) + int(bj)) % 2 ** 32
                             for x in hashes) for aj, bj in zip(a, b)],
                        dtype=np.uint32)
    got = np.asarray(solution(hashes, a, b))
    assert got.shape == (64,), (
        f"expected shape (64,), one minimum per hash function, got "
        f"{got.shape} (take the minimum over the document's hashes)")
    assert got.dtype == np.uint32, (
        f"return uint32, got {got.dtype} (arithmetic mod 2^32 is what "
        "uint32 does)")
    assert np.array_equal(got.astype(np.uint64), expected), (
        "wrong signature: entry j must be min over x of (a_j*x+b_j) mod "
        f"2^32; first entries expected {expected[:3]}, got {got[:3]}")
    empty = np.asarray(solution(np.zeros(0, dtype=np.uint32), a, b))
    assert empty.shape == (64,) and (empty == 0xFFFFFFFF).all(), (
        "an empty document should give 0xFFFFFFFF everywhere")
    print("✓ minhash_signature is right")
