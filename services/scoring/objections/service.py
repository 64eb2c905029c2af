"""Objections (异议) to the values of a run in public notice, and their decisions.

An enterprise (or the government on its behalf, say for an objection received by letter)
objects to one value its proposed score was computed from: one of the 24 indicators, or the
operating revenue that sets its stage. Objections are taken while the notice runs; each value
has at most one open objection. The government decides each one with a note. An accepted
objection becomes a correction: a `correction` source (the objection is its provenance) that
outranks imports, and the value written with it to the period's facts. Percentiles depend on
the whole cohort, so the noticed run itself never changes: the government evaluates the
period again with `corrects_run_id`, compares, and publishes that run.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from contracts.catalogue import INDICATOR_CODES, INDICATORS_BY_CODE, PROFILE_BY_CODE
from services.scoring.audit.service import record
from services.scoring.imports.parser import check_number
from services.scoring.models import (
    Enterprise,
    EvaluationRun,
    Objection,
    ObjectionEvidence,
)
from services.scoring.objections import evidence, repository
from services.scoring.objections.schemas import (
    EvidenceOut,
    ObjectionCreate,
    ObjectionDecision,
    ObjectionOut,
)
from services.scoring.provenance import service as provenance
from services.scoring.provenance.repository import set_value, sources_by_id
from services.scoring.scores.repository import score_row
from services.scoring.scores.service import public
from shared.auth.principal import Principal, PrincipalKind
from shared.errors import (
    Conflict,
    Forbidden,
    InvalidTransition,
    NotFound,
    PayloadTooLarge,
    Unprocessable,
)

# What an objection may contest: the values a score is computed from.
OBJECTABLE: tuple[str, ...] = (*INDICATOR_CODES, "operating_revenue")
MAX_PER_RUN = 100  # objections (any status) one enterprise may raise against one run


class NoticeEnded(Conflict):
    slug = "notice-ended"
    title = "The public notice has ended: objections are no longer taken"


def _kind(field: str) -> str:
    if field in INDICATORS_BY_CODE:
        return INDICATORS_BY_CODE[field].kind
    return PROFILE_BY_CODE[field].kind


def _check_value(field: str, value: float, name: str) -> None:
    code, message = check_number(value, _kind(field))
    if code:
        raise Unprocessable(f"{name}: {message}", code=code)


def ensure_may_object(principal: Principal) -> None:
    if principal.kind not in (PrincipalKind.ENTERPRISE, PrincipalKind.GOVERNMENT):
        raise Forbidden("Objections are raised by the enterprise, or the government for it")


async def visible_objection(
    session: AsyncSession, principal: Principal, objection_id: uuid.UUID, *, lock: bool = False
) -> Objection:
    """The objection, if the caller may see it: its enterprise, or the government."""
    ensure_may_object(principal)
    obj = await session.get(Objection, objection_id, with_for_update=lock)
    own = principal.kind is PrincipalKind.GOVERNMENT or (obj and obj.uscc == principal.uscc)
    if obj is None or not own:
        raise NotFound(f"No objection {objection_id}")
    return obj


async def create(
    session: AsyncSession, principal: Principal, body: ObjectionCreate, actor: str, now: datetime
) -> Objection:
    ensure_may_object(principal)
    if principal.kind is PrincipalKind.ENTERPRISE and principal.uscc != body.uscc:
        raise Forbidden("An enterprise objects only to its own values")
    run = await session.get(EvaluationRun, body.run_id)
    if run is None or (principal.kind is PrincipalKind.ENTERPRISE and not public(run)):
        raise NotFound(f"No evaluation {body.run_id} in notice")
    if run.status != "in_notice" or run.notice_ends_at is None:
        raise InvalidTransition("Objections are taken only against a run in public notice")
    if now >= run.notice_ends_at:
        raise NoticeEnded(f"The notice ended at {run.notice_ends_at.isoformat()}")
    if body.indicator not in OBJECTABLE:
        raise Unprocessable(
            f"{body.indicator!r} is not a value a score is computed from", allowed=OBJECTABLE
        )
    _check_value(body.indicator, body.claimed_value, "claimed_value")
    ent = await session.get(Enterprise, body.uscc)
    row = await score_row(session, run.id, ent.id) if ent is not None else None
    if row is None:
        raise NotFound(f"{body.uscc} is not part of evaluation {run.id}")
    if body.indicator == "operating_revenue":
        run_value, run_source = row["revenue"], row.get("revenue_source")
    else:
        j = INDICATOR_CODES.index(body.indicator)
        run_value, run_source = row["values"][j], (row.get("value_sources") or [0] * 24)[j]
    run_value = None if run_value is None or run_value != run_value else float(run_value)
    if run_value == body.claimed_value:
        raise Unprocessable("The claimed value is the value the run was computed from")
    if await repository.open_objection(session, run.id, body.uscc, body.indicator):
        raise Conflict(f"An objection to {body.indicator} is already open")
    if await repository.objections_of_run(session, run.id, body.uscc) >= MAX_PER_RUN:
        raise Conflict(f"At most {MAX_PER_RUN} objections per enterprise and run")
    obj = Objection(
        id=uuid.uuid4(),
        run_id=run.id,
        period=run.period,
        uscc=body.uscc,
        field=body.indicator,
        run_value=run_value,
        run_source_id=run_source or None,
        claimed_value=body.claimed_value,
        reason=body.reason,
        status="open",
        created_by=actor,
        created_at=now,
    )
    try:
        async with session.begin_nested():  # two at once: the unique index decides
            session.add(obj)
            await session.flush()
    except IntegrityError as exc:
        raise Conflict(f"An objection to {body.indicator} is already open") from exc
    await record(
        session,
        actor,
        "objection.created",
        "objection",
        obj.id,
        run_id=str(run.id),
        uscc=obj.uscc,
        indicator=obj.field,
        claimed_value=obj.claimed_value,
    )
    return obj


async def decide(
    session: AsyncSession,
    principal: Principal,
    objection_id: uuid.UUID,
    body: ObjectionDecision,
    actor: str,
    now: datetime,
) -> Objection:
    obj = await visible_objection(session, principal, objection_id, lock=True)
    if obj.status != "open":
        raise InvalidTransition(f"The objection was already {obj.status}")
    obj.status = body.decision
    obj.decided_by = actor
    obj.decided_at = now
    obj.decision_note = body.note
    if body.decision == "accepted":
        value = body.corrected_value if body.corrected_value is not None else obj.claimed_value
        _check_value(obj.field, value, "corrected_value")
        source = await provenance.add_source(
            session,
            kind="correction",
            precedence=provenance.CORRECTION_PRECEDENCE,
            created_by=actor,
            period=obj.period,
            objection_id=obj.id,
        )
        if not await set_value(session, obj.uscc, obj.period, obj.field, value, source.id):
            raise Conflict(f"{obj.uscc} has no facts for {obj.period} to correct")
        obj.corrected_value = value
        obj.correction_source_id = source.id
        await record(
            session,
            actor,
            "fact.corrected",
            "fact",
            f"{obj.uscc}/{obj.period}/{obj.field}",
            value=value,
            source_id=source.id,
            objection_id=str(obj.id),
        )
    await session.flush()
    await record(session, actor, "objection.decided", "objection", obj.id, decision=body.decision)
    return obj


async def add_evidence(
    session: AsyncSession,
    principal: Principal,
    objection_id: uuid.UUID,
    content: bytes,
    file_name: str | None,
    declared_type: str | None,
    actor: str,
    max_files: int,
) -> ObjectionEvidence:
    obj = await visible_objection(session, principal, objection_id, lock=True)
    if obj.status != "open":
        raise InvalidTransition("Evidence is added while the objection is open")
    if await repository.evidence_count(session, obj.id) >= max_files:
        raise PayloadTooLarge(f"An objection holds at most {max_files} evidence files")
    checked = evidence.check(content, file_name, declared_type)
    item = ObjectionEvidence(
        id=uuid.uuid4(),
        objection_id=obj.id,
        file_name=checked.file_name,
        media_type=checked.media_type,
        size=checked.size,
        sha256=checked.sha256,
        content=content,
        created_by=actor,
    )
    session.add(item)
    await session.flush()
    await record(
        session,
        actor,
        "evidence.added",
        "objection",
        obj.id,
        evidence_id=str(item.id),
        sha256=checked.sha256,
        size=checked.size,
        media_type=checked.media_type,
    )
    return item


async def outs(
    session: AsyncSession, objections: Sequence[Objection], *, with_person: bool
) -> list[ObjectionOut]:
    """Objections as the API shows them, with their sources and evidence (two queries)."""
    files = await repository.evidence_of(session, [o.id for o in objections])
    ids = [i for o in objections for i in (o.run_source_id, o.correction_source_id) if i]
    sources = await sources_by_id(session, ids)

    def src(source_id: int | None) -> object:
        return provenance.source_out(sources.get(source_id or 0), with_person=with_person)

    return [
        ObjectionOut.model_validate(
            {
                "id": o.id,
                "run_id": o.run_id,
                "period": o.period,
                "uscc": o.uscc,
                "indicator": o.field,
                "run_value": o.run_value,
                "run_source": src(o.run_source_id),
                "claimed_value": o.claimed_value,
                "reason": o.reason,
                "status": o.status,
                "created_by": o.created_by,
                "created_at": o.created_at,
                "decided_by": o.decided_by,
                "decided_at": o.decided_at,
                "decision_note": o.decision_note,
                "corrected_value": o.corrected_value,
                "correction_source": src(o.correction_source_id),
                "evidence": [
                    EvidenceOut.model_validate(e, from_attributes=True) for e in files[o.id]
                ],
            }
        )
        for o in objections
    ]


async def listing(
    session: AsyncSession,
    principal: Principal,
    *,
    run_id: uuid.UUID | None,
    uscc: str | None,
    status: str | None,
    limit: int,
    offset: int,
) -> tuple[list[ObjectionOut], int]:
    """The government sees every objection; an enterprise its own."""
    ensure_may_object(principal)
    if principal.kind is PrincipalKind.ENTERPRISE:
        if uscc is not None and uscc != principal.uscc:
            raise Forbidden("An enterprise sees only its own objections")
        uscc = principal.uscc
    rows, total = await repository.listing(
        session, run_id=run_id, uscc=uscc, status=status, limit=limit, offset=offset
    )
    return await outs(session, rows, with_person=principal.is_government), total


async def evidence_file(
    session: AsyncSession, principal: Principal, objection_id: uuid.UUID, evidence_id: uuid.UUID
) -> ObjectionEvidence:
    obj = await visible_objection(session, principal, objection_id)
    item = await repository.evidence_file(session, obj.id, evidence_id)
    if item is None:
        raise NotFound(f"No evidence {evidence_id} on objection {objection_id}")
    return item
