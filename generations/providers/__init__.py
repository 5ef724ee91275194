"""AIHubMix client: one shared HTTP layer and one module per request family. Imports none of our apps."""

from generations.providers.base import (
    ContentPolicyError,
    InputImage,
    MalformedResponse,
    PermanentProviderError,
    ProviderCall,
    ProviderError,
    ProviderResult,
    RawOutput,
    TransientProviderError,
    UnknownOutcomeError,
)
from generations.providers.client import FAMILIES, AIHubMixClient

__all__ = [
    "FAMILIES",
    "AIHubMixClient",
    "ContentPolicyError",
    "InputImage",
    "MalformedResponse",
    "PermanentProviderError",
    "ProviderCall",
    "ProviderError",
    "ProviderResult",
    "RawOutput",
    "TransientProviderError",
    "UnknownOutcomeError",
]
