"""Moderation: the prompt blocklist, per-tenant review modes, tenant reports and moderators' decisions.

Regular expressions in the blocklist are run with Python's `re`, which has no timeout. They are therefore checked
when saved: at most `PATTERN_MAX_CHARS` characters, and no repeated group that itself contains a quantifier or an
alternation (`(a+)+`, `(a|aa)*`): those are the shapes that backtrack exponentially. Prompts are capped at 32 000
characters by the API. Staff write the rules, so this guards against mistakes, not against an attacker.
"""

import random
import re
from dataclasses import dataclass
from functools import lru_cache
from re import _constants as sre_constants  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from accounts.models import ApiKey, Tenant
from accounts.services import SYSTEM, Actor, audit_record
from generations.models import GenerationImage, ImageReport, ImageReview, PromptBlockRule, TenantReviewSetting
from project import errors
from project.readcache import readcache_get
from webhooks.events import IMAGE_REJECTED
from webhooks.services.publishing import webhook_event_publish

PATTERN_MAX_CHARS = 200
REJECTION_REASON_MAX_CHARS = 500  # ImageReview.reason
PROMPT_EXCERPT_CHARS = 1000

ReviewStatus = GenerationImage.ReviewStatus


class PromptBlocked(errors.InvalidRequest):
    code = "prompt_blocked"
    message = "The prompt was refused by the content policy."

    def __init__(self) -> None:
        super().__init__(param="prompt")


# --- Prompt blocklist -------------------------------------------------------------------------------------

_REPEATS = {sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT, sre_constants.POSSESSIVE_REPEAT}


def _children(op: Any, arg: Any) -> list[Any]:
    """The sub-patterns of one parsed regex node."""
    if op in _REPEATS:
        return [arg[2]]
    if op == sre_constants.SUBPATTERN:
        return [arg[-1]]
    if op == sre_constants.BRANCH:
        return list(arg[1])
    if op in (sre_constants.ASSERT, sre_constants.ASSERT_NOT):
        return [arg[1]]
    if op == sre_constants.GROUPREF_EXISTS:
        return [branch for branch in arg[1:] if branch is not None]
    if op == sre_constants.ATOMIC_GROUP:
        return [arg]
    return []


def _has_backtracking_inside(pattern: Any) -> bool:
    for op, arg in pattern:
        if op in _REPEATS and arg[1] > 1:
            return True
        if op == sre_constants.BRANCH:
            return True
        if any(_has_backtracking_inside(child) for child in _children(op, arg)):
            return True
    return False


def _has_nested_repeat(pattern: Any) -> bool:
    for op, arg in pattern:
        if op in _REPEATS and arg[1] > 1 and _has_backtracking_inside(arg[2]):
            return True
        if any(_has_nested_repeat(child) for child in _children(op, arg)):
            return True
    return False


def prompt_pattern_check(*, kind: str, pattern: str) -> None:
    """Raise ValidationError (on `pattern`) if the rule cannot be used safely."""
    if not pattern.strip():
        raise ValidationError({"pattern": "The pattern is empty."})
    if len(pattern) > PATTERN_MAX_CHARS:
        raise ValidationError({"pattern": f"At most {PATTERN_MAX_CHARS} characters."})
    if kind != PromptBlockRule.Kind.REGEX:
        return
    try:
        parsed = sre_parse.parse(pattern, re.IGNORECASE)
    except re.error as exc:
        raise ValidationError({"pattern": f"Not a valid regular expression: {exc}."}) from exc
    if _has_nested_repeat(parsed):
        raise ValidationError(
            {"pattern": "A repeated group may not contain another quantifier or an alternation (it can backtrack "
                        "for a very long time). Write the alternatives as separate rules."}
        )


@lru_cache(maxsize=1024)
def _compiled(kind: str, pattern: str) -> re.Pattern[str]:
    if kind == PromptBlockRule.Kind.REGEX:
        return re.compile(pattern, re.IGNORECASE)
    words = [re.escape(word) for word in pattern.split()]
    return re.compile(r"(?<!\w)" + r"\s+".join(words) + r"(?!\w)", re.IGNORECASE)


def _snapshot_rule(rule: PromptBlockRule) -> dict[str, Any]:
    return {"tenant": rule.tenant.slug if rule.tenant else None, "kind": rule.kind, "pattern": rule.pattern,
            "enabled": rule.enabled, "note": rule.note}


def prompt_block_rule_save(*, rule: PromptBlockRule, actor: Actor) -> PromptBlockRule:
    prompt_pattern_check(kind=rule.kind, pattern=rule.pattern)
    with transaction.atomic():
        before = None
        if rule.pk is not None:
            previous = PromptBlockRule.objects.select_related("tenant").filter(pk=rule.pk).first()
            before = _snapshot_rule(previous) if previous else None
        rule.save()
        audit_record(
            actor=actor,
            action="prompt_block_rule.created" if before is None else "prompt_block_rule.changed",
            target=rule,
            tenant=rule.tenant,
            before=before,
            after=_snapshot_rule(rule),
        )
    return rule


def _enabled_rules() -> tuple[tuple[PromptBlockRule, re.Pattern[str]], ...]:
    """Every enabled rule, global and per tenant, compiled (read cache: rules change rarely, prompts often)."""

    def load() -> tuple[tuple[PromptBlockRule, re.Pattern[str]], ...]:
        rules = PromptBlockRule.objects.filter(enabled=True).order_by("id")
        return tuple((rule, _compiled(rule.kind, rule.pattern)) for rule in rules)

    return readcache_get("prompt_block_rules", load)


def prompt_screen(*, tenant: Tenant, api_key: ApiKey | None, prompt: str) -> None:
    """Refuse a prompt that matches an enabled rule (global or the tenant's), recording the refusal.

    Called before any transaction of the submit opens, so the audit event is kept although the request fails.
    """
    for rule, compiled in _enabled_rules():
        if (rule.tenant_id is None or rule.tenant_id == tenant.pk) and compiled.search(prompt):
            audit_record(
                actor=Actor(api_key=api_key) if api_key is not None else SYSTEM,
                action="prompt.blocked",
                target=rule,
                tenant=tenant,
                after={"rule_id": rule.pk, "pattern": rule.pattern, "prompt": prompt[:PROMPT_EXCERPT_CHARS]},
            )
            raise PromptBlocked()



# --- Review modes ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReviewDecision:
    """The review state a new output image starts in."""

    status: str
    withheld: bool

    def image_fields(self) -> dict[str, Any]:
        return {"review_status": self.status, "withheld": self.withheld}


NOT_REVIEWED = ReviewDecision(status=ReviewStatus.NOT_REQUIRED, withheld=False)


def _draw_percent() -> int:
    return random.randrange(100)


def initial_reviews(*, tenant: Tenant, images: int) -> list[ReviewDecision]:
    """Decide, per image, whether it enters the moderation queue and whether the tenant may see it meanwhile (one
    read of the tenant's setting for all of them; sampling draws for each image)."""
    setting = TenantReviewSetting.objects.filter(tenant=tenant).first()
    if setting is None or setting.mode == TenantReviewSetting.Mode.OFF:
        return [NOT_REVIEWED] * images
    if setting.mode == TenantReviewSetting.Mode.HOLD:
        return [ReviewDecision(status=ReviewStatus.PENDING, withheld=True)] * images
    return [
        ReviewDecision(status=ReviewStatus.PENDING, withheld=False)
        if _draw_percent() < setting.sample_percent
        else NOT_REVIEWED
        for _ in range(images)
    ]


def _snapshot_review_setting(setting: TenantReviewSetting) -> dict[str, Any]:
    return {"mode": setting.mode, "sample_percent": setting.sample_percent}


def review_setting_save(*, setting: TenantReviewSetting, actor: Actor) -> TenantReviewSetting:
    if setting.mode == TenantReviewSetting.Mode.SAMPLE and not 0 < setting.sample_percent <= 100:
        raise ValidationError({"sample_percent": "Sampling needs a percentage between 1 and 100."})
    with transaction.atomic():
        previous = TenantReviewSetting.objects.filter(pk=setting.pk).first() if setting.pk else None
        setting.save()
        audit_record(
            actor=actor,
            action="review_mode.changed",
            target=setting,
            tenant=setting.tenant,
            before=_snapshot_review_setting(previous) if previous else None,
            after=_snapshot_review_setting(setting),
        )
    return setting


# --- Reports and decisions ------------------------------------------------------------------------------


def image_report(*, image: GenerationImage, actor: Actor, reason: str = "") -> tuple[ImageReport, bool]:
    """Put a tenant's image into the moderation queue (it stays visible meanwhile): the report and True, or, when
    the image was reported already, that first report and False (nothing changes)."""
    with transaction.atomic():
        locked = GenerationImage.objects.select_for_update(of=("self",)).select_related("generation__tenant").get(pk=image.pk)
        existing = ImageReport.objects.filter(image=locked).first()
        if existing is not None:
            return existing, False
        report = ImageReport.objects.create(image=locked, api_key=actor.api_key, reason=reason)
        before = {"review_status": locked.review_status}
        if locked.review_status != ReviewStatus.REJECTED:
            locked.review_status = ReviewStatus.PENDING
            locked.save(update_fields=["review_status"])
        audit_record(
            actor=actor,
            action="image.reported",
            target=locked,
            tenant=locked.generation.tenant,
            before=before,
            after={"review_status": locked.review_status, "image": str(locked), "reason": reason},
        )
    return report, True


class RejectionReasonRequired(ValueError):
    """No reason, or one longer than the review record keeps."""


def _decide(*, image_id: int, decision: str, reason: str, actor: Actor) -> GenerationImage | None:
    """One decision in its own transaction. A decision already taken is final here, so a stale page or a second
    moderator cannot flip it (re-reviewing starts with a tenant report). Returns None when nothing changed."""
    with transaction.atomic():
        image = (
            GenerationImage.objects.select_for_update(of=("self",))
            .select_related("generation__tenant")
            .filter(pk=image_id)
            .first()
        )
        if image is None or image.review_status in (ReviewStatus.APPROVED, ReviewStatus.REJECTED):
            return None
        before = {"review_status": image.review_status, "withheld": image.withheld}
        image.review_status = decision
        image.withheld = False
        image.save(update_fields=["review_status", "withheld"])
        ImageReview.objects.create(image=image, decision=decision, reason=reason, reviewer=actor.user)
        tenant = image.generation.tenant
        audit_record(
            actor=actor,
            action=f"image.{decision}",
            target=image,
            tenant=tenant,
            before=before,
            after={"review_status": decision, "withheld": False, "image": str(image), "reason": reason},
        )
        if decision == ReviewStatus.REJECTED:
            webhook_event_publish(
                tenant=tenant,
                event_type=IMAGE_REJECTED,
                data={
                    "object": "image",
                    "generation": image.generation.public_id,
                    "index": image.index,
                    "review_status": decision,
                    "reason": reason,
                },
            )
    return image


def images_approve(*, image_ids: list[int], actor: Actor) -> int:
    """Approve images: they become visible to their tenant. Returns how many changed."""
    decided = [_decide(image_id=pk, decision=ReviewStatus.APPROVED, reason="", actor=actor) for pk in image_ids]
    return sum(image is not None for image in decided)


def images_reject(*, image_ids: list[int], reason: str, actor: Actor) -> int:
    """Reject images: the API answers 451 for them from now on and the tenant gets `image.rejected`."""
    if not reason.strip():
        raise RejectionReasonRequired("A rejection needs a reason.")
    if len(reason.strip()) > REJECTION_REASON_MAX_CHARS:
        raise RejectionReasonRequired(f"A rejection reason has at most {REJECTION_REASON_MAX_CHARS} characters.")
    decided = [
        _decide(image_id=pk, decision=ReviewStatus.REJECTED, reason=reason.strip(), actor=actor) for pk in image_ids
    ]
    return sum(image is not None for image in decided)
