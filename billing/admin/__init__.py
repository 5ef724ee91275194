"""Billing's staff pages, one module per subject; importing this package registers them all.

- `money`: the dollar form field and dollar columns every page uses (amounts are stored as micros).
- `keys`, `tenants`: the accounts pages billing replaces, adding a key's budget and the tenants' money columns
  (accounts sits below billing and cannot show money), and the "close statements" action.
- `prices`, `token_prices`, `plans`, `wallets`, `ledger`, `statements`: the billing models' pages.
- `reports`: the staff billing report (a view `ledger` wires in).
"""

from billing.admin import keys, ledger, plans, prices, statements, tenants, token_prices, wallets  # noqa: F401
