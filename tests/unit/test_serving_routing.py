"""Canary routing: the same request always goes to the same model, the challenger gets its share,
and raising the share only moves more requests onto it."""

import random
import uuid

import pytest

from components.serving.routing import answers_with_challenger, canary_bucket

_SEEDED = random.Random(7)  # uuid4-shaped ids, the same on every run
IDS = [str(uuid.UUID(int=_SEEDED.getrandbits(128), version=4)) for _ in range(20_000)]


def test_the_bucket_is_fixed_by_the_id_alone() -> None:
    assert canary_bucket("req-42") == canary_bucket("req-42")
    # sha256, not hash(): the value is the same in every process and on every run
    assert canary_bucket("req-42") == pytest.approx(0.98855, abs=1e-5)
    assert all(0.0 <= canary_bucket(request_id) < 1.0 for request_id in IDS[:1000])


@pytest.mark.parametrize("share", [0.05, 0.25, 0.5])
def test_the_challenger_gets_about_its_share(share: float) -> None:
    on_challenger = sum(answers_with_challenger(request_id, share) for request_id in IDS)
    assert abs(on_challenger / len(IDS) - share) < 0.015


def test_raising_the_share_only_adds_requests() -> None:
    at_5 = {request_id for request_id in IDS if answers_with_challenger(request_id, 0.05)}
    at_25 = {request_id for request_id in IDS if answers_with_challenger(request_id, 0.25)}
    assert at_5 < at_25


def test_the_ends_of_the_range_send_none_or_all() -> None:
    assert not any(answers_with_challenger(request_id, 0.0) for request_id in IDS[:500])
    assert all(answers_with_challenger(request_id, 1.0) for request_id in IDS[:500])


@pytest.mark.parametrize("share", [-0.1, 1.5, float("nan")])
def test_a_share_outside_zero_to_one_is_refused(share: float) -> None:
    with pytest.raises(ValueError, match="canary share must be within"):
        answers_with_challenger("req-1", share)
