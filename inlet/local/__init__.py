"""What `inlet up` and `inlet demo` start on this machine: a Prefect server, workers, the receiver."""

from inlet.local.environment import apply_prefect_env, local_api_url, prefect_env, require_prefect_server
from inlet.local.processes import (
    free_port,
    local_client,
    process_log,
    start_process,
    stop_process,
)
from inlet.local.progress import RunProgress, report_progress, watch_progress
from inlet.local.runner import FlowName, flush_prefect, format_summary, run_flow, serve_receiver
from inlet.local.stack import DEMO_TOKEN, Stack, start_stack, wait_for_signal

__all__ = [
    "FlowName",
    "RunProgress",
    "report_progress",
    "watch_progress",
    "flush_prefect",
    "format_summary",
    "run_flow",
    "serve_receiver",
    "DEMO_TOKEN",
    "Stack",
    "apply_prefect_env",
    "free_port",
    "local_api_url",
    "local_client",
    "prefect_env",
    "require_prefect_server",
    "process_log",
    "start_process",
    "start_stack",
    "stop_process",
    "wait_for_signal",
]
