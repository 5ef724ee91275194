"""A local AIHubMix emulator for development, the demo, tests and benches."""
