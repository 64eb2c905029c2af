"""Credit's observed outcomes, per enterprise, read with the scoring service's own token."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from fastapi import FastAPI

from services.scoring.settings import ScoringSettings
from shared.service_client import ServiceClient

PERFORMANCE_PATH = "/v1/outcomes/performance"


@dataclass(frozen=True, slots=True)
class Outcomes:
    period: int
    snapshot: str
    window_start: str
    window_end: str
    definition: str
    synthetic: bool
    last_outcome_id: int | None
    bad_by_uscc: dict[str, bool]
    approved: frozenset[str] = frozenset()
    rejected: frozenset[str] = frozenset()
    lines_run_id: str | None = None
    with_line: frozenset[str] = frozenset()

    @classmethod
    def of(cls, body: dict[str, Any]) -> Outcomes:
        """From credit's performance answer (`GET /v1/outcomes/performance`)."""
        return cls(
            period=int(body["period"]),
            snapshot=str(body["snapshot"]),
            window_start=str(body["window_start"]),
            window_end=str(body["window_end"]),
            definition=str(body["definition"]),
            synthetic=bool(body["synthetic"]),
            last_outcome_id=body.get("last_outcome_id"),
            bad_by_uscc={str(i["uscc"]): bool(i["bad"]) for i in body["items"]},
            approved=frozenset(body.get("approved") or ()),
            rejected=frozenset(body.get("rejected") or ()),
            lines_run_id=body.get("lines_run_id"),
            with_line=frozenset(body.get("with_line") or ()),
        )

    def aligned(self, uscc: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        """1 bad, 0 good, NaN not observed, row for row with `uscc`."""
        out = np.full(uscc.shape[0], np.nan)
        for i, code in enumerate(uscc):
            flag = self.bad_by_uscc.get(code)
            if flag is not None:
                out[i] = 1.0 if flag else 0.0
        return out

    def approval(self, uscc: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        """1 approved, 0 rejected, NaN no decided application, row for row."""
        out = np.full(uscc.shape[0], np.nan)
        for i, code in enumerate(uscc):
            if code in self.approved:
                out[i] = 1.0
            elif code in self.rejected:
                out[i] = 0.0
        return out

    def has_line(
        self, uscc: npt.NDArray[Any], scored: npt.NDArray[np.bool_]
    ) -> npt.NDArray[np.float64] | None:
        """1/0 per scored firm, NaN unscored; None when credit's lines are of another run."""
        if self.lines_run_id is None:
            return None
        flags = np.array([code in self.with_line for code in uscc], dtype=np.float64)
        return np.where(scored, flags, np.nan)

    def meta(self) -> dict[str, Any]:
        return {
            "period": self.period,
            "snapshot": self.snapshot,
            "window_start": self.window_start,
            "window_end": self.window_end,
            "definition": self.definition,
            "synthetic": self.synthetic,
            "last_outcome_id": self.last_outcome_id,
            "enterprises": len(self.bad_by_uscc),
            "bad": sum(self.bad_by_uscc.values()),
            "decided": len(self.approved) + len(self.rejected),
            "approved": len(self.approved),
            "lines_run_id": self.lines_run_id,
        }


async def fetch(app: FastAPI, period: int) -> Outcomes:
    """Any failure is a 502 problem (`UpstreamError`): a validation without its outcomes
    would silently be another validation."""
    settings: ScoringSettings = app.state.settings
    body = await ServiceClient(app, "credit", settings.credit_url).get(
        PERFORMANCE_PATH, {"period": period}
    )
    return Outcomes.of(body)
