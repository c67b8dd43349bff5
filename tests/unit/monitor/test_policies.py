"""Restart policies and healthcheck rules, as Docker applies them."""

from __future__ import annotations

from typing import Any

import pytest

from berth.monitor.health import (
    HEALTHY,
    MAX_OUTPUT,
    STARTING,
    UNHEALTHY,
    HealthConfig,
    HealthState,
    LimitedOutput,
    timeout_message,
)
from berth.monitor.restart import Backoff, RestartPolicy

# ----------------------------------------------------------------------------- restart


def policy(name: str, retries: int = 0) -> RestartPolicy:
    return RestartPolicy.of({"RestartPolicy": {"Name": name, "MaximumRetryCount": retries}})


@pytest.mark.parametrize(
    ("name", "code", "count", "manual", "expected"),
    [
        ("no", 1, 0, False, False),
        ("always", 0, 0, False, True),
        ("always", 0, 99, True, True),  # a user's stop is enforced by the supervisor itself
        ("unless-stopped", 0, 0, False, True),
        ("unless-stopped", 1, 0, True, False),
        ("on-failure", 0, 0, False, False),
        ("on-failure", 2, 0, False, True),
    ],
)
def test_which_exits_restart(
    name: str, code: int, count: int, manual: bool, expected: bool
) -> None:
    assert policy(name).wants_restart(code, count, manual) is expected


def test_on_failure_honours_the_retry_limit() -> None:
    limited = policy("on-failure", 2)
    assert limited.wants_restart(1, 0, False)
    assert limited.wants_restart(1, 1, False)
    assert not limited.wants_restart(1, 2, False)
    assert policy("on-failure", 0).wants_restart(1, 1000, False)  # 0: no limit


def test_what_comes_back_at_boot() -> None:
    assert policy("always").starts_at_boot(manually_stopped=True)
    assert policy("unless-stopped").starts_at_boot(manually_stopped=False)
    assert not policy("unless-stopped").starts_at_boot(manually_stopped=True)
    assert not policy("on-failure").starts_at_boot(manually_stopped=False)
    assert not policy("no").starts_at_boot(manually_stopped=False)


def test_unknown_or_missing_policy_is_no() -> None:
    assert RestartPolicy.of({}).name == "no"
    assert RestartPolicy.of({"RestartPolicy": {"Name": "sometimes"}}).name == "no"


def test_backoff_doubles_from_100ms_and_resets_after_10s() -> None:
    backoff = Backoff()
    delays = [backoff.next(ran_for=0.5) for _ in range(12)]
    assert delays[:4] == [0.1, 0.2, 0.4, 0.8]
    assert delays[-1] == 60.0  # capped at a minute
    assert backoff.next(ran_for=10.0) == 0.1


# ------------------------------------------------------------------------------ health


def health(**check: Any) -> HealthConfig:
    config = HealthConfig.of({"Healthcheck": {"Test": ["CMD", "true"], **check}})
    assert config is not None
    return config


def test_health_config_forms_and_defaults() -> None:
    config = health()
    assert config.argv == ["true"]
    assert (config.interval, config.timeout, config.start_period) == (30.0, 30.0, 0.0)
    assert (config.start_interval, config.retries) == (5.0, 3)
    shell = HealthConfig.of({"Healthcheck": {"Test": ["CMD-SHELL", "curl -f x || exit 1"]}})
    assert shell is not None and shell.argv == ["/bin/sh", "-c", "curl -f x || exit 1"]
    assert HealthConfig.of({"Healthcheck": {"Test": ["NONE"]}}) is None
    assert HealthConfig.of({"Healthcheck": None}) is None
    assert HealthConfig.of({}) is None
    assert health(Interval=2_000_000_000, Retries=5).interval == 2.0


def test_start_interval_applies_while_starting_in_the_start_period() -> None:
    config = health(Interval=10**10, StartPeriod=6 * 10**10, StartInterval=10**9)
    assert config.next_interval(5, STARTING) == 1.0
    assert config.next_interval(5, HEALTHY) == 10.0
    assert config.next_interval(61, STARTING) == 10.0


def result(code: int) -> dict[str, Any]:
    return {"Start": "s", "End": "e", "ExitCode": code, "Output": ""}


def test_failures_in_a_row_make_it_unhealthy_and_success_heals() -> None:
    config = health(Retries=2)
    state = HealthState()
    state.record(config, result(1), 100)
    assert (state.status, state.failing_streak) == (STARTING, 1)
    state.record(config, result(1), 101)
    assert (state.status, state.failing_streak) == (UNHEALTHY, 2)
    state.record(config, result(0), 102)
    assert (state.status, state.failing_streak) == (HEALTHY, 0)


def test_failures_during_the_start_period_do_not_count() -> None:
    config = health(Retries=1, StartPeriod=10 * 10**9)
    state = HealthState()
    state.record(config, result(1), 3)
    assert (state.status, state.failing_streak) == (STARTING, 0)
    state.record(config, result(1), 12)
    assert state.status == UNHEALTHY


def test_log_keeps_the_last_five_results() -> None:
    config = health()
    state = HealthState()
    for code in range(8):
        state.record(config, result(code), 100)
    assert [r["ExitCode"] for r in state.document()["Log"]] == [3, 4, 5, 6, 7]
    restarted = HealthState.restarted(state.document())
    assert restarted.status == STARTING and restarted.failing_streak == 0
    assert len(restarted.log) == 5


def test_output_is_truncated_as_docker_does() -> None:
    output = LimitedOutput()
    output.add(b"x" * 4000)
    output.add(b"y" * 200)
    assert output.text() == "x" * 4000 + "y" * (MAX_OUTPUT - 4000) + "..."
    short = LimitedOutput()
    short.add(b"ok\n")
    assert short.text() == "ok\n"


def test_timeout_message() -> None:
    assert timeout_message(health(Timeout=3 * 10**9)) == "Health check exceeded timeout (3s)"
    assert timeout_message(health(Timeout=500_000_000)) == ("Health check exceeded timeout (500ms)")
