"""The unified social credit code (统一社会信用代码, GB 32100-2015) at the API's edge.

Validation is python-stdnum's `cn.uscc` (format and check character); this module only
turns a failure into the platform's problem type and gives routes one path parameter type.
Routes take the code through the dependencies in `shared.auth.deps` (`VisibleUSCC` and its
kin), which check it here and then check the caller may see that enterprise.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Path
from stdnum.cn import uscc as uscc_format
from stdnum.exceptions import ValidationError

from shared.errors import Unprocessable


class InvalidUscc(Unprocessable):
    slug = "invalid-uscc"
    title = "Not a valid unified social credit code"


def canonical_uscc(value: str) -> str | None:
    """The code as stored everywhere (stdnum's compact form: trimmed, upper-cased, without
    the spaces or dashes people write in it), or None if it fails the format or the check
    character. The scoring import stores codes in this same form."""
    try:
        return str(uscc_format.validate(value))
    except ValidationError:
        return None


def checked_uscc(value: str) -> str:
    """The canonical code, or an `InvalidUscc` problem."""
    code = canonical_uscc(value)
    if code is None:
        raise InvalidUscc(f"{value!r} fails the GB 32100-2015 format or check character")
    return code


UsccPath = Annotated[str, Path(min_length=1, max_length=32, description="统一社会信用代码")]
