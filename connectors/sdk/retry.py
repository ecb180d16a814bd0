"""Exponential backoff with jitter.

Jitter keeps a fleet of connectors that lost Kafka at the same moment from
reconnecting in lock-step when it comes back.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

from connectors.sdk.config import RetrySettings


@dataclass(frozen=True)
class Backoff:
    initial: float = 0.5
    maximum: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.2

    @classmethod
    def from_settings(cls, settings: RetrySettings) -> Backoff:
        return cls(settings.initial_backoff_s, settings.max_backoff_s, settings.multiplier, settings.jitter)

    def delays(self, rng: random.Random | None = None) -> Iterator[float]:
        """Endless delays: initial, initial*multiplier, ... capped at maximum, jittered."""
        rng = rng or random.Random()
        delay = self.initial
        while True:
            spread = delay * self.jitter
            yield max(0.0, min(self.maximum, delay + rng.uniform(-spread, spread)))
            delay = min(self.maximum, delay * self.multiplier)
