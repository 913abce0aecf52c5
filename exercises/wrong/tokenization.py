"""Wrong solutions to the chapter 4 exercises (see ``__init__``)."""

from __future__ import annotations

from collections import Counter
from itertools import pairwise

from wrong import says


@says("overlapping ones too")
def count_pairs__non_overlapping(ids: list[int]) -> dict[tuple[int, int],
                                                         int]:
    """Counts the pairs (0, 1), (2, 3), ... only."""
    return dict(Counter(zip(ids[::2], ids[1::2])))


@says("as often as it occurs")
def count_pairs__each_pair_once(ids: list[int]) -> dict[tuple[int, int],
                                                        int]:
    """Records which pairs occur, each with count 1."""
    return {pair: 1 for pair in pairwise(ids)}


@says("no overlap")
def merge__overlapping(ids: list[int], pair: tuple[int, int],
                       new_id: int) -> list[int]:
    """Replaces every occurrence of the pair, overlapping ones too, and
    drops each id that ends one."""
    merged = []
    for i, current in enumerate(ids):
        if i + 1 < len(ids) and (current, ids[i + 1]) == pair:
            merged.append(new_id)
        elif not (i > 0 and (ids[i - 1], current) == pair):
            merged.append(current)
    return merged


@says("skip both ids")
def merge__skips_one_id(ids: list[int], pair: tuple[int, int],
                        new_id: int) -> list[int]:
    """After a match moves on by one id, so the pair's second id stays."""
    merged = []
    i = 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            merged.append(new_id)
        else:
            merged.append(ids[i])
        i += 1
    return merged


@says("do not modify the input")
def merge__in_place(ids: list[int], pair: tuple[int, int],
                    new_id: int) -> list[int]:
    """Replaces the pairs in the caller's list."""
    i = 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            ids[i:i + 2] = [new_id]
        i += 1
    return ids


def _train(text: str, num_merges: int, best) -> list[tuple[int, int]]:
    ids = list(text.encode("utf-8"))
    merges = []
    for k in range(num_merges):
        counts = Counter(pairwise(ids))
        if not counts:
            raise ValueError(f"only {k} merges are possible")
        pair = best(counts)
        merged, i = [], 0
        while i < len(ids):
            if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
                merged.append(256 + k)
                i += 2
            else:
                merged.append(ids[i])
                i += 1
        ids = merged
        merges.append(pair)
    return merges


@says("compare the bytes the ids stand for")
def train_merges__ties_by_id(text: str,
                             num_merges: int) -> list[tuple[int, int]]:
    """Breaks ties by the greater pair of ids, not of bytes."""
    return _train(text, num_merges,
                  lambda counts: max(counts, key=lambda p: (counts[p], p)))


@says("greatest")
def train_merges__first_seen_wins_ties(
    text: str, num_merges: int
) -> list[tuple[int, int]]:
    """Counter.most_common: ties go to the pair seen first."""
    return _train(text, num_merges,
                  lambda counts: counts.most_common(1)[0][0])


@says("join all the bytes first")
def decode__token_by_token(ids: list[int], vocab: dict[int, bytes]) -> str:
    """Decodes each token on its own, splitting multi-byte characters."""
    return "".join(vocab[i].decode("utf-8", errors="replace") for i in ids)


@says("errors='replace'")
def decode__drops_invalid_bytes(ids: list[int],
                                vocab: dict[int, bytes]) -> str:
    """errors="ignore": a cut-off character silently disappears."""
    return b"".join(vocab[i] for i in ids).decode("utf-8", errors="ignore")


@says("per-document")
def bytes_per_token__mean_of_ratios(encode, texts: list[str]) -> float:
    """Averages each text's ratio, weighting short texts like long ones."""
    ratios = [len(text.encode("utf-8")) / len(encode(text))
              for text in texts]
    if not ratios:
        raise ValueError("no texts")
    return sum(ratios) / len(ratios)


@says("not characters")
def bytes_per_token__counts_characters(encode, texts: list[str]) -> float:
    """len(text), characters, where the ratio is of UTF-8 bytes."""
    tokens = sum(len(encode(text)) for text in texts)
    if tokens == 0:
        raise ValueError("no tokens")
    return sum(len(text) for text in texts) / tokens
