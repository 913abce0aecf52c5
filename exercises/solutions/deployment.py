"""Reference solutions for the chapter 13 exercises (int8 absmax, SSE
parsing, stop strings)."""

from __future__ import annotations

import json

import torch


def quantize_int8(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """int8 codes and one absmax scale per row."""
    absmax = weight.abs().amax(dim=1)
    scales = torch.where(absmax > 0, absmax / 127, torch.ones_like(absmax))
    codes = torch.round(weight / scales[:, None]).clamp(-127, 127)
    return codes.to(torch.int8), scales


def parse_sse(chunks: list[str]) -> list[dict]:
    """The JSON payloads of a server-sent event stream, up to [DONE]."""
    payloads, buffer = [], ""
    for chunk in chunks:
        buffer += chunk
        *events, buffer = buffer.split("\n\n")
        for event in events:
            data = "\n".join(line[len("data:"):].lstrip(" ")
                             for line in event.split("\n")
                             if line.startswith("data:"))
            if not data:
                continue
            if data == "[DONE]":
                return payloads
            payloads.append(json.loads(data))
    return payloads


def send_pieces(pieces: list[str], stops: tuple[str, ...]) -> list[str]:
    """What may be sent after each piece, then a last flush."""
    text, sent, out, stopped = "", 0, [], False
    for piece in pieces:
        if stopped:
            out.append("")
            continue
        text += piece
        found = [text.find(s) for s in stops if s in text]
        if found:
            text, stopped = text[:min(found)], True
            out.append(text[sent:])
            sent = len(text)
            continue
        held = 0
        for stop in stops:
            for size in range(min(len(stop) - 1, len(text)), held, -1):
                if text.endswith(stop[:size]):
                    held = size
                    break
        out.append(text[sent:len(text) - held])
        sent = len(text) - held
    out.append(text[sent:])
    return out
