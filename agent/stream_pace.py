"""Whether to stream the next completion: only while a model is slow enough for it to show.

Streaming exists so the reader sees an answer while it is written, and a frontend shows the
first preview only after a moment (bot/stream.py: a third of a second). A model that answers
faster than that every time gains nothing from streaming, and pays for it: litellm handles each
streamed chunk in Python, about 0.3 ms of CPU a chunk. So after ``QUICK_RUN`` completions in a
row, each done within ``QUICK_S``, completions go unstreamed, until one takes longer; from then
on they stream again. A slow model (any hosted one) therefore always streams; a fast local
one, or a test double, does not.
"""

from __future__ import annotations

QUICK_S = 0.5  # a completion done within this never showed a preview
QUICK_RUN = 20  # quick completions in a row before streaming stops


class StreamPace:
    def __init__(self) -> None:
        self._quick = 0  # completions in a row done within QUICK_S

    @property
    def worth_streaming(self) -> bool:
        return self._quick < QUICK_RUN

    def observed(self, seconds: float) -> None:
        """A completion took ``seconds``, from the request to its last piece."""
        self._quick = self._quick + 1 if seconds <= QUICK_S else 0
