"""Checks for the chapter 4 exercises (pairs, merges, BPE, decoding)."""

from __future__ import annotations

from collections.abc import Callable

from ._expect import raises_value_error


def count_pairs(solution: Callable) -> None:
    """Exercise 4.1: counts of adjacent pairs."""
    ids = [1, 2, 1, 2, 3]
    got = dict(solution(ids))
    expected = {(1, 2): 2, (2, 1): 1, (2, 3): 1}
    assert got == expected, (
        f"for {ids} expected {expected}, got {got} (count every pair "
        "ids[i], ids[i + 1], overlapping ones too, as often as it occurs)")
    got = dict(solution([5, 5, 5]))
    assert got == {(5, 5): 2}, (
        f"[5, 5, 5] has two (overlapping) pairs (5, 5); got {got}")
    assert not solution([]) and not solution([4]), (
        "a list of zero or one id has no pairs")
    print("✓ count_pairs is right")


def merge(solution: Callable) -> None:
    """Exercise 4.2: replace a pair, left to right, no overlaps."""
    ids = [1, 2, 3, 1, 2]
    got = solution(ids, (1, 2), 9)
    assert ids == [1, 2, 3, 1, 2], (
        f"do not modify the input list: it became {ids}")
    assert got == [9, 3, 9], (
        f"merging (1, 2) in [1, 2, 3, 1, 2]: expected [9, 3, 9], got {got}"
        " (left to right; after a match, skip both ids of the pair)")
    got = solution([7, 7, 7], (7, 7), 9)
    assert got == [9, 7], (
        f"merging (7, 7) in [7, 7, 7] must give [9, 7] (left to right, no "
        f"overlap), got {got}")
    got = solution([7, 7, 7, 7], (7, 7), 9)
    assert got == [9, 9], f"[7, 7, 7, 7] must give [9, 9], got {got}"
    assert solution([1], (1, 2), 9) == [1], "a lone 1 is not a pair"
    assert solution([2, 1], (1, 2), 9) == [2, 1], "order matters"
    print("✓ merge is right")


def train_merges(solution: Callable) -> None:
    """Exercise 4.3: byte-level BPE with the greater-bytes tie-break."""
    got = solution("abcd", 1)
    assert got == [(99, 100)], (
        "in 'abcd' all pairs occur once; the greatest byte pair is "
        f"(b'c', b'd') = (99, 100), got {got}")
    text = "the cat sat on the mat; the cat ate the hat"
    expected = [(97, 116), (101, 32), (116, 104), (258, 257), (256, 32),
                (259, 99), (261, 260), (262, 115)]
    got = solution(text, 8)
    assert got == expected, (
        f"the first 8 merges of {text!r} should be\n{expected}\ngot\n{got}"
        "\n(each merge: the most frequent pair; ties: compare the bytes "
        "the ids stand for, greatest first)")
    text = "aaabdaaabac" * 3 + " naïve café 東京"
    expected = [(97, 97), (256, 97), (257, 98), (100, 258), (259, 97),
                (260, 99), (258, 261), (262, 262), (230, 157), (264, 177),
                (265, 228), (266, 186)]
    got = solution(text, 12)
    assert got == expected, (
        f"on {text!r}: expected\n{expected}\ngot\n{got}\n"
        "(ties: compare the bytes the ids stand for, not the ids)")
    raises_value_error("'ab' allows one merge; asking for 3", solution,
                       "ab", 3)
    print("✓ train_merges is right")


def decode(solution: Callable) -> None:
    """Exercise 4.4: join bytes, then decode with replacement."""
    vocab = {i: bytes([i]) for i in range(256)}
    vocab[256] = "é".encode()[:1]
    vocab[257] = "é".encode()[1:] + b"t"
    got = solution([256, 257], vocab)
    assert got == "ét", (
        "token 256 holds the first byte of 'é' and 257 the second plus "
        f"'t': joined they decode to 'ét', got {got!r} (join all the "
        "bytes first, then decode once)")
    got = solution([104, 105, 0xE2, 0x82], vocab)
    assert got == "hi\ufffd", (
        f"a cut-off character must become U+FFFD, got {got!r} "
        "(errors='replace')")
    assert solution([], vocab) == "", "no ids give the empty string"
    print("✓ decode is right")


def bytes_per_token(solution: Callable) -> None:
    """Exercise 4.5: total bytes over total tokens."""
    def encode(text: str) -> list[int]:
        return list(text.encode("utf-8"))[::2]

    got = solution(encode, ["abcd", "é"])
    assert abs(got - 6 / 3) < 1e-12, (
        f"6 bytes in 3 tokens is 2.0 bytes per token, got {got} (count "
        "UTF-8 bytes, len(text.encode('utf-8')), not characters)")
    got = solution(lambda t: [0] * (1 + len(t) // 10), ["a", "b" * 99])
    assert abs(got - 100 / 11) < 1e-12, (
        "total bytes over total tokens: 100 bytes / (1 + 10) tokens = "
        f"{100 / 11:.4f}, got {got} (did you average per-document "
        "ratios?)")
    raises_value_error("no tokens at all: bytes per token is undefined",
                       solution, encode, [""])
    print("✓ bytes_per_token is right")
