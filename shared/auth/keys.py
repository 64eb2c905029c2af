"""ES256 signing keys: generate, persist, publish.

A key file holds a private JWK Set; the first key signs, the others are kept only so tokens
they signed still verify during a rotation (their public halves stay in the JWKS).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from joserfc.jwk import ECKey, KeySet


def generate_key() -> ECKey:
    return ECKey.generate_key("P-256", parameters={"use": "sig", "alg": "ES256"}, auto_kid=True)


def load_or_create_key_set(path: Path) -> KeySet:
    if path.exists():
        return KeySet.import_key_set(json.loads(path.read_text()))
    key_set = KeySet([generate_key()])
    save_key_set(key_set, path)
    return key_set


def save_key_set(key_set: KeySet, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(key_set.as_dict(private=True), f)
    tmp.replace(path)


def rotate(key_set: KeySet, keep: int = 2) -> KeySet:
    """A new signing key first; the previous ones kept for verification only."""
    return KeySet([generate_key(), *list(key_set.keys)[: keep - 1]])


def public_jwks(key_set: KeySet) -> dict[str, Any]:
    return dict(key_set.as_dict(private=False))
