"""Which callbacks the development provider sends an ssotoken to.

A callback is compared as a parsed URL, never as a string prefix: a prefix check let
`http://127.0.0.1:8000@evil.example/steal` through (userinfo `127.0.0.1:8000`, host
`evil.example`), and the ssotoken went to evil.example. So: the scheme, host and port must
equal a configured origin exactly, the path must sit under its path prefix, and anything a
browser might resolve differently from us (userinfo, backslashes, dot segments, control
characters, a fragment) is refused outright.

Hand-written over urllib.parse rather than a URL library: the rules are few, and each is a
refusal we want to state ourselves.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}
_UNSAFE = re.compile(r"[\x00-\x20\x7f\\]")


@dataclass(frozen=True)
class Origin:
    scheme: str
    host: str
    port: int


def parse_origin(url: str) -> tuple[Origin, str] | None:
    """The origin and path of an absolute http(s) URL, or None when it is not plainly one."""
    if _UNSAFE.search(url):
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname or parts.fragment:
        return None
    if "@" in parts.netloc or parts.username is not None or parts.password is not None:
        return None
    path = parts.path or "/"
    if any(seg in (".", "..") for seg in unquote(path).split("/")):
        return None
    return Origin(scheme, parts.hostname.lower(), port or DEFAULT_PORTS[scheme]), path


@dataclass(frozen=True)
class AllowedCallback:
    origin: Origin
    path_prefix: str

    @classmethod
    def parse(cls, entry: str) -> AllowedCallback:
        parsed = parse_origin(entry)
        if parsed is None or urlsplit(entry).query:
            raise ValueError(f"not an origin with a path prefix: {entry!r}")
        origin, path = parsed
        return cls(origin, path)

    def admits(self, origin: Origin, path: str) -> bool:
        if origin != self.origin:
            return False
        prefix = self.path_prefix.rstrip("/")
        return path == self.path_prefix or path.startswith(prefix + "/") or not prefix


def callback_allowed(allowed: list[AllowedCallback], url: str) -> bool:
    parsed = parse_origin(url)
    return parsed is not None and any(a.admits(*parsed) for a in allowed)
