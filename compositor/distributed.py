"""Running block jobs on a Dask cluster: the same `run_job` as local processes, on remote workers.

Workers read the scenes themselves and write into the output location: a folder every worker and
the client see at the same path (a shared file system), or an object store (``s3://``), which each
worker opens with its own AWS environment (the job carries the URL, never credentials). A block is
installed atomically by the worker that built it (`compositor.block`, `compositor.storage`), so a
worker killed mid-block loses only that block's local temporary folder: the scheduler hands the
task to another worker, which builds it again.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from compositor.block import BlockJob, BlockResult
from compositor.errors import BuildError
from compositor.runner import Progress, run_job

logger = logging.getLogger(__name__)

TASK_RETRIES = 3


def _task_key(job: BlockJob) -> str:
    return f"s2seasons-{job.layout.season.name}-{job.block.id}"


def run_dask(jobs: Sequence[BlockJob], scheduler: str, progress: Progress | None = None, force: bool = False,
             connect_timeout_s: float = 20.0) -> list[BlockResult]:
    """Build jobs on the cluster at ``scheduler`` (``tcp://HOST:8786``); results as they finish.

    Each block is one task (retried up to `TASK_RETRIES` times if its worker dies). A block that
    fails inside the task is a failed result, not an error: the rest of the build goes on.
    """
    try:
        from distributed import Client, as_completed
    except ImportError:  # pragma: no cover - dask[distributed] is a dependency
        raise BuildError("--scheduler needs dask.distributed: pip install 'dask[distributed]'") from None
    try:
        client = Client(scheduler, timeout=connect_timeout_s, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise BuildError(f"cannot reach the Dask scheduler at {scheduler} ({exc}): start it with "
                         "'dask scheduler' and check the address, or build locally without --scheduler") from None
    results: list[BlockResult] = []
    try:
        futures = {
            client.submit(run_job, job, force, key=_task_key(job), pure=False, retries=TASK_RETRIES): job
            for job in jobs
        }
        for future in as_completed(list(futures), loop=client.loop):
            job = futures[future]
            try:
                result = future.result()
            except Exception as exc:  # the task died on every worker it was given
                result = BlockResult(job.block.id, "failed", len(job.scenes), reason=f"dask task failed: {exc}")
            results.append(result)
            if progress:
                progress(result)
    finally:
        client.close()
    return results
