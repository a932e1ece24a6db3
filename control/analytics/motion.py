"""Motion measured in person heights, the only scale a single uncalibrated camera gives us.

Distances are converted to frame-height units (x scaled by the frame's width/height) and divided
by the person's box height, so that one person height per second reads the same near the camera
and far from it. This is frame-relative, not metres: with no camera calibration, motion towards
or away from the camera is foreshortened and reads slower than it is.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime

from vigil.control.analytics.model import Point


def frame_height_distance(a: Point, b: Point, aspect: float) -> float:
    """Distance between two normalised points, in units of the frame height."""
    return math.hypot((b[0] - a[0]) * aspect, b[1] - a[1])


@dataclass(slots=True)
class _Sample:
    at: datetime
    centre: Point
    height: float


@dataclass(slots=True)
class SpeedWindow:
    """Box-centre samples of one track over the last window seconds; the speed is the net
    displacement across the window, which smooths out frame-to-frame box jitter."""

    window: float
    samples: deque[_Sample] = field(default_factory=deque)

    def add(self, at: datetime, centre: Point, height: float) -> None:
        self.samples.append(_Sample(at, centre, height))
        while (at - self.samples[0].at).total_seconds() > self.window:
            self.samples.popleft()

    def clear(self) -> None:
        self.samples.clear()

    def last_time(self) -> datetime | None:
        return self.samples[-1].at if self.samples else None

    def speed(self, aspect: float) -> float | None:
        """Person heights per second, or None until the samples span half the window (two
        samples a few frames apart would turn box jitter into speed)."""
        if len(self.samples) < 2:
            return None
        first, last = self.samples[0], self.samples[-1]
        span = (last.at - first.at).total_seconds()
        if span < self.window / 2:
            return None
        mean_height = sum(s.height for s in self.samples) / len(self.samples)
        return frame_height_distance(first.centre, last.centre, aspect) / span / mean_height
