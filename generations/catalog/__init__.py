"""The model catalog: every AIHubMix image model with its parameter rules, and request validation."""

from generations.catalog.specs import CustomSize, ModelSpec, ParamSpec, SizeRule
from generations.catalog.validation import (
    InvalidGenerationRequest,
    UnknownModel,
    ValidatedRequest,
    generation_request_validate,
    model_catalog,
    model_get,
    model_id_resolve,
    operation_check,
    provider_call_from_stored,
    size_rule_text,
)

__all__ = [
    "CustomSize",
    "InvalidGenerationRequest",
    "ModelSpec",
    "ParamSpec",
    "SizeRule",
    "UnknownModel",
    "ValidatedRequest",
    "generation_request_validate",
    "model_catalog",
    "model_get",
    "model_id_resolve",
    "operation_check",
    "provider_call_from_stored",
    "size_rule_text",
]
