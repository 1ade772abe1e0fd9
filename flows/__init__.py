"""Prefect flows: the only package that imports Prefect; it composes connectors, mappings and the runtime."""
