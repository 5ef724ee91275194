"""Publish billing's low-balance and spend-limit alerts as webhook events, in the transaction of the capture that
crossed the threshold (billing may not import webhooks, so the settle path, which may, hands them over)."""

from collections.abc import Iterable

from billing.services.alerts import LOW_BALANCE, wallet_alerts_on_capture
from webhooks.events import SPEND_LIMIT_NEAR, WALLET_LOW_BALANCE
from webhooks.services.publishing import EventToPublish, webhook_events_publish


def wallet_alerts_publish(*, tenant_ids: Iterable[int]) -> None:
    """Call inside the transaction that captured for these tenants."""
    alerts = wallet_alerts_on_capture(tenant_ids=set(tenant_ids))
    if alerts:
        webhook_events_publish(
            events=[
                EventToPublish(
                    tenant=alert.tenant,
                    event_type=WALLET_LOW_BALANCE if alert.kind == LOW_BALANCE else SPEND_LIMIT_NEAR,
                    data=alert.data,
                )
                for alert in alerts
            ]
        )
