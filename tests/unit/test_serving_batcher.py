"""Micro-batching: concurrent callers share batches and each gets its own answer, a full queue
refuses at once instead of growing, and failures reach exactly the callers they belong to."""

import asyncio
import threading
import time

import pytest

from components.serving.batcher import BatcherStopped, MicroBatcher, Overloaded


def _doubled(items: list[int]) -> list[int]:
    time.sleep(0.01)  # a model run: long enough for callers to pile up behind it
    return [2 * item for item in items]


def test_concurrent_callers_share_batches_and_get_their_own_result() -> None:
    async def scenario() -> tuple[list[int], MicroBatcher[int, int]]:
        batcher = MicroBatcher(_doubled, max_batch=16, max_wait_ms=5)
        await batcher.start()
        results = await asyncio.gather(*(batcher.submit(i) for i in range(40)))
        await batcher.stop()
        return results, batcher

    results, batcher = asyncio.run(scenario())

    assert results == [2 * i for i in range(40)]
    assert batcher.batches_run < 40
    assert batcher.mean_batch_size == pytest.approx(40 / batcher.batches_run)
    assert batcher.queue_depth == 0


def test_a_full_queue_refuses_at_once_and_never_grows() -> None:
    release = threading.Event()

    def blocked(items: list[int]) -> list[int]:
        release.wait(5)
        return items

    async def scenario() -> tuple[list[object], int]:
        batcher = MicroBatcher(blocked, max_batch=1, max_wait_ms=0, max_queue=4)
        await batcher.start()
        running = asyncio.ensure_future(batcher.submit(-1))
        await asyncio.sleep(0.05)  # the first item is now inside run_batch, the queue empty
        callers = [asyncio.ensure_future(batcher.submit(i)) for i in range(10)]
        await asyncio.sleep(0.05)
        deepest = batcher.queue_depth
        release.set()
        outcomes = await asyncio.gather(running, *callers, return_exceptions=True)
        await batcher.stop()
        return outcomes, deepest

    outcomes, deepest = asyncio.run(scenario())

    refused = [outcome for outcome in outcomes if isinstance(outcome, Overloaded)]
    assert deepest == 4
    assert outcomes[:5] == [-1, 0, 1, 2, 3]
    assert len(refused) == 6
    assert all(error.retry_after_s >= 1.0 for error in refused)
    assert "4 requests already wait" in str(refused[0])


def test_a_failing_batch_fails_its_callers_and_the_batcher_goes_on() -> None:
    def fragile(items: list[int]) -> list[int]:
        if 13 in items:
            raise RuntimeError("session lost")
        return items

    async def scenario() -> tuple[list[object], list[int]]:
        batcher = MicroBatcher(fragile, max_batch=8, max_wait_ms=20)
        await batcher.start()
        first = await asyncio.gather(*(batcher.submit(i) for i in (11, 12, 13)),
                                     return_exceptions=True)
        after = await asyncio.gather(*(batcher.submit(i) for i in (21, 22)))
        await batcher.stop()
        return first, after

    first, after = asyncio.run(scenario())

    assert all(isinstance(outcome, RuntimeError) and str(outcome) == "session lost"
               for outcome in first)
    assert after == [21, 22]


def test_an_exception_as_one_result_fails_that_caller_only() -> None:
    def per_item(items: list[int]) -> list[object]:
        return [ValueError(f"item {item} is odd") if item % 2 else item for item in items]

    async def scenario() -> list[object]:
        batcher = MicroBatcher(per_item, max_batch=8, max_wait_ms=20)
        await batcher.start()
        outcomes = await asyncio.gather(*(batcher.submit(i) for i in range(4)),
                                        return_exceptions=True)
        await batcher.stop()
        return outcomes

    outcomes = asyncio.run(scenario())

    assert outcomes[0] == 0 and outcomes[2] == 2
    assert isinstance(outcomes[1], ValueError) and str(outcomes[1]) == "item 1 is odd"
    assert isinstance(outcomes[3], ValueError)


def test_a_wrong_number_of_results_is_named() -> None:
    async def scenario() -> list[object]:
        batcher = MicroBatcher(lambda items: items[:1], max_batch=8, max_wait_ms=20)
        await batcher.start()
        outcomes = await asyncio.gather(batcher.submit(1), batcher.submit(2),
                                        return_exceptions=True)
        await batcher.stop()
        return outcomes

    outcomes = asyncio.run(scenario())
    assert all("returned 1 results for 2 items" in str(outcome) for outcome in outcomes)


def test_stop_runs_what_is_queued_then_refuses_new_items() -> None:
    async def scenario() -> tuple[list[int], MicroBatcher[int, int]]:
        batcher = MicroBatcher(_doubled, max_batch=2, max_wait_ms=50)
        await batcher.start()
        callers = [asyncio.ensure_future(batcher.submit(i)) for i in range(5)]
        await asyncio.sleep(0)
        await batcher.stop()
        return await asyncio.gather(*callers), batcher

    results, batcher = asyncio.run(scenario())
    assert results == [0, 2, 4, 6, 8]

    with pytest.raises(BatcherStopped, match="call start"):
        asyncio.run(batcher.submit(1))


def test_lanes_run_batches_side_by_side() -> None:
    """With two lanes a second batch starts while the first still runs (one per core); with
    one lane it waits."""
    def overlap(lanes: int) -> int:
        running, most = 0, 0
        guard = threading.Lock()

        def slow(items: list[int]) -> list[int]:
            nonlocal running, most
            with guard:
                running += 1
                most = max(most, running)
            time.sleep(0.05)
            with guard:
                running -= 1
            return items

        async def scenario() -> list[int]:
            batcher = MicroBatcher(slow, max_batch=1, max_wait_ms=0, lanes=lanes)
            await batcher.start()
            results = await asyncio.gather(*(batcher.submit(i) for i in range(6)))
            await batcher.stop()
            return results

        assert asyncio.run(scenario()) == list(range(6))
        return most

    assert overlap(1) == 1
    assert overlap(2) == 2
