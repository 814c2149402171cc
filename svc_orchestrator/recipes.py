"""Prepass recipes: a named PrepassConfig plus glossary, saved, exported and imported as a zip.

Import never extracts anything to disk: members are read into memory under caps, and the archive
is refused (INVALID_ARGUMENT, reason ARCHIVE_INVALID, naming the member) when a member name is
empty, absolute (POSIX or Windows), carries a drive letter or `..`, normalises outside the archive
root, repeats another (case-insensitively), is a symlink (by its external_attr mode bits), is
encrypted, or when the archive, a member, the total uncompressed size or the member count is over
its cap — read sizes are checked on the bytes actually inflated, not the header's claim. The
manifest must list every other member with its size and SHA-256, and the recipe's config must parse
into the current PrepassConfig (unknown legacy knobs like `cross_iou` are refused) and validate.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import posixpath
import re
import time
import zipfile
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from svc_orchestrator.catalogs import normalize_glossary_text
from svc_orchestrator.prepass.config import ConfigDocError, checked_config_doc
from tator_core import errors
from tator_core.hashing import atomic_write_text
from tator_core.labels import glossary_hash, normalize_glossary
from tator_core.text import bad_char

SCHEMA_VERSION = 1
ID_RE = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
MAX_ENTRIES = 64
MAX_ENTRY_BYTES = 4 * 1024 * 1024
MAX_TOTAL_BYTES = 16 * 1024 * 1024
MAX_TIMESTAMP = 1e11  # seconds: year ~5000; larger values are not times
MANIFEST, META, GLOSSARY = "manifest.json", "recipe.json", "glossary.json"
_DRIVE_RE = re.compile(r"^[A-Za-z]:")
_S_IFMT, _S_IFLNK = 0o170000, 0o120000


@dataclass(frozen=True)
class Recipe:
    """A named prepass config plus glossary. `config` is the PrepassConfig as its JSON document (proto
    field names, set fields only), parsed, validated and resolved before a recipe holds it; the times
    are unix seconds (0: unset)."""

    id: str = ""
    name: str = ""
    description: str = ""
    config: Mapping[str, Any] = field(default_factory=dict)
    glossary: str = ""
    created_at: float = 0.0
    updated_at: float = 0.0
    schema_version: int = 0


def _now() -> float:
    """Now, at the nanosecond precision the API's timestamps carry."""
    return time.time_ns() / 1e9


def _bad(member: str, message: str) -> errors.TatorError:
    return errors.invalid_argument("archive", f"{member or '(unnamed)'}: {message}", "ARCHIVE_INVALID",
                                   member=member)


def check_id(recipe_id: str, fld: str = "id") -> str:
    if not ID_RE.match(recipe_id) or set(recipe_id) <= {"."}:
        raise errors.invalid_argument(fld, f"recipe id {recipe_id!r} must match [A-Za-z0-9._-]{{1,128}} "
                                      "and not be only dots")
    return recipe_id


def recipe_doc(r: Recipe) -> dict:
    return {"id": r.id, "name": r.name, "description": r.description, "config": dict(r.config),
            "glossary": r.glossary, "created_at": r.created_at, "updated_at": r.updated_at,
            "schema_version": r.schema_version}


def _text(doc: dict, key: str, member: str) -> str:
    value = doc.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _bad(member, f"{key} must be a string, not {type(value).__name__}")
    bad = bad_char(value)
    if bad is not None:
        raise _bad(member, f"{key} contains the control or bidi character {bad}")
    return value


def _glossary(doc: dict, member: str) -> str:
    """A glossary is text; a JSON object (as older exports wrote it) is kept as JSON text, which
    the glossary parser reads natively, and a list as one line per item, never as a Python repr."""
    value = doc.get("glossary")
    if isinstance(value, (dict, list)):
        text = json.dumps(value, ensure_ascii=False, sort_keys=True) if isinstance(value, dict) \
            else normalize_glossary(value)
        bad = bad_char(text)
        if bad is not None:
            raise _bad(member, f"glossary contains the control or bidi character {bad}")
        return text
    return _text(doc, "glossary", member)


def _number(doc: dict, key: str, member: str) -> float:
    value = doc.get(key)
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0 <= value <= MAX_TIMESTAMP:
        raise _bad(member, f"{key} must be a timestamp in seconds, not {value!r}"[:200])
    return float(value)


def recipe_from_doc(doc: object, member: str = META) -> Recipe:
    if not isinstance(doc, dict):
        raise _bad(member, "not a JSON object")
    raw_config = doc.get("config")
    if raw_config is not None and not isinstance(raw_config, dict):
        raise _bad(member, f"config must be an object, not {type(raw_config).__name__}")
    version = doc.get("schema_version", SCHEMA_VERSION)
    if isinstance(version, bool) or not isinstance(version, int) or not 0 <= version <= SCHEMA_VERSION:
        raise _bad(member, f"schema_version must be an integer from 0 to {SCHEMA_VERSION}, not {version!r}"[:200])
    try:
        config = checked_config_doc(raw_config or {})
    except ConfigDocError as exc:
        raise _bad(member, f"config {exc}") from exc
    return Recipe(id=_text(doc, "id", member), name=_text(doc, "name", member),
                  description=_text(doc, "description", member), config=config, glossary=_glossary(doc, member),
                  created_at=_number(doc, "created_at", member), updated_at=_number(doc, "updated_at", member),
                  schema_version=version or SCHEMA_VERSION)


def _member_name(info: zipfile.ZipInfo) -> str:
    """The member's normalised name; raises on every unsafe form."""
    raw = info.filename
    if not raw or not raw.strip() or "\0" in raw:
        raise _bad(raw, "empty or NUL in member name")
    if raw.startswith(("/", "\\")):
        raise _bad(raw, "absolute member path")
    if _DRIVE_RE.match(raw):
        raise _bad(raw, "member path carries a drive letter")
    parts = re.split(r"[/\\]", raw)
    if ".." in parts:
        raise _bad(raw, "member path contains '..'")
    norm = posixpath.normpath(raw.replace("\\", "/"))
    if norm.startswith("../") or norm in ("..", ".") or posixpath.isabs(norm):
        raise _bad(raw, "member path leaves the archive root")
    if (info.external_attr >> 16) & _S_IFMT == _S_IFLNK:
        raise _bad(raw, "symlink members are refused")
    if info.flag_bits & 0x1:
        raise _bad(raw, "encrypted members are refused")
    return norm


def read_archive(archive: bytes) -> dict[str, bytes]:
    """Every regular member's bytes by normalised name, after all the checks."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(archive))
    except (zipfile.BadZipFile, ValueError) as exc:
        raise _bad("", f"not a zip archive: {exc}") from exc
    infos = zf.infolist()
    if len(infos) > MAX_ENTRIES:
        raise _bad("", f"{len(infos)} members; the cap is {MAX_ENTRIES}")
    out: dict[str, bytes] = {}
    seen: set[str] = set()
    total = 0
    for info in infos:
        name = _member_name(info)
        if name.casefold() in seen:
            raise _bad(info.filename, "duplicate member")
        seen.add(name.casefold())
        if info.is_dir():
            continue
        if info.file_size > MAX_ENTRY_BYTES:
            raise _bad(info.filename, f"{info.file_size} bytes; the per-member cap is {MAX_ENTRY_BYTES}")
        try:
            with zf.open(info) as fh:
                data = fh.read(MAX_ENTRY_BYTES + 1)
        # ValueError: offsets that place a member before the archive's first byte (a negative seek).
        except (zipfile.BadZipFile, RuntimeError, NotImplementedError, OSError, EOFError, ValueError,
                zlib.error) as exc:
            raise _bad(info.filename, f"cannot be read: {exc}") from exc
        if len(data) > MAX_ENTRY_BYTES:
            raise _bad(info.filename, f"inflates past the per-member cap of {MAX_ENTRY_BYTES}")
        total += len(data)
        if total > MAX_TOTAL_BYTES:
            raise _bad(info.filename, f"total uncompressed size passes the cap of {MAX_TOTAL_BYTES}")
        out[name] = data
    return out


def _json(files: dict[str, bytes], name: str) -> Any:
    if name not in files:
        raise _bad(name, "required member is missing")
    try:
        return json.loads(files[name].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _bad(name, f"not valid JSON: {exc}") from exc
    except RecursionError as exc:  # hostile nesting
        raise _bad(name, "JSON nests too deeply") from exc


def check_manifest(files: dict[str, bytes]) -> None:
    manifest = _json(files, MANIFEST)
    assets = manifest.get("assets") if isinstance(manifest, dict) else None
    copied = assets.get("copied") if isinstance(assets, dict) else None
    if not isinstance(copied, list):
        raise _bad(MANIFEST, "assets.copied must be a list")
    listed = set()
    for entry in copied:
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            raise _bad(MANIFEST, "every asset needs a path")
        path = posixpath.normpath(entry["path"]) if entry["path"] else ""
        data = files.get(path)
        if data is None:
            raise _bad(path, "listed in the manifest but not in the archive")
        if entry.get("size") != len(data) or entry.get("sha256") != hashlib.sha256(data).hexdigest():
            raise _bad(path, "size or sha256 differs from the manifest")
        listed.add(path)
    unlisted = sorted(set(files) - listed - {MANIFEST})
    if unlisted:
        raise _bad(unlisted[0], "not listed in the manifest")


def free_id(base: str, taken) -> str:
    """`base`, else the first free `base-N` (N from 2)."""
    if not taken(base):
        return base
    n = 2
    while taken(f"{base}-{n}"):
        n += 1
    return f"{base}-{n}"


class RecipeStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, recipe_id: str) -> Path:
        if self.root.is_symlink():
            raise errors.invalid_argument("id", f"recipe directory {self.root} is a symlink; refused")
        self.root.mkdir(parents=True, exist_ok=True)
        return self.root / f"{check_id(recipe_id)}.json"

    def _load(self, path: Path) -> Recipe | None:
        if path.is_symlink() or not path.is_file():
            return None
        try:
            return recipe_from_doc(json.loads(path.read_text(encoding="utf-8")), path.name)
        except (OSError, ValueError, errors.TatorError):
            return None

    # Storage: files under `root` (one replica); `shared_docs.StoreRecipes` keeps them in the store.
    def _get(self, recipe_id: str) -> Recipe | None:
        return self._load(self._path(recipe_id))

    def _all(self) -> list[Recipe]:
        self._path("probe")  # creates and checks the directory
        return [r for r in (self._load(p) for p in sorted(self.root.glob("*.json"))) if r is not None]

    def _save(self, recipe: Recipe) -> Recipe:
        atomic_write_text(self._path(recipe.id), json.dumps(recipe_doc(recipe), indent=2, sort_keys=True))
        return recipe

    def _save_new(self, recipe: Recipe, base: str) -> Recipe:
        """Save under `base`, or `base-2`, `base-3`… when taken: never replaces another recipe."""
        return self._save(replace(recipe, id=free_id(base, self.exists)))

    def _remove(self, recipe_id: str) -> bool:
        path = self._path(recipe_id)
        if self._load(path) is None:
            return False
        path.unlink()
        return True

    def list(self) -> list[Recipe]:
        return sorted(self._all(), key=lambda r: r.id)

    def get(self, recipe_id: str) -> Recipe:
        recipe = self._get(recipe_id)
        if recipe is None:
            raise errors.not_found("NOT_FOUND", f"no recipe {recipe_id!r}", recipe_id=recipe_id)
        return recipe

    def exists(self, recipe_id: str) -> bool:
        return self._get(recipe_id) is not None

    def put(self, recipe: Recipe) -> Recipe:
        """Create or replace; an empty id derives one from the name (never replacing another recipe)."""
        # A request's config passed protovalidate at the door; here only the cross-field rules remain.
        config = checked_config_doc(recipe.config, fld="recipe.config", validate=False)
        out = replace(recipe, config=config, glossary=normalize_glossary_text(recipe.glossary))
        now = _now()
        if out.id:
            check_id(out.id, "recipe.id")
            previous = self._get(out.id)
            created = previous.created_at if previous else now
        else:
            slug = re.sub(r"[^A-Za-z0-9._-]+", "-", out.name).strip("-.")
            if not slug:
                raise errors.invalid_argument("recipe.name", "a recipe needs an id or a name with letters or digits")
            created = now
        out = replace(out, created_at=created, updated_at=now, schema_version=SCHEMA_VERSION)
        if out.id:
            return self._save(replace(out, name=out.name or out.id))
        base = slug[:120]
        # the name an id-less recipe gets is its slug, as before
        return self._save_new(replace(out, name=out.name or base), base)

    def delete(self, recipe_id: str) -> None:
        check_id(recipe_id)
        if not self._remove(recipe_id):
            raise errors.not_found("NOT_FOUND", f"no recipe {recipe_id!r}", recipe_id=recipe_id)

    def export(self, recipe_id: str) -> tuple[bytes, str]:
        recipe = self.get(recipe_id)
        files = {META: json.dumps(recipe_doc(recipe), indent=2, sort_keys=True).encode(),
                 GLOSSARY: json.dumps({"glossary": recipe.glossary, "glossary_hash": glossary_hash(recipe.glossary)},
                                      indent=2, sort_keys=True).encode()}
        manifest = {"schema_version": SCHEMA_VERSION, "recipe_id": recipe.id, "generated_at": time.time(),
                    "assets": {"copied": [{"path": k, "size": len(v), "sha256": hashlib.sha256(v).hexdigest()}
                                          for k, v in sorted(files.items())], "missing": []}}
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in [(MANIFEST, json.dumps(manifest, indent=2, sort_keys=True).encode()), *files.items()]:
                zf.writestr(name, data)
        return buf.getvalue(), f"{recipe.id}.recipe.zip"

    def import_archive(self, archive: bytes) -> tuple[Recipe, str]:
        files = read_archive(archive)
        check_manifest(files)
        recipe = recipe_from_doc(_json(files, META))
        if not ID_RE.match(recipe.id) or set(recipe.id) <= {"."}:
            raise _bad(META, f"recipe id {recipe.id!r} must match [A-Za-z0-9._-]{{1,128}}")
        wanted = recipe.id
        now = _now()
        recipe = replace(recipe, glossary=normalize_glossary_text(recipe.glossary), updated_at=now,
                         created_at=recipe.created_at or now, schema_version=SCHEMA_VERSION)
        saved = self._save_new(recipe, wanted[:120])
        notice = f"a recipe {wanted!r} exists; imported as {saved.id!r}" if saved.id != wanted else ""
        return saved, notice
