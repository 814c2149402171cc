"""TLS material for the local stack and for a cluster: one local CA, a server certificate per
service whose subject alternative names cover every name clients dial, and one client certificate
(mTLS). Made with the `cryptography` library; keys are written mode 0600.

The CA is made once and kept; a leaf certificate is made again when it is missing, was not signed by
the CA on disk, lacks a name it must cover, or expires within `RENEW_BEFORE`, so a changed address in
the stack config or an old home needs no manual step.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tator_core.hashing import atomic_write_bytes, atomic_write_text
from tator_core.settings import tator_home

CA_DAYS = 3650
LEAF_DAYS = 397  # the longest validity browsers and most TLS stacks still accept for a leaf
RENEW_BEFORE = dt.timedelta(days=30)
LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")
CLIENT = "client"


@dataclass(frozen=True)
class Pair:
    cert: Path
    key: Path


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    atomic_write_bytes(path, pem)
    path.chmod(0o600)


def _san(names: list[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in dict.fromkeys(names):
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def _names_of(cert: x509.Certificate) -> set[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return {str(v) for v in san.get_values_for_type(x509.DNSName)} | \
        {str(v) for v in san.get_values_for_type(x509.IPAddress)}


def ensure_ca(directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """The CA under `directory` (ca.crt, ca.key), made on first use."""
    crt, key_path = directory / "ca.crt", directory / "ca.key"
    if crt.exists() and key_path.exists():
        cert = x509.load_pem_x509_certificate(crt.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        if isinstance(key, ec.EllipticCurvePrivateKey) and cert.not_valid_after_utc - RENEW_BEFORE > _now():
            return cert, key
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tator local CA")])
    now = _now()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    _write_key(key_path, key)
    atomic_write_bytes(crt, cert.public_bytes(serialization.Encoding.PEM))
    # Leaves signed by an older CA no longer verify: drop them so they are made again.
    for old in directory.glob("*.crt"):
        if old.name != "ca.crt":
            old.unlink()
    return cert, key


def _leaf_ok(path: Path, ca: x509.Certificate, names: list[str], client: bool) -> bool:
    if not path.exists() or not path.with_suffix(".key").exists():
        return False
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    if cert.not_valid_after_utc - RENEW_BEFORE < _now():
        return False
    return client or set(names) <= _names_of(cert)


def ensure_leaf(directory: Path, name: str, names: list[str], *, client: bool = False) -> Pair:
    """`name`.crt/.key under `directory`, signed by its CA: a server certificate for `names` (DNS names
    or IP addresses), or with `client` a client certificate."""
    ca, ca_key = ensure_ca(directory)
    pair = Pair(directory / f"{name}.crt", directory / f"{name}.key")
    if _leaf_ok(pair.cert, ca, names, client):
        return pair
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"tator {name}")]))
               .issuer_name(ca.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=LEAF_DAYS))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                              critical=False))
    if names:
        builder = builder.add_extension(_san(names), critical=False)
    _write_key(pair.key, key)
    atomic_write_bytes(pair.cert, builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
    return pair


def stack_mode() -> str:
    """TATOR_TLS: `off` (default), `on` (every service serves TLS) or `mtls` (and asks clients for a
    certificate signed by the stack's CA)."""
    mode = os.environ.get("TATOR_TLS", "off").strip().lower()
    if mode in ("", "0", "off", "false", "no"):
        return "off"
    if mode in ("1", "on", "true", "yes"):
        return "on"
    if mode == "mtls":
        return "mtls"
    raise ValueError(f"TATOR_TLS must be off, on or mtls, not {mode!r}")


def tls_dir() -> Path:
    return tator_home() / "secrets" / "tls"


def client_file() -> Path:
    """Where `tator up` says which TLS material the stack's clients use (removed by `tator down`)."""
    return tator_home() / "run" / "tls.json"


def stack_material(hosts: dict[str, str], mode: str) -> dict[str, Pair]:
    """Per service a server pair covering its configured host and the loopback names; with `mtls` also
    the client pair under CLIENT. Records the client settings for later CLI calls."""
    directory = tls_dir()
    out = {name: ensure_leaf(directory, name, [host, name, *LOCAL_NAMES]) for name, host in hosts.items()}
    client = ensure_leaf(directory, CLIENT, [], client=True)
    if mode == "mtls":
        out[CLIENT] = client
    record = {"TATOR_TLS_CA_FILE": str(directory / "ca.crt")}
    if mode == "mtls":
        record.update(TATOR_TLS_CERT_FILE=str(client.cert), TATOR_TLS_KEY_FILE=str(client.key))
    client_file().parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(client_file(), json.dumps(record))
    return out


def client_env() -> dict[str, str]:
    """TATOR_TLS_* for a client of the running local stack (empty when it runs without TLS)."""
    try:
        record = json.loads(client_file().read_text())
    except (OSError, ValueError):
        return {}
    return {k: str(v) for k, v in record.items() if k.startswith("TATOR_TLS_")} if isinstance(record, dict) else {}


def apply_client_env() -> None:
    """Let this process's clients use the local stack's TLS material, unless TATOR_TLS_* says otherwise."""
    if os.environ.get("TATOR_TLS_CA_FILE"):
        return
    os.environ.update(client_env())


def cluster_names(service: str, namespace: str) -> list[str]:
    """The names a Kubernetes client may dial for `service`: its Service, the headless one, each
    with the namespace and the cluster domain, and loopback (the exec probe in the pod)."""
    out: list[str] = []
    for svc in (service, f"{service}-headless"):
        out += [svc, f"{svc}.{namespace}", f"{svc}.{namespace}.svc", f"{svc}.{namespace}.svc.cluster.local"]
    return out + list(LOCAL_NAMES)
