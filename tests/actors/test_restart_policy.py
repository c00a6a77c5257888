"""RestartPolicy driven by a fake clock: the window, the backoff and the limit, no sleeping."""

from __future__ import annotations

from actors._config import SupervisorConfig
from actors._restart import RestartPolicy


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _policy(**config: float) -> tuple[RestartPolicy, FakeClock]:
    clock = FakeClock()
    settings = SupervisorConfig(**config)  # type: ignore[arg-type]
    return RestartPolicy(settings, clock=clock), clock


def test_restarts_back_off_then_give_up_at_the_limit():
    policy, _ = _policy(max_restarts=3, backoff_initial=0.1, backoff_max=10.0)
    decisions = [policy.failed("ctx") for _ in range(4)]
    assert [d.restart for d in decisions] == [True, True, True, False]
    assert [d.delay for d in decisions[:3]] == [0.0, 0.1, 0.2]
    assert decisions[3].failures == 4  # counted with those before it


def test_backoff_is_capped():
    policy, _ = _policy(max_restarts=10, backoff_initial=1.0, backoff_max=3.0)
    delays = [policy.failed("ctx").delay for _ in range(5)]
    assert delays == [0.0, 1.0, 2.0, 3.0, 3.0]


def test_failures_older_than_the_window_no_longer_count():
    policy, clock = _policy(max_restarts=2, within_seconds=10.0)
    assert policy.failed("ctx").restart
    clock.now += 5
    assert policy.failed("ctx").restart
    clock.now += 5  # the first is exactly 10 s old: still within the window
    assert not policy.failed("ctx").restart
    clock.now += 0.5  # now it is older
    decision = policy.failed("ctx")
    assert decision.restart
    assert decision.delay == SupervisorConfig().backoff(1)
    assert policy.recent("ctx") == 2


def test_children_are_counted_apart_and_forgotten():
    policy, _ = _policy(max_restarts=1)
    writer = object()
    assert policy.failed("a").restart
    assert policy.failed(writer).restart
    assert not policy.failed("a").restart
    assert not policy.failed(writer).restart
    assert policy.recent("b") == 0
    assert len(policy) == 2
    policy.forget("a")
    policy.forget("never-failed")
    assert len(policy) == 1
    assert policy.failed("a").restart


def test_a_limit_of_zero_never_restarts():
    policy, _ = _policy(max_restarts=0)
    decision = policy.failed("ctx")
    assert not decision.restart
    assert decision.failures == 1
    assert policy.recent("ctx") == 0
