"""Entry point of the `tator` CLI (typer + rich)."""

from __future__ import annotations

import importlib
import pkgutil

import typer

from tator_cli import commands

app = typer.Typer(
    name="tator",
    help="Tator inference services: run the local stack, call the services, run the flows.",
    no_args_is_help=True,
    add_completion=False,
)


def _register_all() -> None:
    for mod in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{commands.__name__}.{mod.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(app)


_register_all()


def main() -> None:
    from tator_cli import tls

    tls.apply_client_env()  # a stack started with TATOR_TLS is reached over TLS by every command
    app()


if __name__ == "__main__":
    main()
