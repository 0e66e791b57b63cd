"""The deadline over a check's waits (issue 22): set once its time passes, naming the stage that waited."""

from __future__ import annotations

import threading
import time

import pytest

from pytest_kernelfalcon.executor.deadline import (
    Deadline,
    DeadlinePassed,
    WaitCancelled,
    wait_until,
    waiting,
)


def test_a_deadline_reads_as_set_once_its_time_passes() -> None:
    deadline = Deadline(0.2)
    assert not deadline.is_set() and not deadline.expired()
    assert deadline.wait(2.0)  # wakes at the deadline, not after the full timeout
    assert deadline.is_set() and deadline.expired() and deadline.remaining() == 0.0


def test_a_plain_set_is_a_cancel_not_an_expiry() -> None:
    deadline = Deadline(60.0)
    deadline.set()
    assert deadline.is_set() and not deadline.expired()
    with pytest.raises(WaitCancelled):
        wait_until(lambda: False, deadline, "a lock")


def test_the_stage_waiting_when_the_time_ran_out_is_named() -> None:
    deadline = Deadline(0.3, what="kernelfalcon verify")
    with deadline.waiting("the reference job"), pytest.raises(DeadlinePassed) as caught:
        wait_until(lambda: False, deadline, "the reference cache")
    assert caught.value.stage == "the reference cache"
    assert "kernelfalcon verify (0.3 s" in str(caught.value) and "the reference cache" in str(caught.value)
    assert deadline.passed().stage == "the reference cache"  # remembered after the wait ended


def test_a_child_deadline_follows_its_parent() -> None:
    parent = Deadline(0.2, what="the task")
    race = Deadline(None, parent=parent)
    assert not race.is_set()
    time.sleep(0.3)
    assert race.is_set() and race.expired()
    with waiting(race, "the candidate job"), pytest.raises(DeadlinePassed) as caught:
        wait_until(lambda: False, race, "the candidate job")
    assert "the task" in str(caught.value)


def test_stages_are_per_thread() -> None:
    deadline = Deadline(60.0)
    seen: list[str] = []
    ready, done = threading.Event(), threading.Event()

    def other() -> None:
        with deadline.waiting("the other thread's lock"):
            ready.set()
            done.wait(10)

    thread = threading.Thread(target=other)
    thread.start()
    ready.wait(10)
    with deadline.waiting("mine"):
        seen.append(deadline.stage())
        seen.append(deadline.stage(thread.ident))
    done.set()
    thread.join()
    assert seen == ["mine", "the other thread's lock"]
