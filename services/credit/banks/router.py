"""The banks of the financial supermarket."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import func, select

from services.credit.models import Bank, CreditProduct
from shared.auth.deps import CurrentPrincipal
from shared.db import CommittingRoute, DbSession
from shared.errors import problem_responses

router = APIRouter(prefix="/v1/banks", tags=["banks"], route_class=CommittingRoute)


class BankOut(BaseModel):
    id: str
    name: str
    name_en: str
    hotline: str
    published_products: int


class BankList(BaseModel):
    items: list[BankOut]
    total: int


@router.get("", response_model=BankList, responses=problem_responses(401))
async def list_banks(session: DbSession, _: CurrentPrincipal) -> BankList:
    published = (
        select(func.count())
        .where(CreditProduct.bank_id == Bank.id, CreditProduct.status == "published")
        .scalar_subquery()
    )
    rows = await session.execute(select(Bank, published).order_by(Bank.id))
    items = [
        BankOut(id=b.id, name=b.name, name_en=b.name_en, hotline=b.hotline, published_products=n)
        for b, n in rows
    ]
    return BankList(items=items, total=len(items))
