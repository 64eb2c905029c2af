"""The unified social credit code (统一社会信用代码, GB 32100-2015) at the API's edge.

Validation is python-stdnum's `cn.uscc` (format and check character); this module only
turns a failure into the platform's problem type and gives routes one path parameter type.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path
from stdnum.cn import uscc as uscc_format

from shared.errors import Unprocessable


class InvalidUscc(Unprocessable):
    slug = "invalid-uscc"
    title = "Not a valid unified social credit code"


def is_valid_uscc(value: str) -> bool:
    return bool(uscc_format.is_valid(value))


def checked_uscc(value: str) -> str:
    """The code, trimmed and upper-cased, or an `InvalidUscc` problem."""
    code = value.strip().upper()
    if not uscc_format.is_valid(code):
        raise InvalidUscc(f"{value!r} fails the GB 32100-2015 format or check digit")
    return code


UsccPath = Annotated[str, Path(min_length=1, max_length=32, description="统一社会信用代码")]
