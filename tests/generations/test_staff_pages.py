"""Staff page fixes of issue 22: money in dollars, signed ledger amounts with a running balance, the image at the
top of a generation, review rows with thumbnail / tenant / link, tenant price beside cost, times to the second."""

import re

import pytest
from django.contrib.admin.utils import quote
from django.test import Client

from accounts.models import User
from accounts.services import SYSTEM, Actor
from billing.models import LedgerEntry
from billing.selectors.balances import ledger_balance_after
from billing.services.wallets import wallet_grant
from generations.services.moderation import images_reject
from tests.generations.moderation_support import succeeded_generation
from tests.generations.support import customer_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff() -> Client:
    user = User.objects.create_superuser("root@example.com", "pw")
    client = Client()
    client.force_login(user)
    return client


def test_ledger_rows_are_signed_with_the_wallet_balance_after_each(staff: Client) -> None:
    customer = customer_create("studio", credit_micros=1_000_000)
    succeeded_generation(customer)  # hold 7 200, capture 7 200
    wallet_grant(tenant=customer.tenant, amount_micros=2_000_000, reference="topup", actor=SYSTEM)
    rows = LedgerEntry.objects.annotate(after=ledger_balance_after()).order_by("created_at", "id")
    assert [(row.kind, row.after) for row in rows] == [
        ("grant", 1_000_000),  # the opening credit
        ("hold", 1_000_000),  # a hold moves held money, not the balance
        ("capture", 1_000_000 - 7_200),
        ("grant", 2_992_800),  # the balance now
    ]
    page = staff.get("/admin/billing/ledgerentry/").content.decode()
    assert "+$2.00" in page and "−$0.0072" in page and "(held $0.0072)" in page
    assert "$2.99" in page  # 2.9928 rounded to the cent
    assert re.search(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", page)  # times to the second


def test_generation_page_opens_on_its_images_and_reviews_show_the_image(staff: Client) -> None:
    customer = customer_create("studio")
    generation = succeeded_generation(customer, n=2)
    page = staff.get(f"/admin/generations/generation/{quote(generation.pk)}/change/").content.decode()
    first_image = page.index("/thumbnail/")
    assert first_image < page.index(generation.prompt)  # above the request's fields
    images_reject(image_ids=[generation.images.get(index=1).pk], reason="test",
                  actor=Actor(user=User.objects.get(email="root@example.com")))
    reviews = staff.get("/admin/generations/imagereview/").content.decode()
    assert "/thumbnail/" in reviews and "studio" in reviews
    assert f'/admin/generations/generation/{quote(generation.pk)}/change/' in reviews


def test_price_list_shows_the_tenant_price_beside_the_cost(staff: Client) -> None:
    customer_create("studio")  # sets gpt-image-2 low 1024 at 0.006
    page = staff.get("/admin/billing/price/?q=gpt-image-2").content.decode()
    assert "$0.006" in page and "$0.0072" in page  # + the default plan's 20 %
