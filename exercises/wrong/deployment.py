"""Wrong solutions to the chapter 13 exercises (see ``__init__``)."""

from __future__ import annotations

import json

import torch
from wrong import says


@says("one scale per row")
def quantize_int8__one_scale_for_the_matrix(
    weight: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Uses the absmax of the whole matrix for every row, so small rows
    get only a few levels."""
    scale = weight.abs().max() / 127
    scales = torch.full((weight.shape[0],), float(scale) or 1.0)
    codes = torch.round(weight / scales[:, None]).clamp(-127, 127)
    return codes.to(torch.int8), scales


@says("round to the nearest")
def quantize_int8__truncates(
    weight: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Casts to int8 without rounding: errors up to a whole step."""
    absmax = weight.abs().amax(dim=1)
    scales = torch.where(absmax > 0, absmax / 127, torch.ones_like(absmax))
    return (weight / scales[:, None]).to(torch.int8), scales


@says("give it scale 1")
def quantize_int8__zero_row_divides_by_zero(
    weight: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Divides by a zero scale for a row of zeros (NaN codes)."""
    scales = weight.abs().amax(dim=1) / 127
    codes = torch.round(weight / scales[:, None]).clamp(-127, 127)
    return torch.nan_to_num(codes).to(torch.int8), scales


@says("split across chunks")
def parse_sse__assumes_whole_events_per_chunk(chunks: list[str]
                                              ) -> list[dict]:
    """Parses each chunk on its own, as if the network never cut an
    event in two."""
    payloads = []
    for chunk in chunks:
        for line in chunk.split("\n"):
            if line.startswith("data: "):
                data = line[len("data: "):]
                if data == "[DONE]":
                    return payloads
                try:
                    payloads.append(json.loads(data))
                except ValueError:
                    continue
    return payloads


@says("[DONE]")
def parse_sse__reads_past_done(chunks: list[str]) -> list[dict]:
    """Skips [DONE] instead of stopping there."""
    payloads = []
    for event in "".join(chunks).split("\n\n"):
        for line in event.split("\n"):
            if line.startswith("data: ") and line != "data: [DONE]":
                payloads.append(json.loads(line[len("data: "):]))
    return payloads


@says("part of a stop string")
def send_pieces__no_hold_back(pieces: list[str],
                              stops: tuple[str, ...]) -> list[str]:
    """Sends every piece at once and only cuts when a whole stop string
    has appeared, by which time its start was already sent."""
    text, sent, out = "", 0, []
    for piece in pieces:
        text += piece
        cuts = [text.find(s) for s in stops if s in text]
        if cuts:
            text = text[:min(cuts)]
        out.append(text[sent:])
        sent = max(sent, len(text))
    return out + [""]


@says("as soon as it is safe")
def send_pieces__holds_everything(pieces: list[str],
                                  stops: tuple[str, ...]) -> list[str]:
    """Sends nothing until the end: right text, no streaming."""
    text = "".join(pieces)
    cuts = [text.find(s) for s in stops if s in text]
    if cuts:
        text = text[:min(cuts)]
    return [""] * len(pieces) + [text]
