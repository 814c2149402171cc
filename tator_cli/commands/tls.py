"""`tator tls k8s`: TLS material for the cluster's `tator-tls` Secret (k8s/components/tls)."""

from __future__ import annotations

from pathlib import Path

import typer

tls_app = typer.Typer(help="TLS material (the local stack makes its own: TATOR_TLS=on|mtls tator up).",
                      no_args_is_help=True)

SERVICES = ("orchestrator", "detector", "sam3", "qwen", "classifier")


@tls_app.command("k8s")
def k8s(out: Path = typer.Option(..., help="directory for ca.crt, tls.crt/.key, client.crt/.key"),
        namespace: str = typer.Option("tator", help="namespace the services run in")) -> None:
    """A CA, one server certificate naming every Tator Service of the namespace (and loopback, for the
    exec probes), and the client certificate the orchestrator and Envoy present (mTLS). Then:
    kubectl -n NS create secret generic tator-tls --from-file=OUT/ca.crt --from-file=OUT/tls.crt
    --from-file=OUT/tls.key --from-file=OUT/client.crt --from-file=OUT/client.key"""
    from tator_cli import tls

    names = [n for svc in SERVICES for n in tls.cluster_names(svc, namespace)]
    tls.ensure_leaf(out, "tls", names)
    tls.ensure_leaf(out, "client", [], client=True)
    typer.echo(f"kubectl -n {namespace} create secret generic tator-tls "
               + " ".join(f"--from-file={out / n}" for n in ("ca.crt", "tls.crt", "tls.key", "client.crt",
                                                               "client.key")))


def register(app: typer.Typer) -> None:
    app.add_typer(tls_app, name="tls")
