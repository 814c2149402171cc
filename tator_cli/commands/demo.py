"""`tator demo`: the main job of `make demo` against a running stack.

A prepass job over the bundled synthetic dataset (progress bar, per-source
counts, stage timings, an overlay PNG coloured by source), then a calibration
on the same cached prepass (MLP + XGBoost) and its report table. The overlay
goes to `DIR/overlay_<image>.png` (default DIR: `$TATOR_HOME/demo`).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer

from tator_cli.commands.orchestrator import print_job_summary, print_result, watch_with_progress
from tator_cli.output import stdout_console

#: One colour per source; a candidate is drawn in its primary source's colour.
SOURCE_COLOURS: dict[str, tuple[int, int, int]] = {
    "yolo": (255, 64, 64),
    "rfdetr": (255, 170, 0),
    "sam3_text": (64, 160, 255),
    "sam3_similarity": (180, 90, 255),
}
OTHER = (200, 200, 200)


def write_overlay(image: Path | bytes, result: Any, out_png: Path, *, min_score: float = 0.0) -> Path:
    """Draw every candidate of a PrepassResult on the image: box in the primary source's colour (a
    thicker box when several sources agree), label and score, and a legend of sources."""
    import io

    from PIL import Image, ImageDraw

    from tator_core.convert import box_xyxy
    from tator_core.enums import source_name

    src = Image.open(io.BytesIO(image) if isinstance(image, bytes) else image).convert("RGB")
    scale = max(1, 640 // max(src.size))  # small synthetic scenes are enlarged so the labels stay legible
    img = src.resize((src.width * scale, src.height * scale), Image.NEAREST) if scale > 1 else src
    draw = ImageDraw.Draw(img)
    used: dict[str, int] = {}
    for cand in sorted(result.candidates, key=lambda c: c.score):
        if cand.score < min_score:
            continue
        primary = source_name(cand.source_primary)
        colour = SOURCE_COLOURS.get(primary, OTHER)
        used[primary] = used.get(primary, 0) + 1
        b = [v * scale for v in box_xyxy(cand.box)]
        draw.rectangle(b, outline=colour, width=1 + min(3, len(cand.sources)))
        draw.text((b[0] + 2, max(0, b[1] - 11)), f"{cand.label} {cand.score:.2f}", fill=colour)
    y = 4
    for source, n in sorted(used.items()):
        colour = SOURCE_COLOURS.get(source, OTHER)
        draw.rectangle([4, y, 14, y + 10], fill=colour)
        draw.text((18, y - 1), f"{source} ({n})", fill=(255, 255, 255))
        y += 14
    out_png.parent.mkdir(parents=True, exist_ok=True)
    img.save(out_png)
    return out_png


def pick_image(summary_results: list[Any]) -> Any:
    """The result with the most distinct sources, then the most candidates: the most telling overlay."""
    return max(summary_results, key=lambda r: (len({s for c in r.candidates for s in c.sources}),  # enum values
                                               len(r.candidates), r.image_name))


async def run_demo(address: str, dataset: str, out_dir: Path, data_root: Path, *, max_images: int = 0,
                   overlay_candidates: int = 8, config: Any = None) -> dict:
    """Prepass job with a progress bar, its summary, and the overlay of the most telling image."""

    from tator_core.client import ServiceClient
    from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb
    from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2_grpc as pb_grpc

    console = stdout_console()
    client = ServiceClient(address, pb_grpc.OrchestratorServiceStub, timeout_s=600)
    try:
        job = (await client.call("StartPrepassJob", pb.StartPrepassJobRequest(
            dataset_id=dataset, max_images=max_images, config=config or pb.PrepassConfig()))).job
        console.print(f"[bold]prepass[/] of {job.total} images of {dataset} (job {job.id})")
        names: list[str] = []
        final = await watch_with_progress(client, job.id, console, f"prepass {dataset}", images=names)
        if final.state != pb.JOB_STATE_SUCCEEDED:
            raise SystemExit(f"prepass job {pb.JobState.Name(final.state)} in stage {final.failed_stage or '-'}: "
                             f"{final.error}")
        summary = print_job_summary(console, final)
        if not names:
            # A job that finished before the watch began replays only its last event, which names no image:
            # take the job's first images in dataset order (the order the job ran them in).
            limit = min(x for x in (overlay_candidates, max_images or overlay_candidates) if x > 0)
            listed = await client.call("ListDatasetImages", pb.ListDatasetImagesRequest(
                dataset_id=dataset, page_size=limit))
            names = [im.name for im in listed.images]
        # Every image is cached now: these calls are cache hits, answered without any model call.
        results = [(await client.call("Prepass", pb.PrepassRequest(dataset_id=dataset, dataset_image=n,
                                                                   config=config))).result
                   for n in names[:overlay_candidates]]
        best = pick_image(results)
        print_result(console, best, limit=15)
        out = write_overlay(data_root / dataset / best.image_name, best,
                            out_dir / f"overlay_{Path(best.image_name).stem}.png")
        console.print(f"overlay written: [bold]{out}[/] (box colour = primary source: "
                      + ", ".join(SOURCE_COLOURS) + ")")
        return {"job": final.id, "summary": summary, "overlay": str(out)}
    finally:
        await client.close()


def demo(
    dataset: Annotated[str, typer.Option(help="Dataset id under the data root.")] = "synth",
    max_images: Annotated[int, typer.Option(help="At most N images (0 = all).")] = 0,
    out: Annotated[Path | None, typer.Option(help="Where the overlay PNG goes.")] = None,
    address: Annotated[str | None, typer.Option(help="Orchestrator host:port.")] = None,
) -> None:
    """Prepass the synthetic dataset, write an overlay, calibrate, print the report."""
    from tator_cli.commands.calibration import calibrate_job
    from tator_cli.stack import load_config
    from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb
    from tator_core.settings import tator_home

    address = address or load_config()["orchestrator"].address
    # Detector tiles default to each model's input size, which finds the small objects of the
    # large synthetic scenes; SAM3 runs on the full frame only to keep the demo to minutes.
    config = pb.PrepassConfig(sam3_text_window_extension=False,
                              similarity_window_extension=False)
    asyncio.run(run_demo(address, dataset, out or tator_home() / "demo", tator_home() / "data",
                         max_images=max_images, config=config))
    # The same prepass config as the job above, so calibration reads the cache.
    request = pb.StartCalibrationRequest(dataset_id=dataset, config=pb.CalibrationConfig(
        model=pb.CALIBRATION_MODEL_BOTH, max_images=max_images, prepass=config))
    raise typer.Exit(asyncio.run(calibrate_job(address, request, as_json=False)))


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
