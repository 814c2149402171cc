"""`tator demo`: the main job of `make demo` against a running stack.

A prepass job over the bundled synthetic dataset (progress bar, per-source
counts, stage timings, an overlay PNG coloured by source), then a calibration
on the same cached prepass (MLP + XGBoost) and its report table.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer


def demo(
    dataset: Annotated[str, typer.Option(help="Dataset id under the data root.")] = "synth",
    max_images: Annotated[int, typer.Option(help="At most N images (0 = all).")] = 0,
    out: Annotated[Path | None, typer.Option(help="Where the overlay PNG goes.")] = None,
    address: Annotated[str | None, typer.Option(help="Orchestrator host:port.")] = None,
) -> None:
    """Prepass the synthetic dataset, write an overlay, calibrate, print the report."""
    from tator_cli.commands.calibration import _calibrate
    from tator_cli.stack import load_config
    from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2 as pb
    from tator_core.settings import tator_home
    from tator_fixtures.demo import run_demo

    address = address or load_config()["orchestrator"].address
    # 224 px tiles find the small objects of the large synthetic scenes (640 would
    # be one tile); SAM3 runs on the full frame only to keep the demo to minutes.
    config = pb.PrepassConfig(sahi_window_size=224, sam3_text_window_extension=False,
                              similarity_window_extension=False)
    asyncio.run(run_demo(address, dataset, out or tator_home() / "demo", tator_home() / "data",
                         max_images=max_images, config=config))
    # The same prepass config as the job above, so calibration reads the cache.
    request = pb.StartCalibrationRequest(dataset_id=dataset, config=pb.CalibrationConfig(
        model=pb.CALIBRATION_MODEL_BOTH, max_images=max_images, prepass=config))
    raise typer.Exit(asyncio.run(_calibrate(address, request, as_json=False)))


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
