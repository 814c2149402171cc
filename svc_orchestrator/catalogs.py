"""Catalogs on Python types: the glossary library (svc_orchestrator.convert makes the messages).

Glossary library hardening, kept: names are whitespace-collapsed; an empty name, a
name of only dots, or one holding a path separator is INVALID_ARGUMENT; writes are atomic (temp
file + rename, so a failed save leaves no partial file, and a symlink at the target is replaced,
never followed); reads open with O_NOFOLLOW; a symlinked library directory is refused; listing
skips symlinks. Changed: file names carry a hash of the name, so "a b" and "a-b" (which the old
`spaces -> -` naming mapped to one file) stay two glossaries.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from tator_core import errors
from tator_core.hashing import atomic_write_text
from tator_core.labels import glossary_hash, normalize_glossary, parse_glossary, parse_glossary_raw

_SLUG_RE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class Glossary:
    """A saved glossary: its name, normalised text, the text's hash and the terms parsed per label."""

    name: str
    text: str
    hash: str
    terms: dict[str, list[str]]


def normalize_glossary_text(text: str) -> str:
    """A JSON object becomes `label: t1, t2` lines (as a dataset's glossary.json does); anything else is
    kept verbatim, stripped — its exact text is what gets hashed."""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            value = json.loads(stripped)
        except json.JSONDecodeError:
            return stripped
        if isinstance(value, dict):
            return normalize_glossary(value)
    return stripped


def normalize_name(name: str) -> str:
    clean = " ".join(name.split())
    if not clean:
        raise errors.invalid_argument("name", "a glossary name is required")
    if set(clean) <= {"."}:
        raise errors.invalid_argument("name", f"{name!r} is not a valid glossary name")
    if any(sep in clean for sep in ("/", "\\", "\0", os.sep, os.altsep or "/")):
        raise errors.invalid_argument("name", "a glossary name may not contain a path separator")
    return clean


class GlossaryLibrary:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _dir(self) -> Path:
        for p in (self.root, self.root.parent):
            if p.is_symlink():
                raise errors.invalid_argument("name", f"glossary path {p} is a symlink; refused")
        self.root.mkdir(parents=True, exist_ok=True)
        return self.root

    def _path(self, name: str) -> Path:
        slug = _SLUG_RE.sub("-", name).strip("-.") or "glossary"
        return self._dir() / f"{slug[:80]}.{hashlib.sha256(name.encode()).hexdigest()[:10]}.json"

    @staticmethod
    def valid(doc: object) -> bool:
        return isinstance(doc, dict) and isinstance(doc.get("name"), str) and isinstance(doc.get("text"), str)

    @staticmethod
    def _read(path: Path) -> dict | None:
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            return None
        with os.fdopen(fd, "r", encoding="utf-8") as fh:
            try:
                doc = json.load(fh)
            except (json.JSONDecodeError, UnicodeDecodeError):
                return None
        return doc if GlossaryLibrary.valid(doc) else None

    @staticmethod
    def _glossary(doc: dict) -> Glossary:
        text = doc["text"]
        return Glossary(doc["name"], text, glossary_hash(text), parse_glossary(text))

    # Storage: files under `root` (one replica); `shared_docs.StoreGlossaries` keeps them in the store.
    def _load(self, clean: str) -> dict | None:
        doc = self._read(self._path(clean))
        return doc if doc is not None and doc["name"] == clean else None

    def _docs(self) -> list[dict]:
        out = []
        for p in sorted(self._dir().glob("*.json")):
            if p.is_symlink() or not p.is_file():
                continue
            doc = self._read(p)
            if doc is not None:
                out.append(doc)
        return out

    def _write(self, clean: str, doc: dict) -> None:
        atomic_write_text(self._path(clean), json.dumps(doc, indent=2, sort_keys=True))

    def _remove(self, clean: str) -> bool:
        path = self._path(clean)
        if path.is_symlink() or self._read(path) is None:
            return False
        path.unlink()
        return True

    def list(self) -> list[Glossary]:
        return sorted((self._glossary(doc) for doc in self._docs()), key=lambda g: g.name.lower())

    def get(self, name: str) -> Glossary:
        clean = normalize_name(name)
        doc = self._load(clean)
        if doc is None:
            raise errors.not_found("NOT_FOUND", f"no glossary named {clean!r}", name=clean)
        return self._glossary(doc)

    def text(self, name: str) -> str:
        return self.get(name).text

    def put(self, name: str, text: str) -> Glossary:
        clean = normalize_name(name)
        norm = normalize_glossary_text(text)
        if not parse_glossary_raw(norm):
            raise errors.invalid_argument("text", "no `label: terms` entries found (JSON object, JSON list of "
                                          "{label, synonyms} or `label: a, b` lines)")
        doc = {"name": clean, "text": norm, "hash": glossary_hash(norm), "updated_at": time.time()}
        self._write(clean, doc)
        return self._glossary(doc)

    def delete(self, name: str) -> None:
        clean = normalize_name(name)
        if not self._remove(clean):
            raise errors.not_found("NOT_FOUND", f"no glossary named {clean!r}", name=clean)
