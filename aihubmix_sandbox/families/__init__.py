"""AIHubMix's three request families, one module each: OpenAI-compatible images, predictions, async tasks."""
