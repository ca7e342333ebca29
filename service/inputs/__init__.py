"""Validated inputs: datasets, models (safe loaders) and BISG tables."""
