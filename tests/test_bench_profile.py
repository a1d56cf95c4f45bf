"""The profile views of benchmarks/bench_build.py: waiting threads left out, phases not counted twice."""

from __future__ import annotations

import time

from benchmarks.bench_build import _PhaseClock, print_profile

COLLAPSED = """\
MainThread (1);run_build (build.py:1);_composite (composite.py:2);inflate (libz.so) 30
MainThread (1);run_build (build.py:1);_composite (composite.py:2);GWKAverageOrModeThread (libgdal.so) 10
reader (2);_worker (thread.py:1);_queue_SimpleQueue_get (queue.c) 500
monitor (3);TMonitor.run (tqdm.py:1);Event.wait (threading.py:2);pthread_cond_timedwait (libc) 200
"""


def test_print_profile_leaves_waiting_threads_out(capsys):
    print_profile(COLLAPSED, top=5)
    out = capsys.readouterr().out
    assert "40 busy samples" in out and "700 samples of waiting threads left out" in out
    assert "  75.0     75.0  inflate" in out and "  25.0     25.0  GWKAverageOrModeThread" in out
    assert "_queue_SimpleQueue_get" not in out and "TMonitor" not in out


def test_phase_clock_counts_nested_phases_once():
    clock = _PhaseClock()

    def busy(seconds: float) -> None:
        end = time.thread_time() + seconds
        while time.thread_time() < end:
            pass

    inner = clock.wrap("inner", busy)
    outer = clock.wrap("outer", lambda: (busy(0.05), inner(0.05)))
    outer()
    assert 0.09 < clock.seconds["outer"] < 0.3
    assert clock.seconds["inner"] == 0  # inside "outer": its time is outer's
    inner(0.05)
    assert 0.04 < clock.seconds["inner"] < 0.2
