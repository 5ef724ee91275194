"""The bench's baseline: the least a Django + DRF endpoint that writes a row can cost (see bench/submit.py)."""
