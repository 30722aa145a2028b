"""The one loop the inbox relay and the Kafka intake run in (svmon.streams.runtime)."""

from __future__ import annotations

import time

from svmon.streams.runtime import BackgroundLoop


def test_a_failing_round_is_handed_over_and_retried_with_backoff_until_stopped() -> None:
    rounds: list[float] = []
    errors: list[tuple[str, float]] = []
    exits: list[bool] = []

    def step() -> float:
        rounds.append(time.monotonic())
        if len(rounds) <= 3:
            raise OSError(f"broker away ({len(rounds)})")
        return 0.01

    loop = BackgroundLoop("test-loop", step, on_error=lambda e, b: errors.append((str(e), b)),
                          on_exit=lambda: exits.append(True), first_backoff=0.02,
                          max_backoff=0.05).start()
    deadline = time.monotonic() + 10
    while len(rounds) < 6 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert loop.running
    loop.stop()
    assert not loop.running and exits == [True]
    assert [b for _, b in errors] == [0.02, 0.04, 0.05]  # doubling, capped
    assert errors[0][0] == "broker away (1)" and loop.failures == 3
    assert rounds[3] - rounds[2] >= 0.05 * 0.9  # waited the backoff before retrying
    n = len(rounds)
    time.sleep(0.05)
    assert len(rounds) == n  # stopped means stopped


def test_a_failing_error_handler_does_not_end_the_loop() -> None:
    calls: list[int] = []

    def step() -> float:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("round")
        return 0.0

    def handler(err: Exception, backoff: float) -> None:
        raise RuntimeError("the database is away too")

    loop = BackgroundLoop("test-loop", step, on_error=handler, first_backoff=0.01)
    loop.run(should_stop=lambda: len(calls) >= 3)
    assert len(calls) == 3 and loop.failures == 1
