"""Per-view experience scores, 0-100 (reference/qoe-metrics.md §1.3).

The four sub-scores follow Mux's published formulas, with ratios (not percentages) as
inputs. Mux's overall combination uses an unpublished trade-off function, so we publish
our own: ``overall = playback_success/100 x weighted mean of the available sub-scores``
with weights smoothness 0.4, startup 0.35, video quality 0.25 (Mux ranks them in that
order). A view with no value for a sub-score does not get that sub-score.
"""

from __future__ import annotations

import math
from typing import Final

SUBSCORE_WEIGHTS: Final = {"smoothness": 0.4, "startup": 0.35, "video_quality": 0.25}
# Views abandoned faster than this are treated as accidental starts (Mux): no score.
MIN_EBVS_WAIT_S: Final = 1.0
# Display height assumed when the player does not report its size, for the upscale ratio.
REFERENCE_DISPLAY_HEIGHT: Final = 1080


def playback_success(failed: bool, ebvs: bool, wait_s: float) -> float | None:
    """100 for a successful view, 50 for an exit before start, 0 for a fatal failure."""
    if failed:
        return 0.0
    if ebvs:
        return 50.0 if wait_s >= MIN_EBVS_WAIT_S else None
    return 100.0


def startup(startup_s: float | None) -> float | None:
    """``100 x 8 / (8 + startup seconds)``: 2 s gives 80, 8 s gives 50."""
    if startup_s is None:
        return None
    return 100.0 * 8.0 / (8.0 + startup_s)


def smoothness(rebuffer_count: int, rebuffer_ratio: float) -> float:
    """Mean of a rebuffer-count term and a rebuffer-ratio term."""
    count_term = 100.0 / math.sqrt(1.0 + (rebuffer_count / 2.0) ** 2)
    ratio_term = 100.0 * math.exp(-10.0 * rebuffer_ratio)
    return (count_term + ratio_term) / 2.0


def upscale_ratio(rendition_height: int, display_height: int = REFERENCE_DISPLAY_HEIGHT) -> float:
    """How much the picture is stretched: ``(display - source) / source``, never negative."""
    if rendition_height <= 0:
        return 0.0
    return max(0.0, (display_height - rendition_height) / rendition_height)


def video_quality(upscale_avg: float, upscale_max: float) -> float:
    """``100 x e^(-0.33 x (0.15 x max + 0.85 x time-weighted average upscale))``."""
    return 100.0 * math.exp(-0.33 * (0.15 * upscale_max + 0.85 * upscale_avg))


def overall(success: float | None, subscores: dict[str, float | None]) -> float | None:
    """Our documented combination (module docstring)."""
    if success is None:
        return None
    available = {k: v for k, v in subscores.items() if v is not None}
    if not available:
        return success
    weight = sum(SUBSCORE_WEIGHTS[k] for k in available)
    mean = sum(SUBSCORE_WEIGHTS[k] * v for k, v in available.items()) / weight
    return success / 100.0 * mean
