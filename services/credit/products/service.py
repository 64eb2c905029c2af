"""Products and their versions: draft, publish, withdraw; lines follow every change."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.credit.common import actor, bank_of
from services.credit.models import Bank, CreditProduct, ProductVersion
from services.credit.products.schemas import ProductOut, ProductTerms
from shared.auth.principal import Principal, PrincipalKind
from shared.errors import InvalidTransition, NotFound
from shared.pagination import Page, PageParams


def _sees_all_versions(principal: Principal, product: CreditProduct) -> bool:
    if principal.kind is PrincipalKind.BANK:
        return product.bank_id == principal.bank_id
    return principal.kind in (PrincipalKind.GOVERNMENT, PrincipalKind.SERVICE)


def _visible(principal: Principal, product: CreditProduct) -> bool:
    if principal.kind is PrincipalKind.BANK:
        return product.bank_id == principal.bank_id
    if principal.kind is PrincipalKind.ENTERPRISE:
        # Drafts are the bank's business; a withdrawn product stays readable for the
        # applications made against it.
        return product.published_version is not None
    return True


def to_out(product: CreditProduct, version: ProductVersion, bank: Bank) -> ProductOut:
    terms = ProductTerms.model_validate(
        {
            "name": version.name,
            "description": version.description,
            "eligible_stages": version.eligible_stages,
            "min_tier": version.min_tier,
            "min_percentile": version.min_percentile,
            "line_rule": version.line_rule,
            "max_amount": version.max_amount,
            "rate_min": version.rate_min,
            "rate_max": version.rate_max,
            "term_months": version.term_months,
            "guarantee": version.guarantee,
            "valid_from": version.valid_from,
            "valid_to": version.valid_to,
        }
    )
    return ProductOut(
        **terms.model_dump(),
        id=product.id,
        bank_id=bank.id,
        bank_name=bank.name,
        hotline=bank.hotline,
        status=product.status,
        version=version.version,
        version_published_at=version.published_at,
        version_published_by=version.published_by,
        withdrawn_at=product.withdrawn_at,
        withdrawn_by=product.withdrawn_by,
        created_by=product.created_by,
        published_version=product.published_version,
        latest_version=product.latest_version,
        created_at=product.created_at,
        updated_at=product.updated_at,
    )


def _version_row(
    product_id: uuid.UUID, version: int, terms: ProductTerms, by: str
) -> ProductVersion:
    return ProductVersion(
        product_id=product_id,
        version=version,
        created_by=by,
        **_terms_columns(terms),
    )


def _terms_columns(terms: ProductTerms) -> dict[str, object]:
    data = terms.model_dump(mode="json")
    data["eligible_stages"] = [s.value for s in terms.eligible_stages]
    data["valid_from"] = terms.valid_from
    data["valid_to"] = terms.valid_to
    return data


async def _load(
    session: AsyncSession, principal: Principal, product_id: uuid.UUID, *, lock: bool = False
) -> tuple[CreditProduct, Bank]:
    stmt = select(CreditProduct, Bank).join(Bank).where(CreditProduct.id == product_id)
    if lock:
        stmt = stmt.with_for_update(of=CreditProduct)
    row = (await session.execute(stmt)).first()
    if row is None or not _visible(principal, row[0]):
        raise NotFound(f"No product {product_id}")
    return row[0], row[1]


async def _owned(
    session: AsyncSession, principal: Principal, product_id: uuid.UUID
) -> tuple[CreditProduct, Bank]:
    bank_of(principal)
    return await _load(session, principal, product_id, lock=True)


async def get_product(
    session: AsyncSession, principal: Principal, product_id: uuid.UUID, version: int | None
) -> ProductOut:
    product, bank = await _load(session, principal, product_id)
    if version is None:
        version = product.published_version or product.latest_version
    row = await session.get(ProductVersion, (product.id, version))
    if row is None or (row.published_at is None and not _sees_all_versions(principal, product)):
        raise NotFound(f"Product {product_id} has no version {version}")
    return to_out(product, row, bank)


async def list_versions(
    session: AsyncSession, principal: Principal, product_id: uuid.UUID
) -> list[ProductOut]:
    product, bank = await _load(session, principal, product_id)
    stmt = select(ProductVersion).where(ProductVersion.product_id == product.id)
    if not _sees_all_versions(principal, product):
        stmt = stmt.where(ProductVersion.published_at.is_not(None))
    rows = await session.scalars(stmt.order_by(ProductVersion.version))
    return [to_out(product, v, bank) for v in rows]


async def list_products(
    session: AsyncSession,
    principal: Principal,
    params: PageParams,
    status: str | None,
    bank_id: str | None,
) -> Page[ProductOut]:
    shown = func.coalesce(CreditProduct.published_version, CreditProduct.latest_version)
    stmt = (
        select(CreditProduct, ProductVersion, Bank)
        .join(Bank, Bank.id == CreditProduct.bank_id)
        .join(
            ProductVersion,
            (ProductVersion.product_id == CreditProduct.id) & (ProductVersion.version == shown),
        )
    )
    if principal.kind is PrincipalKind.BANK:
        stmt = stmt.where(CreditProduct.bank_id == principal.bank_id)
    elif principal.kind is PrincipalKind.ENTERPRISE:
        stmt = stmt.where(CreditProduct.published_version.is_not(None))
    if status is not None:
        stmt = stmt.where(CreditProduct.status == status)
    if bank_id is not None:
        stmt = stmt.where(CreditProduct.bank_id == bank_id)
    total = await session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = await session.execute(
        stmt.order_by(CreditProduct.created_at, CreditProduct.id)
        .limit(params.limit)
        .offset(params.offset)
    )
    return Page[ProductOut].of([to_out(p, v, b) for p, v, b in rows], total, params)


async def create_product(
    session: AsyncSession, principal: Principal, terms: ProductTerms
) -> ProductOut:
    bank_id = bank_of(principal)
    bank = await session.get(Bank, bank_id)
    if bank is None:
        raise NotFound(f"Bank {bank_id} is not in the supermarket")
    product = CreditProduct(
        id=uuid.uuid4(),
        bank_id=bank_id,
        status="draft",
        published_version=None,
        latest_version=1,
        created_by=actor(principal),
    )
    session.add(product)
    await session.flush()
    version = _version_row(product.id, 1, terms, actor(principal))
    session.add(version)
    await session.flush()
    await session.refresh(product)
    return to_out(product, version, bank)


async def revise_product(
    session: AsyncSession, principal: Principal, product_id: uuid.UUID, terms: ProductTerms
) -> ProductOut:
    """New terms: edit the pending draft, or start a new draft version after a published one."""
    product, bank = await _owned(session, principal, product_id)
    if product.status == "withdrawn":
        raise InvalidTransition("A withdrawn product cannot be revised", status=product.status)
    latest = await session.get(ProductVersion, (product.id, product.latest_version))
    assert latest is not None
    if latest.published_at is None:
        for key, value in _terms_columns(terms).items():
            setattr(latest, key, value)
        version = latest
    else:
        product.latest_version += 1
        version = _version_row(product.id, product.latest_version, terms, actor(principal))
        session.add(version)
    product.updated_at = datetime.now(UTC)
    await session.flush()
    return to_out(product, version, bank)


async def publish_product(
    session: AsyncSession, principal: Principal, product_id: uuid.UUID
) -> ProductOut:
    product, bank = await _owned(session, principal, product_id)
    latest = await session.get(ProductVersion, (product.id, product.latest_version))
    assert latest is not None
    if product.status == "withdrawn" or latest.published_at is not None:
        raise InvalidTransition(
            "Only a draft version can be published"
            + (" (the product is withdrawn)" if product.status == "withdrawn" else ""),
            status=product.status,
            latest_version=product.latest_version,
        )
    now = datetime.now(UTC)
    latest.published_at = now
    latest.published_by = actor(principal)
    product.status = "published"
    product.published_version = latest.version
    product.updated_at = now
    # Its lines are computed from the version now published when read (`credit_lines`).
    await session.flush()
    return to_out(product, latest, bank)


async def withdraw_product(
    session: AsyncSession, principal: Principal, product_id: uuid.UUID
) -> ProductOut:
    product, bank = await _owned(session, principal, product_id)
    if product.status == "withdrawn":
        raise InvalidTransition("The product is already withdrawn", status=product.status)
    now = datetime.now(UTC)
    product.status = "withdrawn"
    product.withdrawn_at = now
    product.withdrawn_by = actor(principal)
    product.updated_at = now
    # Its lines are gone with it: only published products' lines are computed.
    await session.flush()
    shown = await session.get(
        ProductVersion, (product.id, product.published_version or product.latest_version)
    )
    assert shown is not None
    return to_out(product, shown, bank)
