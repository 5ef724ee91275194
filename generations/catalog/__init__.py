"""The model catalog: every AIHubMix image model with its rules and lifecycle (rows kept by staff, seeded from
data/models.json), and request validation."""

from generations.catalog.registry import (
    CatalogEntry,
    catalog_entries,
    catalog_seed_data,
    catalog_seed_specs,
    catalog_version,
)
from generations.catalog.specs import CatalogRuleError, CustomSize, ModelSpec, ParamSpec, SizeRule, spec_from_dict
from generations.catalog.validation import (
    InvalidGenerationRequest,
    Lifecycle,
    ModelRetired,
    ServedModel,
    UnknownModel,
    ValidatedRequest,
    catalog_entry_get,
    catalog_list,
    generation_request_validate,
    model_catalog,
    model_get,
    model_id_resolve,
    model_serve,
    provider_call_from_stored,
    size_rule_text,
    stored_interface,
)

__all__ = [
    "CatalogEntry",
    "CatalogRuleError",
    "CustomSize",
    "InvalidGenerationRequest",
    "Lifecycle",
    "ModelRetired",
    "ModelSpec",
    "ParamSpec",
    "ServedModel",
    "SizeRule",
    "UnknownModel",
    "ValidatedRequest",
    "catalog_entries",
    "catalog_entry_get",
    "catalog_list",
    "catalog_seed_data",
    "catalog_seed_specs",
    "catalog_version",
    "generation_request_validate",
    "model_catalog",
    "model_get",
    "model_id_resolve",
    "model_serve",
    "provider_call_from_stored",
    "size_rule_text",
    "spec_from_dict",
    "stored_interface",
]
