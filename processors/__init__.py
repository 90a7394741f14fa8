"""OpenQoE stream processors (Faust)."""
