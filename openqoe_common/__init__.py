"""Helpers both the collector (``ingest``) and the processor (``processors``) use, owned by
neither: reading settings from the environment, and JSON-lines logging."""
