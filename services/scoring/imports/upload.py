"""An import file taken off the request onto disk, a MiB at a time, never whole in memory.

A file may be sent gzip-compressed (a `.csv.gz`; recognised by its magic bytes, whatever its
name): it is inflated while it is written, with a bound on the inflated size, so a gzip bomb is
refused (413) after at most that many bytes. The digest is the file's as uploaded.

An XLSX file is a ZIP of XML documents, which openpyxl inflates: `check_xlsx` bounds what its
members declare they inflate to before openpyxl opens it (zipfile never reads a member past its
declared size), and the reader bounds the cells it reads.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from fastapi import UploadFile

from shared.errors import PayloadTooLarge, Unprocessable

_GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 1 << 20


def _shown(limit: int) -> str:
    return f"{limit // (1024 * 1024)} MiB" if limit >= 1024 * 1024 else f"{limit} bytes"


@dataclass
class Spooled:
    path: Path
    sha256: str
    filename: str  # as uploaded, without a trailing ".gz" when it was inflated
    compressed: bool
    size: int  # bytes on disk (inflated)

    def head(self, n: int = 8) -> bytes:
        with self.path.open("rb") as fh:
            return fh.read(n)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


class _Inflater:
    """gzip members, one after the other, inflated to at most `limit` bytes in total."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.out = 0
        self.z = zlib.decompressobj(wbits=31)
        self.fed = False  # the current member has had input

    def feed(self, data: bytes) -> list[bytes]:
        parts: list[bytes] = []
        while data:
            self.fed = True
            try:
                # At most one byte past the bound: enough to know the bound is passed.
                part = self.z.decompress(data, self.limit - self.out + 1)
            except zlib.error as exc:
                raise Unprocessable("The gzip file is damaged") from exc
            self.out += len(part)
            if self.out > self.limit:
                raise PayloadTooLarge(f"Import files are limited to {_shown(self.limit)} inflated")
            parts.append(part)
            if self.z.eof:  # another member may follow
                data = self.z.unused_data
                self.z = zlib.decompressobj(wbits=31)
                self.fed = False
            else:
                data = self.z.unconsumed_tail
        return parts

    def finish(self) -> None:
        if self.fed and not self.z.eof:
            raise Unprocessable("The gzip file is truncated")


async def spool(file: UploadFile, *, max_bytes: int, max_inflated: int) -> Spooled:
    """The upload on disk (inflated if it was gzip); 413 past either bound."""
    digest = hashlib.sha256()
    fd, name = tempfile.mkstemp(prefix="import-", suffix=".upload")
    path = Path(name)
    received = 0
    inflater: _Inflater | None = None
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := await file.read(_CHUNK):
                received += len(chunk)
                if received > max_bytes:
                    raise PayloadTooLarge(f"Import files are limited to {_shown(max_bytes)}")
                digest.update(chunk)
                if received == len(chunk) and chunk.startswith(_GZIP_MAGIC):
                    inflater = _Inflater(max_inflated)
                for part in inflater.feed(chunk) if inflater else [chunk]:
                    out.write(part)
            if inflater:
                inflater.finish()
            size = out.tell()
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
        raise
    filename = file.filename or "upload"
    if inflater and filename.lower().endswith(".gz"):
        filename = filename[:-3]
    return Spooled(path, digest.hexdigest(), filename, inflater is not None, size)


def check_xlsx(path: Path, max_inflated: int) -> None:
    """Refuse (413) a workbook whose members declare more than `max_inflated` bytes."""
    try:
        with zipfile.ZipFile(path) as archive:
            declared = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return  # not a ZIP: openpyxl says so, as for any damaged file
    if declared > max_inflated:
        raise PayloadTooLarge(
            f"The XLSX file inflates to {declared} bytes; at most {_shown(max_inflated)}"
        )
