"""Run independent jobs on Dask distributed, or in this process.

The stages that split work by window or by output tile (tiling, embedding export) share this:
a LocalCluster of worker processes by default, an existing scheduler for a cluster, or no Dask
at all (``workers=0``) for debugging and small runs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


def map_jobs(
    func: Callable[[T], Any],
    jobs: Sequence[T],
    workers: int | None,
    scheduler: str | None,
    on_done: Callable[[], None],
) -> None:
    """Run ``func`` on every job; call ``on_done`` as each finishes (in completion order).

    Args:
        func: A picklable module-level function.
        jobs: Picklable job descriptions.
        workers: LocalCluster worker processes (default: one per CPU); 0 runs in this process.
        scheduler: Address of an existing Dask scheduler (overrides ``workers``).
        on_done: Called once per finished job (progress bars).

    Raises:
        Exception: The first error of a job, re-raised here.
    """
    if not jobs:
        return
    if scheduler is None and workers == 0:
        for job in jobs:
            func(job)
            on_done()
        return
    from distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler is None:
        cluster = LocalCluster(
            n_workers=workers or os.cpu_count() or 1,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
        )
    client = Client(scheduler if scheduler is not None else cluster)
    try:
        for future in as_completed(client.map(func, jobs, pure=False)):
            future.result()  # re-raise a worker's error here
            on_done()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
