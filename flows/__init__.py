"""Prefect flows: the only package that imports Prefect; it composes connectors, mappings and the runtime."""

from flows.prefect_tls import share_prefect_tls_context

# every process that runs inlet's flows or tasks (served runs, task workers, the receiver) imports this package
share_prefect_tls_context()
