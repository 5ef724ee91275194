"""Prompt blocklist, review modes, tenant reports and moderators' decisions, seen through the API."""

import pytest
from django.core.exceptions import ValidationError

from accounts.models import AuditEvent
from accounts.services import SYSTEM, Actor
from billing.models import LedgerEntry, Wallet
from generations.models import Generation, GenerationImage, PromptBlockRule, TenantReviewSetting
from generations.services import moderation
from generations.services.moderation import (
    RejectionReasonRequired,
    images_approve,
    images_reject,
    prompt_block_rule_save,
    prompt_pattern_check,
    review_setting_save,
)
from tests.generations.moderation_support import succeeded_generation
from tests.generations.support import GPT_IMAGE as MODEL
from tests.generations.support import customer_create
from webhooks.models import WebhookEvent

Status = GenerationImage.ReviewStatus


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


@pytest.fixture
def customer(db):
    return customer_create("studio")


@pytest.fixture
def moderator(django_user_model):
    return django_user_model.objects.create_user("mod@example.com", "pw", is_staff=True)


def block(pattern: str, *, kind: str = PromptBlockRule.Kind.TERM, tenant=None, enabled: bool = True):
    return prompt_block_rule_save(
        rule=PromptBlockRule(pattern=pattern, kind=kind, tenant=tenant, enabled=enabled), actor=SYSTEM
    )


def post_generation(customer, prompt: str):
    return customer.client.post(
        "/v1/generations", {"model": MODEL, "prompt": prompt, "quality": "low", "size": "1024x1024"}, format="json"
    )


def set_review(customer, mode: str, percent: int = 0) -> None:
    review_setting_save(setting=TenantReviewSetting(tenant=customer.tenant, mode=mode, sample_percent=percent),
                        actor=SYSTEM)


# --- Blocklist ------------------------------------------------------------------------------------------


def test_a_prompt_with_a_blocked_term_is_refused_with_400_and_nothing_is_charged(customer):
    block("forbidden thing")
    balance = Wallet.objects.get(tenant=customer.tenant).balance_micros

    response = post_generation(customer, "Draw a FORBIDDEN   thing, please")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "prompt_blocked"
    assert response.json()["error"]["param"] == "prompt"
    assert not Generation.objects.filter(tenant=customer.tenant).exists()
    assert not LedgerEntry.objects.filter(tenant=customer.tenant).exclude(kind="grant").exists()
    assert Wallet.objects.get(tenant=customer.tenant).balance_micros == balance


def test_a_blocked_prompt_leaves_an_audit_event_naming_the_rule_and_the_prompt(customer):
    rule = block("forbidden")

    post_generation(customer, "something forbidden")

    event = AuditEvent.objects.get(action="prompt.blocked")
    assert event.tenant == customer.tenant
    assert event.actor_type == "api_key" and event.actor_api_key == customer.key.api_key
    assert event.target_type == "PromptBlockRule" and event.target_id == str(rule.pk)
    assert event.after["prompt"] == "something forbidden"


def test_terms_match_whole_words_only(customer):
    block("ass")
    assert post_generation(customer, "a classic sports car").status_code == 202
    assert post_generation(customer, "an ass in a field").status_code == 400


def test_regex_rules_match_case_insensitively(customer):
    block(r"gore\w*", kind=PromptBlockRule.Kind.REGEX)
    assert post_generation(customer, "Lots of GOREY details").json()["error"]["code"] == "prompt_blocked"


def test_disabled_rules_and_other_tenants_rules_do_not_apply(customer):
    other = customer_create("other")
    block("dragon", enabled=False)
    block("castle", tenant=other.tenant)

    assert post_generation(customer, "a dragon over a castle").status_code == 202
    assert post_generation(other, "a castle").status_code == 400


@pytest.mark.parametrize("pattern", ["(a+)+b", "(a|aa)*", r"(\w+\s?)*$", "((ab)*c)+"])
def test_regexes_that_can_backtrack_exponentially_are_refused_at_save(pattern: str):
    with pytest.raises(ValidationError):
        prompt_pattern_check(kind=PromptBlockRule.Kind.REGEX, pattern=pattern)


@pytest.mark.parametrize("pattern", ["[", "a" * 201, "   "])
def test_invalid_empty_or_too_long_patterns_are_refused_at_save(pattern: str):
    with pytest.raises(ValidationError):
        prompt_pattern_check(kind=PromptBlockRule.Kind.REGEX, pattern=pattern)


@pytest.mark.parametrize(
    ("pattern", "prompt"),
    [(r"\bnsfw\b", "an NSFW scene"), (r"blood\s*bath", "a blood  bath"), ("(?:gun|knife)", "a knife on a table"),
     (r"kill(ing|ed)?\b", "a killed dragon")],
)
def test_ordinary_regexes_are_saved_and_block_what_they_match(customer, pattern, prompt):
    block(pattern, kind=PromptBlockRule.Kind.REGEX)
    assert PromptBlockRule.objects.filter(pattern=pattern, enabled=True).exists()
    assert post_generation(customer, prompt).json()["error"]["code"] == "prompt_blocked"
    assert post_generation(customer, "a quiet harbour").status_code == 202


def test_blocklist_changes_are_audited(db):
    rule = block("first")
    rule.pattern = "second"
    prompt_block_rule_save(rule=rule, actor=SYSTEM)

    created, changed = AuditEvent.objects.filter(target_type="PromptBlockRule").order_by("id")
    assert (created.action, created.after["pattern"]) == ("prompt_block_rule.created", "first")
    assert (changed.action, changed.before["pattern"], changed.after["pattern"]) == (
        "prompt_block_rule.changed", "first", "second")


# --- Review modes ---------------------------------------------------------------------------------------


def image_states(generation: Generation) -> list[tuple[str, bool]]:
    return [(image.review_status, image.withheld) for image in generation.images.order_by("index")]


def test_without_a_review_mode_images_need_no_review(customer):
    generation = succeeded_generation(customer, n=2)
    assert image_states(generation) == [(Status.NOT_REQUIRED, False)] * 2


def test_mode_off_needs_no_review(customer):
    set_review(customer, TenantReviewSetting.Mode.OFF)
    assert image_states(succeeded_generation(customer)) == [(Status.NOT_REQUIRED, False)]


def test_mode_hold_withholds_every_image_until_approved(customer, moderator):
    set_review(customer, TenantReviewSetting.Mode.HOLD)
    generation = succeeded_generation(customer, n=2)
    assert image_states(generation) == [(Status.PENDING, True)] * 2

    client = customer.client
    body = client.get(f"/v1/generations/{generation.public_id}").json()
    assert [(image["review_status"], image["url"]) for image in body["images"]] == [("pending", None)] * 2
    held = client.get(f"/v1/generations/{generation.public_id}/images/0")
    assert (held.status_code, held.json()["error"]["code"]) == (403, "image_pending_review")

    images_approve(image_ids=[generation.images.get(index=0).pk], actor=Actor(user=moderator))

    assert image_states(generation)[0] == (Status.APPROVED, False)
    approved = client.get(f"/v1/generations/{generation.public_id}/images/0")
    assert approved.status_code == 200 and approved["Content-Type"] == "image/png"
    assert client.get(f"/v1/generations/{generation.public_id}").json()["images"][0]["url"]


def test_mode_sample_queues_the_drawn_share_without_withholding(customer, monkeypatch):
    set_review(customer, TenantReviewSetting.Mode.SAMPLE, percent=30)
    draws = iter([29, 30, 0, 99])
    monkeypatch.setattr(moderation, "_draw_percent", lambda: next(draws))

    generation = succeeded_generation(customer, n=4)

    assert image_states(generation) == [
        (Status.PENDING, False), (Status.NOT_REQUIRED, False), (Status.PENDING, False), (Status.NOT_REQUIRED, False)
    ]
    assert customer.client.get(f"/v1/generations/{generation.public_id}/images/0").status_code == 200


def test_mode_sample_at_100_percent_queues_everything(customer):
    set_review(customer, TenantReviewSetting.Mode.SAMPLE, percent=100)
    assert image_states(succeeded_generation(customer, n=3)) == [(Status.PENDING, False)] * 3


def test_mode_sample_needs_a_percentage(customer):
    with pytest.raises(ValidationError):
        set_review(customer, TenantReviewSetting.Mode.SAMPLE, percent=0)


def test_review_mode_changes_are_audited(customer):
    set_review(customer, TenantReviewSetting.Mode.HOLD)
    setting = TenantReviewSetting.objects.get(tenant=customer.tenant)
    setting.mode, setting.sample_percent = TenantReviewSetting.Mode.SAMPLE, 10
    review_setting_save(setting=setting, actor=SYSTEM)

    events = list(AuditEvent.objects.filter(action="review_mode.changed").order_by("id"))
    assert [(e.before, e.after) for e in events] == [
        (None, {"mode": "hold", "sample_percent": 0}),
        ({"mode": "hold", "sample_percent": 0}, {"mode": "sample", "sample_percent": 10}),
    ]
    assert events[0].tenant == customer.tenant


# --- Rejection ------------------------------------------------------------------------------------------


def test_a_rejected_image_answers_451_and_loses_its_signed_url(customer, moderator):
    generation = succeeded_generation(customer)
    client = customer.client
    signed_url = client.get(f"/v1/generations/{generation.public_id}").json()["images"][0]["url"]
    image = generation.images.get()

    assert images_reject(image_ids=[image.pk], reason="violence", actor=Actor(user=moderator)) == 1

    download = client.get(f"/v1/generations/{generation.public_id}/images/0")
    assert (download.status_code, download.json()["error"]["code"]) == (451, "content_rejected")
    assert client.get(signed_url).status_code == 451
    assert client.get(f"/v1/generations/{generation.public_id}").json()["images"][0]["url"] is None


def test_rejecting_publishes_image_rejected_and_audits_the_decision(customer, moderator):
    set_review(customer, TenantReviewSetting.Mode.HOLD)
    generation = succeeded_generation(customer)
    image = generation.images.get()

    images_reject(image_ids=[image.pk], reason="  nudity ", actor=Actor(user=moderator, ip_address="10.0.0.9"))

    event = WebhookEvent.objects.get(tenant=customer.tenant, type="image.rejected")
    assert event.payload == {"object": "image", "generation": generation.public_id, "index": 0,
                             "review_status": "rejected", "reason": "nudity"}
    audit = AuditEvent.objects.get(action="image.rejected")
    assert (audit.actor_user, audit.tenant, audit.ip_address) == (moderator, customer.tenant, "10.0.0.9")
    assert audit.before == {"review_status": "pending", "withheld": True}
    assert audit.after["reason"] == "nudity"
    assert image_states(generation) == [(Status.REJECTED, False)]


def test_a_rejection_needs_a_reason(customer, moderator):
    image = succeeded_generation(customer).images.get()
    with pytest.raises(RejectionReasonRequired):
        images_reject(image_ids=[image.pk], reason=" ", actor=Actor(user=moderator))


def test_approving_is_audited_and_deciding_twice_changes_nothing(customer, moderator):
    set_review(customer, TenantReviewSetting.Mode.HOLD)
    image = succeeded_generation(customer).images.get()

    assert images_approve(image_ids=[image.pk], actor=Actor(user=moderator)) == 1
    assert images_approve(image_ids=[image.pk], actor=Actor(user=moderator)) == 0

    assert AuditEvent.objects.filter(action="image.approved").count() == 1


# --- Reports --------------------------------------------------------------------------------------------


def report_url(generation: Generation, index: int = 0) -> str:
    return f"/v1/generations/{generation.public_id}/images/{index}/report"


def test_a_tenant_reports_an_image_into_the_queue_without_losing_it(customer):
    generation = succeeded_generation(customer)
    client = customer.client

    response = client.post(report_url(generation), {"reason": "looks wrong"}, format="json",
                           REMOTE_ADDR="198.51.100.23")

    assert response.status_code == 201
    assert response.json() | {"created_at": None} == {
        "object": "image_report", "generation": generation.public_id, "index": 0, "review_status": "pending",
        "reason": "looks wrong", "created_at": None,
    }
    assert image_states(generation) == [(Status.PENDING, False)]
    assert client.get(f"/v1/generations/{generation.public_id}/images/0").status_code == 200
    audit = AuditEvent.objects.get(action="image.reported")
    assert (audit.actor_api_key, audit.tenant, audit.ip_address) == (
        customer.key.api_key, customer.tenant, "198.51.100.23")


def test_reporting_twice_is_idempotent(customer):
    generation = succeeded_generation(customer)
    client = customer.client

    first = client.post(report_url(generation), {"reason": "one"}, format="json")
    second = client.post(report_url(generation), {"reason": "two"}, format="json")

    assert (first.status_code, second.status_code) == (201, 200)  # created, then the existing report
    assert second.json() == first.json() and second.json()["reason"] == "one"
    assert AuditEvent.objects.filter(action="image.reported").count() == 1


def test_reporting_a_rejected_image_keeps_it_rejected(customer, moderator):
    generation = succeeded_generation(customer)
    images_reject(image_ids=[generation.images.get().pk], reason="bad", actor=Actor(user=moderator))

    response = customer.client.post(report_url(generation), {}, format="json")

    assert response.json()["review_status"] == "rejected"


def test_another_tenant_cannot_report_an_image_and_gets_404(customer):
    generation = succeeded_generation(customer)
    other = customer_create("other")

    response = other.client.post(report_url(generation), {}, format="json")

    assert (response.status_code, response.json()["error"]["code"]) == (404, "not_found")
    assert image_states(generation) == [(Status.NOT_REQUIRED, False)]


def test_reporting_a_missing_image_index_is_404(customer):
    generation = succeeded_generation(customer)
    assert customer.client.post(report_url(generation, index=5), {}, format="json").status_code == 404
