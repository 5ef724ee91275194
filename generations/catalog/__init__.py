"""The model catalog: every AIHubMix image model with its rules and lifecycle (rows kept by staff, seeded from
data/models.json). Read-only: it sits beside the selectors and imports no services, API or admin.

- `specs.py` — what a model's rules are (`ModelSpec`) and their strict reading from data (`spec_from_dict`).
- `registry.py` — the rows read into `CatalogEntry`s, cached per process behind the read cache's version token.
- `lookup.py` — finding a model by id or alias among the enabled ones, and which model a request runs on.
- `validation.py` — a client's request checked against its model's rules, refused naming the field.
- `upstream_body.py` — the exact upstream body of an accepted request, and the call of a stored generation.
"""
