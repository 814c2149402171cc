"""`tator segment IMAGE`: text- or exemplar-prompted SAM3 segmentation of one image file.

    tator segment img.png --text circle=circle,disc --text square=square,box --windows 2x2
    tator segment img.png --exemplar circle=10,10,60,60 --exemplar circle=100,20,140,60 --json
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console(stderr=True)


def _split(item: str, flag: str) -> tuple[str, str]:
    label, sep, rest = item.partition("=")
    if not sep or not label.strip() or not rest.strip():
        raise typer.BadParameter(f"expected LABEL=..., got {item!r}", param_hint=flag)
    return label.strip(), rest


def parse_text(items: list[str]) -> dict[str, list[str]]:
    """['circle=circle,disc', 'circle=ring'] -> {'circle': ['circle', 'disc', 'ring']}."""
    out: dict[str, list[str]] = {}
    for item in items:
        label, rest = _split(item, "--text")
        prompts = [p.strip() for p in rest.split(",") if p.strip()]
        if not prompts:
            raise typer.BadParameter(f"no prompt in {item!r}", param_hint="--text")
        out.setdefault(label, []).extend(prompts)
    return out


def parse_boxes(items: list[str], flag: str) -> dict[str, list[tuple[float, ...]]]:
    """['circle=1,2,30,40'] -> {'circle': [(1, 2, 30, 40)]} (pixel x1,y1,x2,y2)."""
    out: dict[str, list[tuple[float, ...]]] = {}
    for item in items:
        label, rest = _split(item, flag)
        try:
            box = tuple(float(v) for v in rest.split(","))
        except ValueError:
            box = ()
        if len(box) != 4:
            raise typer.BadParameter(f"expected LABEL=x1,y1,x2,y2, got {item!r}", param_hint=flag)
        out.setdefault(label, []).append(box)
    return out


def _window_spec(windows: str | None, overlap: float, include_full: bool):
    from tator_core.gen.tator.common.v1 import common_pb2
    from tator_core.geometry import parse_grid

    if not windows:
        return None
    try:
        cols, rows = parse_grid(windows)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--windows") from None
    return common_pb2.WindowSpec(grid=common_pb2.GridSpec(cols=cols, rows=rows, overlap=overlap),
                                 include_full=include_full)


def build_request(data: bytes, text: dict[str, list[str]], positives: dict, negatives: dict, *, windows,
                  score: float | None, mask_threshold: float | None, masks: bool, model: str):
    """SegmentText for text prompts, else SegmentExemplars; returns (method, request)."""
    from tator_core.client import image_ref
    from tator_core.convert import box_pb
    from tator_core.gen.tator.sam3.v1 import sam3_pb2

    common = dict(image=image_ref(data, with_bytes=False), return_masks=masks, model_id=model, windows=windows,
                  score_threshold=score, mask_threshold=mask_threshold)
    common = {k: v for k, v in common.items() if v is not None}
    if text:
        return "SegmentText", sam3_pb2.SegmentTextRequest(
            labels=[sam3_pb2.LabelPrompts(label=k, prompts=v) for k, v in text.items()], **common)
    return "SegmentExemplars", sam3_pb2.SegmentExemplarsRequest(
        exemplars=[sam3_pb2.ExemplarSet(label=k, positives=[box_pb(b) for b in v],
                                        negatives=[box_pb(b) for b in negatives.get(k, [])])
                   for k, v in positives.items()], **common)


async def _call(address: str, data: bytes, method: str, request, timeout_s: float):
    from tator_core.client import ServiceClient
    from tator_core.gen.tator.sam3.v1 import sam3_pb2_grpc

    client = ServiceClient(address, sam3_pb2_grpc.Sam3ServiceStub, timeout_s=timeout_s)
    try:
        return await client.call(method, request, image_data=data)
    finally:
        await client.close()


def _print(resp) -> None:
    from rich.table import Table

    from tator_core.convert import prompt_text, warning_text
    from tator_core.timestamps import milliseconds

    table = Table(title=f"{len(resp.detections)} detections")
    for col in ("label", "score", "x1", "y1", "x2", "y2", "prompt", "window", "mask px"):
        table.add_column(col)
    for d in resp.detections:
        b = d.box
        px = sum(d.mask.counts[1::2]) if d.HasField("mask") else ""
        table.add_row(d.label, f"{d.score:.3f}", *(f"{v:.1f}" for v in (b.x1, b.y1, b.x2, b.y2)),
                      ", ".join(prompt_text(p) for p in d.prompts), d.window.name, str(px))
    Console().print(table)
    s = resp.stats
    console.print(f"contexts {s.contexts}, prompt runs {s.prompt_runs}, raw detections {s.raw_detections}; "
                  f"vision embeddings computed {s.vision_embeddings_computed} / cached {s.vision_embeddings_cached}; "
                  f"text embeddings computed {s.text_embeddings_computed} / cached {s.text_embeddings_cached}; "
                  f"{milliseconds(resp.timing.total):.0f} ms")
    for w in resp.warnings:
        console.print(f"[yellow]warning:[/] {warning_text(w)}")


def segment(
    image: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Image file (PNG, JPEG, ...).")],
    text: Annotated[list[str] | None, typer.Option(
        "--text", help="LABEL=prompt[,prompt...]; repeat for more labels.")] = None,
    exemplar: Annotated[list[str] | None, typer.Option(
        "--exemplar", help="LABEL=x1,y1,x2,y2 positive exemplar box in pixels; repeat for more.")] = None,
    negative: Annotated[list[str] | None, typer.Option(
        "--negative", help="LABEL=x1,y1,x2,y2 negative exemplar box (with --exemplar).")] = None,
    windows: Annotated[str | None, typer.Option(help="Grid of windows, e.g. 2x2 (default: full frame only).")] = None,
    overlap: Annotated[float, typer.Option(help="Grid cell overlap ratio.")] = 0.2,
    include_full: Annotated[bool, typer.Option(help="With --windows, also run the full frame.")] = True,
    score: Annotated[float | None, typer.Option(help="Score threshold (default 0.2 text, 0.3 exemplars).")] = None,
    mask_threshold: Annotated[float | None, typer.Option(help="Mask threshold (default 0.2).")] = None,
    masks: Annotated[bool, typer.Option("--masks", help="Return RLE masks.")] = False,
    model: Annotated[str, typer.Option(help="Registry id (default: the default SAM3 model).")] = "",
    address: Annotated[str | None, typer.Option(help="host:port (default from config/stack.yaml).")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds before giving up.")] = 300.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the response as JSON.")] = False,
) -> None:
    """Segment IMAGE with the running SAM3 service, by text prompts or by exemplar boxes."""
    if bool(text) == bool(exemplar):
        raise typer.BadParameter("give --text prompts or --exemplar boxes (one of the two)")
    if negative and not exemplar:
        raise typer.BadParameter("--negative needs --exemplar", param_hint="--negative")

    from tator_cli.output import call_and_show

    data = image.read_bytes()
    method, request = build_request(
        data, parse_text(text or []), parse_boxes(exemplar or [], "--exemplar"),
        parse_boxes(negative or [], "--negative"), windows=_window_spec(windows, overlap, include_full),
        score=score, mask_threshold=mask_threshold, masks=masks, model=model)
    if address is None:
        from tator_cli.stack import load_config

        address = load_config()["sam3"].address
    call_and_show(lambda: asyncio.run(_call(address, data, method, request, timeout)), as_json, _print, console)


def register(app: typer.Typer) -> None:
    app.command("segment")(segment)
