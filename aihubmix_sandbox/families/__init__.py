"""AIHubMix's request families, one module each: OpenAI-compatible images, predictions, async tasks and the
Gemini-native route."""
