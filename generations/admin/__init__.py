"""Staff pages for generations, one module per subject; importing them registers them with the admin site.

- `generations.py` — read-only generation history with its images and ledger rows.
- `moderation.py` — the moderation queue (with staff thumbnails), review and report history.
- `moderation_rules.py` — the prompt blocklist and per-tenant review modes (saved through audited services).
- `catalog.py` — the living model catalog (validated, audited saves) and the shutdown report.
"""

from generations.admin import catalog, generations, moderation, moderation_rules

__all__ = ["catalog", "generations", "moderation", "moderation_rules"]
