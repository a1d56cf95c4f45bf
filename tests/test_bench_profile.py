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


def test_print_profile_names_the_library_of_each_samples_own_frame(capsys):
    collapsed = COLLAPSED + (
        "reader (2);read_warped_bands (compositor/read.py:3);0x7fb4ef0789bb (libtiff-fb65e6fb.so.6.2.0) 20\n"
        "reader (2);read_warped_bands (compositor/read.py:3);GWKRun (libgdal-c8c9c467.so.36.3.10.3) 20\n"
        "reader (2);_kernel (compositor/stats.py:9);0x7fb4ef0700aa (?) 10\n"
        "reader (2);blend_orbits (compositor/blend.py:5);where (_multiarray_umath.cpython-311-x86_64-linux-gnu.so) 10\n"
        "reader (2);ABCMeta.__new__ (<frozen abc>:106) 10\n")
    print_profile(collapsed, top=3)
    out = capsys.readouterr().out
    table = out[out.index("where the own time is"):]
    assert "inside the band reads, 36.4 % of all" in table  # 40 of 110 busy samples
    assert "  18.2        18.2  libtiff\n" in table and "  27.3        18.2  libgdal\n" in table  # with COLLAPSED's
    assert "  27.3         0.0  libz\n" in table
    assert "   9.1         0.0  JIT code (numba) or unknown\n" in table
    assert "   9.1         0.0  numpy\n" in table and "   9.1         0.0  Python code\n" in table


def test_block_clock_times_each_block_build():
    import compositor.runner as runner
    from benchmarks.bench_build import _block_clock

    original = runner.build_block
    with _block_clock() as spent:
        assert runner.build_block is not original
        try:
            runner.build_block("job")
        except Exception:  # noqa: BLE001 - a block that fails still counts its time
            pass
    assert runner.build_block is original and len(spent) == 1 and spent[0] >= 0
