"""Bearer tokens with two roles, and TLS material, for every server and client.

Roles: `read` may call every read and inference method; `admin` may also call the methods that
change state (load/unload models, train heads, put/delete/import glossaries and recipes, cancel
jobs). Health and reflection stay open (the interceptor never sees them).

Tokens live in a JSON file `{"read": "...", "admin": "..."}` (each value a string or a list, so a
token can be rotated by listing old and new). A server enforces tokens when its settings name the
file (`auth_tokens_file`, env `TATOR_<SERVICE>_AUTH_TOKENS_FILE`); `tator up` generates one under
`$TATOR_HOME/secrets/` on first start and hands it to every service. A client sends `TATOR_TOKEN`
when set, else the role it asks for from `TATOR_AUTH_TOKENS_FILE` or `$TATOR_HOME/secrets/tokens.json`.

TLS: a server with `tls_cert_file` + `tls_key_file` listens with TLS, and with `tls_client_ca_file`
also requires a client certificate signed by that CA (mTLS). A client uses TLS when
`TATOR_TLS_CA_FILE` names the CA to trust, presenting `TATOR_TLS_CERT_FILE` / `TATOR_TLS_KEY_FILE`
when both are set.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from tator_core import errors
from tator_core.hashing import atomic_write_text
from tator_core.settings import tator_home

ROLES = ("read", "admin")
#: Method-name prefixes that change state; every other method is read/infer.
ADMIN_PREFIXES = ("Load", "Unload", "SetDefault", "Train", "Delete", "Put", "Import", "Cancel")


def is_admin_method(method: str) -> bool:
    return method.startswith(ADMIN_PREFIXES)


def default_tokens_file() -> Path:
    return tator_home() / "secrets" / "tokens.json"


@dataclass(frozen=True)
class Tokens:
    read: tuple[str, ...]
    admin: tuple[str, ...]

    def first(self, role: str) -> str:
        values = self.admin if role == "admin" else self.read
        return values[0]


def load_tokens(path: Path) -> Tokens:
    """Tokens from a JSON file; a file without both roles is refused (ValueError)."""
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    out: dict[str, tuple[str, ...]] = {}
    for role in ROLES:
        value = doc.get(role) if isinstance(doc, dict) else None
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not values or not all(isinstance(v, str) and len(v) >= 16
                                                                  for v in values):
            raise ValueError(f"{Path(path).name}: '{role}' must be a token (16+ chars) or a list of them")
        out[role] = tuple(values)
    return Tokens(**out)


def generate_tokens(path: Path) -> Tokens:
    """Write fresh random tokens (mode 0600) unless the file exists; return what it holds."""
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write_text(path, json.dumps({role: secrets.token_urlsafe(32) for role in ROLES}))
        path.chmod(0o600)
    return load_tokens(path)


class Authenticator:
    """Checks `authorization: Bearer <token>` against the roles (constant-time compares)."""

    def __init__(self, tokens: Tokens) -> None:
        self.tokens = tokens

    def _role(self, token: str) -> str | None:
        found = None
        for role in ROLES:  # every comparison runs, whatever matches, so timing says nothing
            for known in getattr(self.tokens, role):
                if hmac.compare_digest(known.encode(), token.encode()):
                    found = role
        return found

    def check(self, method: str, metadata: Any) -> errors.TatorError | None:
        header = dict(metadata or ()).get("authorization", "")
        scheme, _, token = header.partition(" ") if isinstance(header, str) else ("", "", "")
        role = self._role(token.strip()) if scheme.lower() == "bearer" and token.strip() else None
        if role is None:
            return errors.TatorError(grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED",
                                     "a valid bearer token is required (authorization: Bearer <token>)")
        if role != "admin" and is_admin_method(method):
            return errors.TatorError(grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED",
                                     f"{method} needs the admin role", {"method": method})
        return None


def client_token(role: str = "admin") -> str | None:
    """The token a client sends: TATOR_TOKEN, else `role` from the tokens file, else None."""
    explicit = os.environ.get("TATOR_TOKEN")
    if explicit:
        return explicit
    path = Path(os.environ.get("TATOR_AUTH_TOKENS_FILE") or default_tokens_file())
    try:
        return load_tokens(path).first(role)
    except (OSError, ValueError):
        return None


def call_metadata(role: str = "admin") -> tuple[tuple[str, str], ...]:
    """Metadata for a raw stub call: the bearer token when one is configured."""
    token = client_token(role)
    return (("authorization", f"Bearer {token}"),) if token else ()


def server_credentials(cert_file: Path, key_file: Path, client_ca_file: Path | None) -> grpc.ServerCredentials:
    ca = Path(client_ca_file).read_bytes() if client_ca_file else None
    return grpc.ssl_server_credentials([(Path(key_file).read_bytes(), Path(cert_file).read_bytes())],
                                       root_certificates=ca, require_client_auth=ca is not None)


def channel_credentials() -> grpc.ChannelCredentials | None:
    """TLS credentials from TATOR_TLS_* (None: plaintext)."""
    ca = os.environ.get("TATOR_TLS_CA_FILE")
    if not ca:
        return None
    cert, key = os.environ.get("TATOR_TLS_CERT_FILE"), os.environ.get("TATOR_TLS_KEY_FILE")
    return grpc.ssl_channel_credentials(
        root_certificates=Path(ca).read_bytes(),
        private_key=Path(key).read_bytes() if cert and key else None,
        certificate_chain=Path(cert).read_bytes() if cert and key else None)


def aio_channel(address: str, options: list[tuple[str, Any]] | None = None) -> grpc.aio.Channel:
    """A plain asyncio channel to `address`: TLS when TATOR_TLS_* says so (channel_credentials), else
    plaintext. For short calls outside ServiceClient (health probes, the regression steps)."""
    creds = channel_credentials()
    if creds is not None:
        return grpc.aio.secure_channel(address, creds, options=options)
    return grpc.aio.insecure_channel(address, options=options)
