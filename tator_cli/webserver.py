"""Static server of the built web UI (web/dist), started by `tator up` beside Envoy.

    python -m tator_cli.webserver --root web/dist --port 8081 --api http://127.0.0.1:8080

Vite names every asset by its content hash, so /assets/* is cached for a year and everything
else (index.html) is revalidated on each load. /config.json tells the UI where Envoy listens,
so one build runs on any ports. /healthz answers 200 until SIGTERM, then 503 while the server
keeps serving for --drain-s seconds (Kubernetes takes the pod out of its Service meanwhile).
The same file is the entry point of the tator-web image (deploy/web/Dockerfile): stdlib only.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import signal
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

NOT_BUILT = b"""<!doctype html><meta charset="utf-8"><title>Tator UI not built</title>
<p>The web UI has not been built. Run <code>make web</code> (or <code>npm run build</code>) and reload.</p>"""


class Handler(SimpleHTTPRequestHandler):
    api_url = ""
    draining = threading.Event()

    def end_headers(self) -> None:
        immutable = self.path.startswith("/assets/")
        self.send_header("Cache-Control", "public, max-age=31536000, immutable" if immutable else "no-cache")
        self.send_header("X-Content-Type-Options", "nosniff")
        super().end_headers()

    def do_GET(self) -> None:  # http.server names it
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            if self.draining.is_set():
                self._send(503, "text/plain", b"draining\n")
            else:
                self._send(200, "text/plain", b"ok\n")
            return
        if path == "/config.json":
            body = json.dumps({"api": self.api_url}).encode()
            self._send(200, "application/json", body)
            return
        if path in ("/", "/index.html") and not (Path(self.directory) / "index.html").is_file():
            self._send(503, "text/html; charset=utf-8", NOT_BUILT)
            return
        super().do_GET()

    def _send(self, status: int, ctype: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # the base class names the parameter
        if args and str(args[1] if len(args) > 1 else "").startswith(("4", "5")):
            super().log_message(format, *args)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8081)
    ap.add_argument("--api", default=os.environ.get("TATOR_WEB_API_URL", ""),
                    help="Envoy's grpc-web URL, served as /config.json (env TATOR_WEB_API_URL)")
    ap.add_argument("--drain-s", type=float, default=0.0, help="keep serving this long after SIGTERM")
    ns = ap.parse_args(argv)
    class ConfiguredHandler(Handler):
        api_url = ns.api
        draining = threading.Event()

    handler = ConfiguredHandler
    server = ThreadingHTTPServer((ns.host, ns.port), functools.partial(handler, directory=str(ns.root)))

    def on_term(_signum, _frame) -> None:
        handler.draining.set()
        threading.Timer(ns.drain_s, server.shutdown).start()

    signal.signal(signal.SIGTERM, on_term)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
