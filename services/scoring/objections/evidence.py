"""Evidence files: what is accepted, judged by the content, and how a file is served back.

The type is sniffed from the file's leading bytes (the `filetype` library's signatures), so a
script renamed `.pdf` or declared `application/pdf` is refused; a declared type that
contradicts the content is refused too. Files are served as attachments with `nosniff`, so a
browser never renders one in the portal's origin.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import quote

import filetype

from shared.errors import UnsupportedMediaType

ALLOWED = {"application/pdf": "pdf", "image/png": "png", "image/jpeg": "jpg"}
_GENERIC = {"", "application/octet-stream", "binary/octet-stream"}
_MAX_NAME = 200


@dataclass(frozen=True)
class CheckedFile:
    file_name: str
    media_type: str
    sha256: str
    size: int


def clean_name(name: str | None, media_type: str) -> str:
    """The file's base name without control characters or path parts, at most 200 chars."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C").strip(" .")
    return base[:_MAX_NAME] or f"evidence.{ALLOWED[media_type]}"


def check(content: bytes, name: str | None, declared: str | None) -> CheckedFile:
    """The file's sniffed type, clean name and sha256; 415 unless a PDF, PNG or JPEG."""
    kind = filetype.guess(content) if content else None
    sniffed = kind.mime if kind is not None else None
    if sniffed not in ALLOWED:
        raise UnsupportedMediaType(
            "Evidence must be a PDF, PNG or JPEG file (judged by its content)",
            allowed=sorted(ALLOWED),
        )
    declared_type = (declared or "").split(";")[0].strip().lower()
    if declared_type not in _GENERIC and declared_type != sniffed:
        raise UnsupportedMediaType(
            f"The file was declared {declared_type} but its content is {sniffed}",
            allowed=sorted(ALLOWED),
        )
    return CheckedFile(
        file_name=clean_name(name, sniffed),
        media_type=sniffed,
        sha256=hashlib.sha256(content).hexdigest(),
        size=len(content),
    )


def download_headers(file_name: str, sha256: str) -> dict[str, str]:
    ascii_name = file_name.encode("ascii", "replace").decode().replace('"', "_").replace("?", "_")
    return {
        "Content-Disposition": (
            f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(file_name)}"
        ),
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "private, no-store",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "ETag": f'"{sha256}"',
    }
