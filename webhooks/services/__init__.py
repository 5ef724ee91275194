"""Writes for webhooks, one module per subject; import from the module, never from this package.

- `endpoints`: a tenant's endpoints (create, change, rotate the secret, disable) and the URL check.
- `request_webhooks`: a per-request target (a generation's `webhook`) and the tenant's signing secret for them.
- `publishing`: an event and its pending deliveries, written in the publisher's transaction (the outbox).
- `delivery`: claiming, sending, signing and recording attempts; retries and disabling failing endpoints.
"""
