"""Checks for the chapter 13 exercises (int8 absmax quantization, SSE
parsing, stop strings)."""

from __future__ import annotations

import json
from collections.abc import Callable

import torch


def quantize_int8(solution: Callable) -> None:
    """Exercise 13.1: int8 codes with one absmax scale per row."""
    weight = torch.tensor([[0.5, -1.0, 0.25, 0.0],
                           [0.01, 0.02, -0.04, 0.03],
                           [0.0, 0.0, 0.0, 0.0]])
    codes, scales = solution(weight.clone())
    assert codes.dtype == torch.int8, (
        f"codes must be torch.int8, got {codes.dtype}")
    assert codes.shape == weight.shape and scales.shape == (3,), (
        "codes have the weight's shape [out, in] and scales one entry per "
        f"row; got {tuple(codes.shape)} and {tuple(scales.shape)}")
    assert torch.isfinite(scales).all() and (scales > 0).all(), (
        "every scale must be positive and finite (a row of zeros too: "
        f"give it scale 1); got {scales.tolist()}")
    assert codes[0].tolist() == [64, -127, 32, 0], (
        "the largest |weight| of a row maps to ±127 and the others "
        "round to the nearest step; for the row [0.5, -1, 0.25, 0] "
        f"expected codes [64, -127, 32, 0], got {codes[0].tolist()}")
    assert codes[1].abs().max() == 127, (
        "each row needs its own scale (one scale per row): the small "
        f"row [0.01, 0.02, -0.04, 0.03] got codes {codes[1].tolist()}")
    torch.manual_seed(0)
    weight = torch.randn(32, 48) * torch.logspace(-2, 1, 32)[:, None]
    codes, scales = solution(weight)
    back = codes.float() * scales[:, None]
    step = scales[:, None]
    assert ((back - weight).abs() <= step / 2 + 1e-6).all(), (
        "codes * scales must be within half a step of each weight: "
        "round to the nearest code, do not truncate")
    assert codes.abs().max() <= 127 and codes.min() >= -127, (
        "codes must lie in [-127, 127]")
    print("✓ quantize_int8 is right")


def _events(*payloads: object) -> str:
    return "".join(f"data: {json.dumps(p)}\n\n" for p in payloads)


def parse_sse(solution: Callable) -> None:
    """Exercise 13.2: payloads of an SSE stream, however it is cut."""
    payloads = [{"text": "Once"}, {"text": " upon\n\na"}, {"n": [1, 2]}]
    stream = _events(*payloads) + "data: [DONE]\n\n"
    got = solution([stream])
    assert got == payloads, (
        f"one chunk holding three events and [DONE]: expected {payloads}, "
        f"got {got}")
    for size in (1, 3, 7):
        chunks = [stream[i:i + size] for i in range(0, len(stream), size)]
        got = solution(chunks)
        assert got == payloads, (
            f"the same stream in chunks of {size} characters gave {got}: "
            "an event can be split across chunks, so keep the unfinished "
            "part until its blank line arrives")
    extra = stream + _events({"late": True})
    assert solution([extra]) == payloads, (
        "stop at data: [DONE]; do not return it or anything after it")
    noisy = (": keep-alive comment\n\n" + "event: message\n"
             + _events({"a": 1}) + "data: [DONE]\n\n")
    got = solution([noisy])
    assert got == [{"a": 1}], (
        f"skip comment lines (':') and fields other than data:, got {got}")
    assert solution(["data: {\"b\": 2}\n\n"]) == [{"b": 2}], (
        "a stream that ends without [DONE] still yields its events")
    print("✓ parse_sse is right")


def _expected(pieces: list[str], stops: tuple[str, ...]) -> list[str]:
    text, out, sent, stopped = "", [], 0, False
    for piece in pieces:
        if stopped:
            out.append("")
            continue
        text += piece
        cuts = [text.find(s) for s in stops if s in text]
        if cuts:
            text, stopped = text[:min(cuts)], True
            out.append(text[sent:])
            sent = len(text)
            continue
        held = max([k for s in stops for k in range(1, len(s))
                    if text.endswith(s[:k])] or [0])
        out.append(text[sent:len(text) - held])
        sent = len(text) - held
    return out + [text[sent:]]


def send_pieces(solution: Callable) -> None:
    """Exercise 13.3: never send any part of a stop string, send the
    rest as soon as it is safe."""
    cases = [
        (["Once", " up", "on", " a time"], ("upon",)),
        (["The end", ".", " More"], ("end.",)),
        (["a", "b", "c"], ("bd",)),
        (["Hello", " wor", "ld", "!"], ("xyz",)),
        (["User", ":", " hi", "\nUser:"], ("\nUser:", "User: hi")),
        (["ab", "ab", "abc"], ("abc",)),
    ]
    for pieces, stops in cases:
        got = solution(list(pieces), stops)
        want = _expected(pieces, stops)
        assert isinstance(got, list) and len(got) == len(pieces) + 1, (
            "return one string per piece and one final flush "
            f"({len(pieces) + 1} strings), got {got!r}")
        so_far = ""
        for i, piece in enumerate(got[:-1]):
            so_far += piece
            if len(so_far) > len("".join(want[:i + 1])):
                raise AssertionError(
                    f"pieces {pieces} with stops {stops}: after piece {i} "
                    f"you sent {so_far!r}, which may be part of a stop "
                    "string; hold it back until you know")
            if so_far != "".join(want[:i + 1]):
                raise AssertionError(
                    f"pieces {pieces} with stops {stops}: after piece {i} "
                    f"send {''.join(want[:i + 1])!r} as soon as it is "
                    f"safe, you had sent {so_far!r}")
        sent = "".join(got)
        assert sent == "".join(want), (
            f"pieces {pieces} with stops {stops}: the client should get "
            f"{''.join(want)!r} in all, got {sent!r}")
    print("✓ send_pieces is right")
