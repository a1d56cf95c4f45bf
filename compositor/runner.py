"""Running block jobs: in local processes, or on a Dask cluster, with one progress and summary.

Both runners call `run_job` on each job and report `BlockResult` values as they finish; a failing
block is recorded with its reason and the build goes on.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field

import rasterio

from compositor.block import BlockJob, BlockResult, build_block
from compositor.errors import CompositorError
from compositor.read import GDAL_ENV, use_gdal_env

logger = logging.getLogger(__name__)

Progress = Callable[[BlockResult], None]
FAILED_HINT = ("failed blocks are not installed: check the network, that the scene URLs still work (signed URLs "
               "expire), the credentials (AWS_* for s3:// scenes), then run the same build again (it rebuilds "
               "failed blocks; add --retry-failed to also rebuild built blocks whose manifest lists unreadable scenes)")


def run_job(job: BlockJob, force: bool = False) -> BlockResult:
    """Build one block in this process; any error becomes a failed result, never an exception."""
    use_gdal_env()  # also in a Dask worker process: every read thread of the block sees GDAL's options
    try:
        with rasterio.Env(**GDAL_ENV):
            return build_block(job, force=force)
    except CompositorError as exc:
        logger.error("block %s failed: %s", job.block.id, exc)
        return BlockResult(job.block.id, "failed", len(job.scenes), reason=str(exc))
    except Exception as exc:  # a bug or an unexpected I/O error must not stop the other blocks
        logger.exception("block %s failed", job.block.id)
        return BlockResult(job.block.id, "failed", len(job.scenes), reason=f"{type(exc).__name__}: {exc}")


def _init_worker(numba_threads: int) -> None:
    try:
        import numba

        numba.set_num_threads(max(1, min(numba_threads, numba.config.NUMBA_NUM_THREADS)))
    except Exception:  # pragma: no cover - numba missing threads layer
        pass


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)))


def run_local(jobs: Sequence[BlockJob], workers: int = 0, progress: Progress | None = None,
              force: bool = False) -> list[BlockResult]:
    """Build jobs in ``workers`` processes (0: one per core; 1: in this process)."""
    workers = workers or default_workers()
    results: list[BlockResult] = []
    if workers == 1 or len(jobs) <= 1:
        for job in jobs:
            results.append(run_job(job, force))
            if progress:
                progress(results[-1])
        return results
    context = multiprocessing.get_context("spawn")  # GDAL and numba threads do not survive fork
    threads = max(1, default_workers() // workers)
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=(threads,)) as pool:
        for result in _as_completed(pool, jobs, workers * 2, force):
            results.append(result)
            if progress:
                progress(result)
    return results


def _as_completed(pool: ProcessPoolExecutor, jobs: Iterable[BlockJob], window: int, force: bool) -> Iterator[BlockResult]:
    """Submit at most ``window`` jobs at a time (bounded memory for huge plans), yield as they end."""
    pending: dict[Future, BlockJob] = {}
    queue = iter(jobs)
    for job in queue:
        pending[pool.submit(run_job, job, force)] = job
        if len(pending) >= window:
            break
    while pending:
        done, _ = wait(pending, return_when=FIRST_COMPLETED)
        for future in done:
            job = pending.pop(future)
            try:
                yield future.result()
            except Exception as exc:  # the worker process died (killed, out of memory)
                yield BlockResult(job.block.id, "failed", len(job.scenes), reason=f"worker died: {exc}")
            nxt = next(queue, None)
            if nxt is not None:
                pending[pool.submit(run_job, nxt, force)] = nxt


@dataclass
class BuildSummary:
    """Counts of block outcomes and the reasons of failures."""

    results: list[BlockResult] = field(default_factory=list)
    scenes_line: str = ""  # what the search found and each filter dropped (`BuildPlan.describe_scenes`)

    @property
    def counts(self) -> Counter:
        return Counter(r.status for r in self.results)

    @property
    def failed(self) -> list[BlockResult]:
        return [r for r in self.results if r.status == "failed"]

    @property
    def skipped_scenes(self) -> dict[str, str]:
        scenes: dict[str, str] = {}
        for r in self.results:
            scenes.update(r.skipped_scenes)
        return scenes

    @property
    def offset_corrections(self) -> dict[str, dict]:
        """Scenes whose offset the data check corrected, by scene id."""
        return {c["scene"]: c for r in self.results for c in r.offset_corrections}

    def describe(self) -> str:
        c = self.counts
        lines = [self.scenes_line] if self.scenes_line else []
        lines.append(f"blocks: {c['built']} built, {c['skipped']} skipped (up to date), {c['empty']} empty "
                     f"(no valid observation), {c['failed']} failed")
        lines += [f"  failed {r.block_id}: {r.reason}" for r in self.failed[:20]]
        if len(self.failed) > 20:
            lines.append(f"  ... and {len(self.failed) - 20} more")
        if self.failed:
            lines.append(FAILED_HINT)
        corrected = self.offset_corrections
        if corrected:
            lines.append(f"scenes whose offset metadata their data contradict ({len(corrected)}), corrected and "
                         "recorded in block manifests (offset_corrections):")
            lines += [f"  {scene}: {c['item_offset_dn']} DN ({c['item_offset_source']}) -> {c['used_offset_dn']} DN: "
                      f"{c['reason']}" for scene, c in sorted(corrected.items())[:20]]
        skipped = self.skipped_scenes
        if skipped:
            lines.append(f"scenes that could not be read ({len(skipped)}), skipped and recorded in the manifests of "
                         "the blocks built without them:")
            lines += [f"  {scene}: {reason}" for scene, reason in sorted(skipped.items())[:20]]
            if len(skipped) > 20:
                lines.append(f"  ... and {len(skipped) - 20} more")
        return "\n".join(lines)
