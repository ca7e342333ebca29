"""Assay: model-risk and fairness audits for financial AI."""

__version__ = "0.1.0"
__all__ = ["__version__"]
