"""OpenQoE stream processors: per-view QoE state in Faust, metrics, logs and summaries."""

from processors.config import ProcessorConfig
from processors.dims import LABELS, DimensionCaps
from processors.errors import ConfigError, ProcessorError, PushError
from processors.step import Step, on_close, on_event, on_purge
from processors.view import apply_event, close, new_view, view_summary

__all__ = [
    "LABELS",
    "ConfigError",
    "DimensionCaps",
    "ProcessorConfig",
    "ProcessorError",
    "PushError",
    "Step",
    "apply_event",
    "close",
    "new_view",
    "on_close",
    "on_event",
    "on_purge",
    "view_summary",
]
