"""Reads for billing, one module per subject; import from the module, never from this package.

- `limits`: plans and a tenant's effective limits — the one plan rule (override, else plan, else default plan,
  else `billing.defaults`), in Python and as SQL for the forwarder's claim query.
- `prices`: the price in effect for a request, the current price list, a tenant's price list.
- `ledger`: open holds and settlements, the wallet's period counters, a key's spend.
- `quotas`: each limit with its use (`/v1/quota`).
- `usage`: charged usage per period (`/v1/usage`).
- `tenants`: the staff tenant list with plan and money columns.
- `drift`: wallets checked against the ledger (`billing_check`).
- `statements`: what a monthly statement sums.
- `reports`: the staff billing report's rows.
"""
