"""Adapters: the only modules that import third-party client libraries."""
