"""The ledger's generation flow: hold an estimate before forwarding (`billing_reserve`), then settle it once by
charging what was delivered (`billing_capture`) or returning it (`billing_release`)."""

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import Case, F, Model, Value, When
from django.utils import timezone

from accounts.models import ApiKey, Tenant
from billing.models import LedgerEntry, Wallet
from billing.selectors.ledger import ledger_settlements
from billing.selectors.limits import tenant_limits
from billing.services.prices import Quote
from billing.services.quotas import (
    BillingPeriods,
    quota_hold_update_sql,
    quota_key_budget_check,
    quota_plan_check,
    quota_wallet_check,
)
from billing.services.wallets import ReferenceTaken, wallet_lock
from project.sqlcompose import CHAIN_SOURCE, execute_chained, insert_from_sql

Kind = LedgerEntry.Kind


class HoldNotFound(Exception):
    """A capture for a reference that was never reserved: a bug in the caller, never a free image."""


def _in_period(counter: str, period_field: str, period: date) -> Case:
    """A wallet counter as SQL, counting as zero when it belongs to an earlier period."""
    return Case(When(**{period_field: period}, then=F(counter)), default=Value(0))


def _hold_entry(
    *, tenant: Tenant, api_key: ApiKey | None, reference: str, quote: Quote, now: datetime
) -> LedgerEntry:
    """The HOLD row both reserve paths write (unsaved): the quote is copied on it for settlement and reports."""
    return LedgerEntry(
        tenant=tenant,
        kind=Kind.HOLD,
        reference=reference,
        amount_micros=quote.estimate_micros,
        api_key=api_key,
        price_id=quote.price_id,
        model_id=quote.model_id,
        quality=quote.quality,
        size=quote.size,
        images=quote.n,
        unit_cost_micros=quote.unit_cost_micros,
        unit_price_micros=quote.unit_price_micros,
        created_at=now,
    )


def billing_reserve(*, tenant: Tenant, api_key: ApiKey | None, reference: str, quote: Quote) -> LedgerEntry:
    """Check the quotas and hold the estimate. Must run inside the caller's `transaction.atomic()` so the hold
    commits or rolls back with the caller's own rows.

    `reference` must be new (a generation's random public id): it is not looked up first; a reference already
    held raises `ReferenceTaken` and leaves the caller's transaction to roll back. Two statements in the common
    case: the hold's INSERT, then one conditional UPDATE of the wallet that enforces credit and every limit kept on
    the wallet row. The hold is written first so the wallet row, which every money movement of the tenant queues
    on, stays locked for as short a time as possible (from this UPDATE to the caller's COMMIT).
    """
    if not connection.in_atomic_block:
        raise RuntimeError("billing_reserve must be called inside transaction.atomic()")
    limits = tenant_limits(tenant=tenant, api_key=api_key)
    quota_plan_check(limits=limits, quote=quote)
    now = timezone.now()
    periods = BillingPeriods.at(now)
    try:
        hold = _hold_entry(tenant=tenant, api_key=api_key, reference=reference, quote=quote, now=now)
        hold.save(force_insert=True)
    except IntegrityError as error:
        connection.set_rollback(True)
        raise ReferenceTaken(f"Hold reference '{reference}' is already used.") from error
    text, params = quota_hold_update_sql(tenant=tenant, limits=limits, quote=quote, periods=periods)
    with connection.cursor() as cursor:
        cursor.execute(text, params)
        held = cursor.fetchone() is not None
    if not held:
        # Refused, or no wallet yet: find out which under the lock, and go ahead if the state changed meanwhile.
        wallet = wallet_lock(tenant=tenant)
        quota_wallet_check(limits=limits, wallet=wallet, quote=quote, periods=periods)
        Wallet.objects.filter(pk=wallet.pk).update(
            held_micros=F("held_micros") + quote.estimate_micros,
            open_holds=F("open_holds") + 1,
            open_hold_images=F("open_hold_images") + quote.n,
            updated_at=now,
        )
    quota_key_budget_check(limits=limits, api_key=api_key, quote=quote, now=now, held=True)
    return hold


def billing_reserve_at_once(
    *,
    tenant: Tenant,
    api_key: ApiKey | None,
    reference: str,
    quote: Quote,
    rows: list[Model],
    also: list[tuple[str, list[Any]]] = (),
) -> bool:
    """Hold the estimate and insert the caller's `rows` (which must exist only if the money is held) in one
    statement: the wallet's conditional UPDATE, the hold and the rows, chained so that nothing is written unless
    the UPDATE changed the wallet. One round trip, and the wallet row is locked for that statement only. The SQL
    expressions in `also` (the caller's `pg_notify`) run in that statement, only when it held the money.

    PostgreSQL only, and not when a key budget has to be aggregated. Returns False when it did nothing (either of
    those, or a refusal): the caller then runs `billing_reserve` in a transaction, which says which limit refused.
    """
    if connection.vendor != "postgresql":
        return False
    limits = tenant_limits(tenant=tenant, api_key=api_key)
    quota_plan_check(limits=limits, quote=quote)
    if limits.key_monthly_budget_micros is not None and api_key is not None:
        return False
    now = timezone.now()
    hold = _hold_entry(tenant=tenant, api_key=api_key, reference=reference, quote=quote, now=now)
    wallet_update = quota_hold_update_sql(tenant=tenant, limits=limits, quote=quote, periods=BillingPeriods.at(now))
    inserts = [insert_from_sql(row, source=CHAIN_SOURCE) for row in [hold, *rows]]
    tenant_id, *pks = execute_chained(wallet_update, inserts, also=also)
    if tenant_id is None:
        return False
    for row, pk in zip([hold, *rows], pks, strict=True):
        row.pk = pk
        row._state.adding = False
        row._state.db = connection.alias
    return True


@dataclass(frozen=True)
class _Settlement:
    """What settling one hold records: the ledger row's kind, amount, images and our upstream cost."""

    hold: LedgerEntry
    kind: str
    amount_micros: int
    images: int
    cost_micros: int
    note: str
    cost_actual_micros: int | None = None  # CAPTURE: `cost_micros` with the answered call's actual cost

    def entry(self, *, now: datetime) -> LedgerEntry:
        hold = self.hold
        return LedgerEntry(
            tenant_id=hold.tenant_id,
            kind=self.kind,
            reference=hold.reference,
            amount_micros=self.amount_micros,
            api_key_id=hold.api_key_id,
            price_id=hold.price_id,
            model_id=hold.model_id,
            quality=hold.quality,
            size=hold.size,
            images=self.images,
            unit_cost_micros=hold.unit_cost_micros,
            unit_price_micros=hold.unit_price_micros,
            cost_micros=self.cost_micros,
            upstream_cost_actual_micros=self.cost_actual_micros if self.kind == Kind.CAPTURE else None,
            note=self.note,
            created_at=now,
        )


def _capture_settlement(
    hold: LedgerEntry,
    *,
    images: int,
    amount_micros: int | None,
    upstream_cost_micros: int | None,
    note: str,
    upstream_cost_actual_micros: int | None = None,
) -> _Settlement:
    """The capture rules (see `billing_capture`)."""
    if images <= 0 and not amount_micros:
        return _Settlement(
            hold, Kind.RELEASE, hold.amount_micros, 0, upstream_cost_micros or 0, "nothing delivered"
        )
    images = min(max(images, 0), hold.images)
    charge = images * hold.unit_price_micros if amount_micros is None else amount_micros
    charge = min(max(charge, 0), hold.amount_micros)
    cost = images * hold.unit_cost_micros if upstream_cost_micros is None else upstream_cost_micros
    return _Settlement(hold, Kind.CAPTURE, charge, images, cost, note[:500], upstream_cost_actual_micros)


def _wallet_settle(tenant_id: int, settlements: list[_Settlement], *, now: datetime) -> None:
    """One UPDATE of the tenant's (locked) wallet for all of its `settlements`: each returns its hold, and each
    capture moves the balance and the period counters."""
    captures = [s for s in settlements if s.kind == Kind.CAPTURE]
    changes: dict[str, Any] = {
        "held_micros": F("held_micros") - sum(s.hold.amount_micros for s in settlements),
        "open_holds": F("open_holds") - len(settlements),
        "open_hold_images": F("open_hold_images") - sum(s.hold.images for s in settlements),
        "updated_at": now,
    }
    if captures:
        # The period counters move with the capture; one from an earlier period starts over (every right-hand
        # side below reads the row as it was before this UPDATE).
        periods = BillingPeriods.at(now)
        charged = sum(s.amount_micros for s in captures)
        images = sum(s.images for s in captures)
        changes |= {
            "balance_micros": F("balance_micros") - charged,
            "month_start": periods.month,
            "month_images": _in_period("month_images", "month_start", periods.month) + images,
            "month_spend_micros": _in_period("month_spend_micros", "month_start", periods.month) + charged,
            "day_start": periods.day,
            "day_images": _in_period("day_images", "day_start", periods.day) + images,
        }
    Wallet.objects.filter(tenant_id=tenant_id).update(**changes)


def _settle(settlement: _Settlement) -> LedgerEntry:
    now = timezone.now()
    _wallet_settle(settlement.hold.tenant_id, [settlement], now=now)
    entry = settlement.entry(now=now)
    entry.save(force_insert=True)
    return entry


def _hold_to_settle(hold: LedgerEntry | None) -> LedgerEntry | None:
    """The hold, with its tenant's wallet locked; None when there is none or it is already settled."""
    if hold is None:
        return None
    wallet_lock(tenant=hold.tenant)
    return None if ledger_settlements(hold.reference).exists() else hold


def _hold_get(reference: str) -> LedgerEntry | None:
    return LedgerEntry.objects.select_related("tenant").filter(reference=reference, kind=Kind.HOLD).first()


def billing_capture(
    *,
    reference: str,
    images: int,
    amount_micros: int | None = None,
    upstream_cost_micros: int | None = None,
    note: str = "",
) -> LedgerEntry | None:
    """Charge for the images delivered (or an explicit amount) and release the rest of the hold.

    Never charges more than was held: the hold is what the tenant agreed to. `images` above the requested n
    (some upstreams return extra) are not charged. `images=0` with an `amount_micros` charges for work that
    delivered nothing (a generation canceled while running); statements show such charges on their own line.
    Returns None when the hold was already settled.
    """
    with transaction.atomic():
        found = _hold_get(reference)
        if found is None:
            raise HoldNotFound(f"No hold for reference '{reference}'.")
        hold = _hold_to_settle(found)
        if hold is None:
            return None
        return _settle(
            _capture_settlement(
                hold, images=images, amount_micros=amount_micros, upstream_cost_micros=upstream_cost_micros, note=note
            )
        )


@dataclass(frozen=True)
class Capture:
    """One `billing_capture` of a batch (`billing_capture_many`)."""

    reference: str
    images: int
    upstream_cost_micros: int | None = None
    # What the upstream actually charged, where its answer said (token usage × token prices), in place of the
    # answered call's estimate within `upstream_cost_micros`; None: unknown.
    upstream_cost_actual_micros: int | None = None


def billing_capture_many(*, captures: list[Capture]) -> dict[str, LedgerEntry | None]:
    """`billing_capture` for many holds in one transaction and a handful of statements whatever their number: the
    holds in one SELECT, the wallets locked in one (in tenant order, so two batches cannot deadlock), the
    settlements already recorded in one, one UPDATE per wallet and one INSERT of every ledger row. Same rules and
    results as `billing_capture` one by one (None for a hold already settled); a missing hold raises
    `HoldNotFound` and nothing of the batch is written."""
    if not captures:
        return {}
    references = [capture.reference for capture in captures]
    with transaction.atomic():
        holds = {hold.reference: hold for hold in LedgerEntry.objects.filter(reference__in=references, kind=Kind.HOLD)}
        missing = [reference for reference in references if reference not in holds]
        if missing:
            raise HoldNotFound(f"No hold for reference '{missing[0]}'.")
        tenant_ids = sorted({hold.tenant_id for hold in holds.values()})
        # A hold implies a wallet (reserving updates it), so every wallet asked for exists.
        list(Wallet.objects.select_for_update().filter(tenant_id__in=tenant_ids).order_by("tenant_id"))
        settled = set(
            LedgerEntry.objects.filter(reference__in=references, kind__in=[Kind.CAPTURE, Kind.RELEASE])
            .values_list("reference", flat=True)
        )
        results: dict[str, LedgerEntry | None] = dict.fromkeys(references)
        by_tenant: dict[int, list[_Settlement]] = {}
        for capture in captures:
            if capture.reference in settled:
                continue
            settled.add(capture.reference)  # the same reference twice in a batch settles once
            settlement = _capture_settlement(
                holds[capture.reference], images=capture.images, amount_micros=None,
                upstream_cost_micros=capture.upstream_cost_micros, note="",
                upstream_cost_actual_micros=capture.upstream_cost_actual_micros,
            )
            by_tenant.setdefault(settlement.hold.tenant_id, []).append(settlement)
        now = timezone.now()
        entries = []
        for tenant_id, settlements in by_tenant.items():
            _wallet_settle(tenant_id, settlements, now=now)
            entries += [settlement.entry(now=now) for settlement in settlements]
        for entry in LedgerEntry.objects.bulk_create(entries):
            results[entry.reference] = entry
    return results


def billing_release(*, reference: str, upstream_cost_micros: int = 0, reason: str = "") -> LedgerEntry | None:
    """Return the whole hold to the tenant, recording any upstream cost we bore anyway. Returns None when there
    is no hold or it was already settled."""
    with transaction.atomic():
        hold = _hold_to_settle(_hold_get(reference))
        if hold is None:
            return None
        return _settle(_Settlement(hold, Kind.RELEASE, hold.amount_micros, 0, upstream_cost_micros, reason[:500]))
