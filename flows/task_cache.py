"""The cache policy of the tasks a Prefect task worker serves (`apply-inbox`, `sync-connection`, `sync-polls`):
never cached, no result written.

`cache_policy=NO_CACHE` is not enough there: Prefect 3.9.1's `TaskWorker.__init__` serves a task whose policy is
None, NO_CACHE or unset as `with_options(persist_result=True, cache_policy=DEFAULT)`, and DEFAULT keys a run by its
inputs, the task's source and the flow run that submitted it. Two identical `.delay()`s of one sync-scheduler run
(a connection's poll due at two of its ticks) got the same key, and the second ended "Cached" without polling.
A policy of another class is kept as it is; this one gives no key, so nothing is cached or persisted.
"""

from __future__ import annotations

from typing import Any

from prefect.cache_policies import CachePolicy
from prefect.context import TaskRunContext

__all__ = ["NEVER_CACHED", "NeverCached"]


class NeverCached(CachePolicy):
    """No cache key, ever: each run runs, and its result stays in memory."""

    def compute_key(
        self, task_ctx: TaskRunContext, inputs: dict[str, Any], flow_parameters: dict[str, Any], **kwargs: Any
    ) -> str | None:
        return None


NEVER_CACHED = NeverCached()
