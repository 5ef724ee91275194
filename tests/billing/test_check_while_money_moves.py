"""`billing_check` while money moves: real threads reserve (both reserve paths), capture, release, grant and
adjust for two tenants while another thread runs the command over and over. It must never report drift (it reads
wallets and ledger in one snapshot) and must be clean at the end."""

import io
import threading

import pytest
from django.core.management import CommandError, call_command
from django.db import connections, transaction

from accounts.models import ApiKey, Tenant
from accounts.services import SYSTEM, api_key_create, tenant_create
from billing.models import LedgerEntry, Plan, Wallet
from billing.services.ledger import billing_capture, billing_release, billing_reserve, billing_reserve_at_once
from billing.services.plans import plan_assign
from billing.services.prices import price_quote, price_set
from billing.services.wallets import wallet_adjust, wallet_grant

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

MOVERS_PER_TENANT = 2
MIN_MOVES = 60  # per mover
MIN_CHECKS = 25  # runs of billing_check that overlap the movers
MAX_MOVES = 5_000  # a bound, so a broken run cannot spin forever


def _check() -> str | None:
    """billing_check's complaint, or None when it is clean."""
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("billing_check", stdout=out, stderr=err)
    except CommandError as error:
        return f"{error}\n{err.getvalue()}"
    return None


def test_billing_check_never_reports_drift_while_money_moves() -> None:
    plan = Plan.objects.create(name="moving", max_n=4, max_concurrent=None, max_queued=None,
                               images_per_day=None, images_per_month=None)
    price_set(model_id="moving/model", quality="*", size="*", cost_micros=10_000, actor=SYSTEM)
    parties: list[tuple[Tenant, ApiKey]] = []
    for slug in ("mover-a", "mover-b"):
        tenant = tenant_create(slug=slug, name=slug)
        plan_assign(tenant=tenant, plan=plan, actor=SYSTEM)
        wallet_grant(tenant=tenant, amount_micros=1_000_000_000, reference=f"{slug}-opening", actor=SYSTEM)
        parties.append((tenant, api_key_create(tenant=tenant, name="moves").api_key))

    checks_done = 0
    moves_done = [0] * (len(parties) * MOVERS_PER_TENANT)
    complaints: list[str] = []
    failures: list[BaseException] = []
    movers_finished = threading.Event()

    def move(number: int) -> None:
        tenant, api_key = parties[number % len(parties)]
        previous: str | None = None
        try:
            for step in range(MAX_MOVES):
                if step >= MIN_MOVES and checks_done >= MIN_CHECKS:
                    break
                reference = f"gen_{number}_{step}"
                quote = price_quote(tenant=tenant, model_id="moving/model", quality="", size="1K", n=1 + step % 4)
                # Odd steps: the submit path's one statement; even ones (and its refusals): the transaction.
                held = step % 2 and billing_reserve_at_once(
                    tenant=tenant, api_key=api_key, reference=reference, quote=quote, rows=[]
                )
                if not held:
                    with transaction.atomic():
                        billing_reserve(tenant=tenant, api_key=api_key, reference=reference, quote=quote)
                # Settle the previous hold, so one is always open while the next is taken.
                if previous is not None:
                    if step % 3 == 0:
                        billing_capture(reference=previous, images=1 + step % 2)
                    elif step % 3 == 1:
                        billing_release(reference=previous, upstream_cost_micros=10_000, reason="upstream 500")
                    else:
                        billing_capture(reference=previous, images=0, amount_micros=5_000)  # canceled while running
                if step % 5 == 0:
                    wallet_grant(tenant=tenant, amount_micros=50_000, reference=f"top_{number}_{step}", actor=SYSTEM)
                if step % 7 == 0:
                    wallet_adjust(tenant=tenant, amount_micros=-20_000, reason="correction", actor=SYSTEM)
                previous = reference
                moves_done[number] = step + 1
            if previous is not None:
                billing_release(reference=previous)
        except BaseException as error:
            failures.append(error)
        finally:
            connections.close_all()

    def check_repeatedly() -> None:
        nonlocal checks_done
        try:
            while not movers_finished.is_set():
                complaint = _check()
                if complaint is not None:
                    complaints.append(complaint)
                checks_done += 1
        except BaseException as error:
            failures.append(error)
        finally:
            connections.close_all()

    movers = [threading.Thread(target=move, args=(number,)) for number in range(len(moves_done))]
    checker = threading.Thread(target=check_repeatedly)
    checker.start()
    for mover in movers:
        mover.start()
    for mover in movers:
        mover.join(timeout=600)
    movers_finished.set()
    checker.join(timeout=120)

    assert not failures, failures
    assert checks_done >= MIN_CHECKS and min(moves_done) >= MIN_MOVES  # the checks ran while money moved
    assert complaints == [], complaints[:3]
    assert _check() is None
    # Money did move: captures, releases, grants and adjustments for both tenants, and nothing left held.
    kinds = set(LedgerEntry.objects.values_list("tenant__slug", "kind").distinct())
    assert {(slug, kind) for slug in ("mover-a", "mover-b") for kind in
            ("grant", "adjust", "hold", "capture", "release")} <= kinds
    assert list(Wallet.objects.values_list("held_micros", "open_holds").distinct()) == [(0, 0)]
