"""A wallet's balance as of each ledger row, for the staff ledger page's signed amounts and running balance.

A row's effect on the balance: GRANT and ADJUST add their (signed) amount, CAPTURE subtracts what was charged;
HOLD and RELEASE move held money only. The balance after a row is the wallet's balance now minus the effects of
the tenant's later rows: a subquery per listed row over `ledger_tenant_kind_created`, cheap for the newest rows a
page shows first (an old page sums everything after it).
"""

from django.db.models import BigIntegerField, Case, F, OuterRef, Q, Subquery, Sum, Value, When
from django.db.models.expressions import CombinedExpression
from django.db.models.functions import Coalesce

from billing.models import LedgerEntry, Wallet

Kind = LedgerEntry.Kind
_MOVES_BALANCE = [Kind.GRANT, Kind.ADJUST, Kind.CAPTURE]


def balance_effect(entry: LedgerEntry) -> int:
    if entry.kind in (Kind.GRANT, Kind.ADJUST):
        return entry.amount_micros
    return -entry.amount_micros if entry.kind == Kind.CAPTURE else 0


def ledger_balance_after() -> CombinedExpression:
    """For a `LedgerEntry` query: the tenant's wallet balance just after each row."""
    later = (
        LedgerEntry.objects.filter(tenant=OuterRef("tenant"), kind__in=_MOVES_BALANCE)
        .filter(Q(created_at__gt=OuterRef("created_at")) | Q(created_at=OuterRef("created_at"), id__gt=OuterRef("id")))
        .order_by()
        .values("tenant")
        .annotate(
            effect=Sum(
                Case(
                    When(kind=Kind.CAPTURE, then=-F("amount_micros")),
                    default=F("amount_micros"),
                    output_field=BigIntegerField(),
                )
            )
        )
        .values("effect")
    )
    balance = Wallet.objects.filter(tenant=OuterRef("tenant")).values("balance_micros")[:1]
    return Coalesce(Subquery(balance, output_field=BigIntegerField()), Value(0)) - Coalesce(
        Subquery(later, output_field=BigIntegerField()), Value(0)
    )
