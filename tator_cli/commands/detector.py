"""`tator detect IMAGE`: call the detector service on one image file."""

from __future__ import annotations

import asyncio
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

console = Console(stderr=True)


class Mode(str, Enum):
    full = "full"
    tiled = "tiled"
    both = "both"


class Merge(str, Enum):
    nms = "nms"
    wbf = "wbf"


def _default_address() -> str:
    from tator_cli.stack import load_config

    return load_config()["detector"].address


async def _call(address: str, data: bytes, request, timeout_s: float):
    from tator_core.client import ServiceClient
    from tator_core.gen.tator.detector.v1 import detector_pb2_grpc

    client = ServiceClient(address, detector_pb2_grpc.DetectorServiceStub, timeout_s=timeout_s)
    try:
        return await client.call("Detect", request, image_data=data)
    finally:
        await client.close()


def _print_tables(resp) -> None:
    from tator_core.convert import warning_text
    from tator_core.enums import source_name
    from tator_core.gen.tator.detector.v1 import detector_pb2
    from tator_core.timestamps import milliseconds

    out = Console()
    table = Table(title=f"{len(resp.detections)} detections")
    for col in ("label", "score", "x1", "y1", "x2", "y2", "source", "model", "window"):
        table.add_column(col)
    for d in resp.detections:
        b = d.box
        table.add_row(d.label, f"{d.score:.3f}", *(f"{v:.1f}" for v in (b.x1, b.y1, b.x2, b.y2)), source_name(d.source),
                      d.model_id, d.window.name)
    out.print(table)
    runs = Table(title="runs")
    for col in ("model", "source", "kind", "tiles", "raw", "kept", "compute ms", "batch"):
        runs.add_column(col)
    for r in resp.runs:
        runs.add_row(r.model_id, source_name(r.source), detector_pb2.PassKind.Name(r.kind).removeprefix("PASS_KIND_").lower(),
                     str(r.tiles), str(r.raw_detections),
                     str(r.kept_detections), f"{milliseconds(r.compute):.1f}", str(r.batch_size))
    out.print(runs)
    for w in resp.warnings:
        console.print(f"[yellow]warning:[/] {warning_text(w)}")


def detect(
    image: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Image file (PNG, JPEG, ...).")],
    model: Annotated[list[str] | None, typer.Option("--model", "-m", help="Registry id; repeat for several "
                                                       "models (default: each family's default).")] = None,
    mode: Annotated[Mode, typer.Option(help="Full frame, SAHI tiles, or both.")] = Mode.full,
    conf: Annotated[float | None, typer.Option(help="Confidence threshold (default 0.45).")] = None,
    iou: Annotated[float | None, typer.Option(help="YOLO NMS IoU (default 0.45).")] = None,
    max_det: Annotated[int | None, typer.Option(help="Max detections per model (default 300).")] = None,
    tile_size: Annotated[int, typer.Option(help="Tile side in px (0 = each model's input size).")] = 0,
    overlap: Annotated[float | None, typer.Option(help="Tile overlap ratio (default 0.2).")] = None,
    merge: Annotated[Merge, typer.Option(help="How tile detections merge.")] = Merge.nms,
    merge_iou: Annotated[float | None, typer.Option(help="Merge IoU (default 0.5).")] = None,
    labelmap: Annotated[Path | None, typer.Option(help="Expected labelmap file; a model that differs fails.")] = None,
    address: Annotated[str | None, typer.Option(help="host:port (default from config/stack.yaml).")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds before giving up.")] = 120.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the response as JSON.")] = False,
) -> None:
    """Detect objects in IMAGE with the running detector service."""

    from tator_cli.output import call_and_show
    from tator_core.client import image_ref
    from tator_core.gen.tator.detector.v1 import detector_pb2
    from tator_core.labels import read_labelmap

    data = image.read_bytes()
    request = detector_pb2.DetectRequest(
        image=image_ref(data, with_bytes=False), model_ids=model or [],
        mode=f"DETECT_MODE_{mode.value.upper()}",
        merge=detector_pb2.MergeSettings(method=f"MERGE_METHOD_{merge.value.upper()}"),
        expected_labelmap=read_labelmap(labelmap) if labelmap else [])
    request.tile_plan.size = tile_size
    for name, value in (("conf", conf), ("iou", iou), ("max_det", max_det)):
        if value is not None:
            setattr(request, name, value)
    if overlap is not None:
        request.tile_plan.overlap = overlap
    if merge_iou is not None:
        request.merge.iou = merge_iou
    call_and_show(lambda: asyncio.run(_call(address or _default_address(), data, request, timeout)),
                  as_json, _print_tables, console)


def register(app: typer.Typer) -> None:
    app.command("detect")(detect)
