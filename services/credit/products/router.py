"""Credit products (信贷产品): banks publish them, everyone may browse the published ones."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, status

from services.credit.products import service
from services.credit.products.schemas import ProductOut, ProductStatus, ProductTerms
from shared.auth.deps import BankCaller, CurrentPrincipal
from shared.db import CommittingRoute, DbSession
from shared.errors import problem_responses
from shared.pagination import Page, Paging

router = APIRouter(prefix="/v1/products", tags=["products"], route_class=CommittingRoute)


@router.get("", response_model=Page[ProductOut], responses=problem_responses(401, 422))
async def list_products(
    session: DbSession,
    principal: CurrentPrincipal,
    paging: Paging,
    status: Annotated[ProductStatus | None, Query()] = None,
    bank_id: Annotated[str | None, Query(max_length=64)] = None,
) -> Page[ProductOut]:
    """A bank sees its own products (any status); others see the published ones."""
    return await service.list_products(session, principal, paging, status, bank_id)


@router.post(
    "",
    response_model=ProductOut,
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(401, 403, 422),
)
async def create_product(
    session: DbSession, principal: BankCaller, body: ProductTerms
) -> ProductOut:
    """A new product of the calling bank, as draft version 1."""
    return await service.create_product(session, principal, body)


@router.get("/{product_id}", response_model=ProductOut, responses=problem_responses(401, 404))
async def get_product(
    session: DbSession,
    principal: CurrentPrincipal,
    product_id: uuid.UUID,
    version: Annotated[int | None, Query(ge=1)] = None,
) -> ProductOut:
    """The offered version by default; `version=` for another one (drafts: the owner only)."""
    return await service.get_product(session, principal, product_id, version)


@router.get(
    "/{product_id}/versions", response_model=list[ProductOut], responses=problem_responses(401, 404)
)
async def list_versions(
    session: DbSession, principal: CurrentPrincipal, product_id: uuid.UUID
) -> list[ProductOut]:
    return await service.list_versions(session, principal, product_id)


@router.put(
    "/{product_id}", response_model=ProductOut, responses=problem_responses(401, 403, 404, 409, 422)
)
async def revise_product(
    session: DbSession, principal: BankCaller, product_id: uuid.UUID, body: ProductTerms
) -> ProductOut:
    """New terms: they edit the pending draft, or open a new draft version."""
    return await service.revise_product(session, principal, product_id, body)


@router.post(
    "/{product_id}/publish",
    response_model=ProductOut,
    responses=problem_responses(401, 403, 404, 409),
)
async def publish_product(
    session: DbSession, principal: BankCaller, product_id: uuid.UUID
) -> ProductOut:
    """Offer the draft version; the product's lines follow it as soon as this commits."""
    return await service.publish_product(session, principal, product_id)


@router.post(
    "/{product_id}/withdraw",
    response_model=ProductOut,
    responses=problem_responses(401, 403, 404, 409),
)
async def withdraw_product(
    session: DbSession, principal: BankCaller, product_id: uuid.UUID
) -> ProductOut:
    """No more offers or applications; existing applications keep their version."""
    return await service.withdraw_product(session, principal, product_id)
