"""`tator classify` and `tator train-head`: clients of the classifier service.

Heavy imports (grpc stubs) stay inside the commands so `tator --help` is fast.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from tator_cli.output import fail_rpc

console = Console(stderr=True)
FALLBACK_ADDRESS = "127.0.0.1:50054"


def default_address() -> str:
    try:
        from tator_cli.stack import load_config

        return load_config()["classifier"].address
    except Exception:  # no stack config: the documented default port
        return FALLBACK_ADDRESS


def parse_box(text: str) -> tuple[float, float, float, float]:
    parts = [p for p in text.replace(" ", "").split(",") if p]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 4:
        raise typer.BadParameter(f"a box is x1,y1,x2,y2 in pixels, got {text!r}")
    x1, y1, x2, y2 = values
    return (x1, y1, x2, y2)


def _client(address: str):
    from tator_core.client import ServiceClient
    from tator_core.gen.tator.classifier.v1 import classifier_pb2_grpc

    return ServiceClient(address, classifier_pb2_grpc.ClassifierServiceStub, timeout_s=600)


def _classify_dict(resp) -> dict:
    from google.protobuf.json_format import MessageToDict

    return MessageToDict(resp, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)


async def _classify(address: str, data: bytes, boxes: list, head: str, padding: float | None,
                    batch_size: int | None, embeddings: bool):
    import grpc

    from tator_core.client import image_ref
    from tator_core.convert import boxes_pb
    from tator_core.gen.tator.classifier.v1 import classifier_pb2 as pb

    req = pb.ClassifyRequest(image=image_ref(data, with_bytes=False), head_id=head, want_embeddings=embeddings,
                             boxes=boxes_pb(boxes))
    if padding is not None:
        req.context_padding = padding
    if batch_size is not None:
        req.batch_size = batch_size
    client = _client(address)
    try:
        return await client.call("Classify", req, image_data=data)
    except grpc.aio.AioRpcError as exc:
        fail_rpc(exc, console, exit_code=2)  # every classifier command exits 2 on failure, train-head too
    finally:
        await client.close()


def classify_cmd(
    image: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="image file")],
    box: Annotated[list[str], typer.Option("--box", help="x1,y1,x2,y2 in pixels; repeat for more boxes")],
    head: Annotated[str, typer.Option(help="head id (default: the service's default head)")] = "",
    padding: Annotated[float | None, typer.Option(help="context padding (default: the head's)")] = None,
    batch_size: Annotated[int | None, typer.Option(help="backbone batch size")] = None,
    embeddings: Annotated[bool, typer.Option("--embeddings", help="return each box's embedding")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the response as JSON")] = False,
    address: Annotated[str | None, typer.Option(help="classifier address (default from config/stack.yaml)")] = None,
) -> None:
    """Score boxes of an image: full probability vector per box."""
    from tator_core.timestamps import milliseconds

    boxes = [parse_box(b) for b in box]
    resp = asyncio.run(_classify(address or default_address(), image.read_bytes(), boxes, head, padding,
                                 batch_size, embeddings))
    if as_json:
        typer.echo(json.dumps(_classify_dict(resp), indent=2))
        return
    table = Table(title=f"{image.name}: head {resp.head_id} on {resp.backbone_id} "
                        f"(batch {resp.batch_size_used}, {milliseconds(resp.timing.total):.0f} ms)")
    for col in ("#", "box", "label", "score", "margin", "probabilities"):
        table.add_column(col)
    for r, b in zip(resp.results, boxes):
        box_text = ",".join(f"{v:g}" for v in b)
        if not r.ok:
            table.add_row(str(r.index), box_text, f"[red]{r.error}[/]", "", "", "")
            continue
        probs = " ".join(f"{c}={p:.2f}" for c, p in zip(resp.classes, r.probabilities))
        label = f"[dim]{r.label}[/]" if r.is_background else r.label
        table.add_row(str(r.index), box_text, label, f"{r.score:.3f}", f"{r.margin:.3f}", probs)
    Console().print(table)


async def _train(address: str, req, show_progress: bool):
    import grpc

    client = _client(address)
    done = None
    try:
        async for event in client.stream("TrainHead", req, timeout_s=24 * 3600):
            if event.HasField("progress"):
                p = event.progress
                if show_progress:
                    console.print(f"{p.phase:>5} {p.done}/{p.total} {p.message}")
            else:
                done = event.done
    except grpc.aio.AioRpcError as exc:
        fail_rpc(exc, console, exit_code=2)  # every classifier command exits 2 on failure, train-head too
    finally:
        await client.close()
    return done


def train_head_cmd(
    dataset: Annotated[str, typer.Option(help="dataset dir (YOLO or COCO + labelmap.txt); a local path is sent "
                                              "absolute, anything else is resolved under the service's data root")],
    backbone: Annotated[str, typer.Option(help="backbone id (default: the service's default)")] = "",
    head_type: Annotated[str, typer.Option(help="logreg or mlp")] = "logreg",
    head_id: Annotated[str, typer.Option(help="id of the new head (default: derived)")] = "",
    background_per_image: Annotated[int, typer.Option(help="background crops per image (class __bg_background)")] = 1,
    max_per_class: Annotated[int, typer.Option(help="cap on training crops per class (0 = all)")] = 0,
    normalize: Annotated[bool, typer.Option("--normalize", help="L2-normalise embeddings first")] = False,
    padding: Annotated[float | None, typer.Option(help="context padding (default: the service's)")] = None,
    seed: Annotated[int, typer.Option(help="seed")] = 0,
    make_default: Annotated[bool, typer.Option("--make-default", help="make it the default head")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
    address: Annotated[str | None, typer.Option(help="classifier address (default from config/stack.yaml)")] = None,
) -> None:
    """Train a classifier head on a dataset; streams progress, prints the head and its val accuracy."""
    from tator_core.gen.tator.classifier.v1 import classifier_pb2 as pb

    types = {"logreg": pb.HEAD_TYPE_LOGREG, "mlp": pb.HEAD_TYPE_MLP}
    if head_type not in types:
        raise typer.BadParameter("head type is logreg or mlp")
    local = Path(dataset).expanduser()
    req = pb.TrainHeadRequest(dataset_dir=str(local.resolve()) if local.exists() else dataset, backbone_id=backbone,
                              head_type=types[head_type], head_id=head_id, seed=seed,
                              background_crops_per_image=background_per_image, max_crops_per_class=max_per_class,
                              normalize_embeddings=normalize, make_default=make_default)
    if padding is not None:
        req.context_padding = padding
    done = asyncio.run(_train(address or default_address(), req, not as_json))
    if done is None:
        console.print("[red]the stream ended without a result[/]")
        raise typer.Exit(2)
    if as_json:
        typer.echo(json.dumps(_classify_dict(done), indent=2))
        return
    acc = "n/a" if done.val_crops == 0 else f"{done.val_accuracy:.3f}"
    console.print(f"[green]head {done.head_id}[/]: val accuracy {acc} on {done.val_crops} crops "
                  f"(trained on {done.train_crops}); classes {', '.join(done.classes)}")


def register(app: typer.Typer) -> None:
    app.command("classify")(classify_cmd)
    app.command("train-head")(train_head_cmd)
