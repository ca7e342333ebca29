"""Pure audit computations. Each module exposes ``run(ctx) -> SectionOutput``; see registry.py."""
