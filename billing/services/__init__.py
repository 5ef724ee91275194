"""Writes for billing, one module per subject; import from the module, never from this package.

- `prices`: quotes and effective-dated upstream prices.
- `plans`: plans and a tenant's plan with its overrides.
- `wallets`: opening an account, grants, adjustments, credit limits and the wallet lock every movement queues on.
- `quotas`: the plan limits a request must fit, and their refusals.
- `ledger`: holding an estimate and settling it (capture or release).
- `statements`: closing a tenant's month.

Every money movement locks the tenant's wallet row, changes it with a conditional `UPDATE`, and appends its
ledger row in the same transaction. The unique (reference, kind) constraint on the ledger makes each movement
idempotent: a retried capture or release finds the settlement already there and changes nothing.
"""
