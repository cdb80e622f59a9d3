"""Which model answers a request during a canary: a stable position of the request id in [0, 1),
compared with the share of traffic the challenger gets.

    if answers_with_challenger(request_id, share=0.05):
        session = challenger

The position comes from sha256, not Python's `hash()`, so every replica and every restart sends
the same request to the same model, and raising the share only adds requests to the challenger.
"""

from __future__ import annotations

import hashlib

# 53 bits: what a float holds exactly, so the largest hash stays below 1.0.
_BITS = 53


def canary_bucket(request_id: str) -> float:
    """The request's fixed position in [0, 1): the first 53 bits of sha256 of its id."""
    digest = hashlib.sha256(request_id.encode("utf-8")).digest()
    return (int.from_bytes(digest[:8], "big") >> (64 - _BITS)) / 2**_BITS


def answers_with_challenger(request_id: str, share: float) -> bool:
    """True when the challenger answers this request, given its `share` (0..1) of traffic."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"canary share must be within [0, 1], got {share}")
    return canary_bucket(request_id) < share
