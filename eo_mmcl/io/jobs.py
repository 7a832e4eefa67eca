"""A stage's work split into jobs: one ledger of what is done, one record of what is finished.

Every stage that can be killed midway keeps its progress the same way. A hidden progress folder
holds ``plan.json`` (the fingerprint of the inputs and options the work was planned from) and one
marker per finished job under ``jobs/`` (the job's result, JSON). A rerun with the same
fingerprint runs only the jobs without a marker; another fingerprint refuses to mix two runs'
work (or, forced, starts afresh). Markers are written by the process that ran the job, so a job
finished on a Dask worker stays finished when the client is killed.

Once the stage has written its final outputs, its completion record (``tile_manifest.json``,
``embed_manifest.json``, ...) is written last, with the same fingerprint: a folder whose record
matches today's fingerprint is finished and skipped.

Jobs run in this process or on Dask distributed (:func:`eo_mmcl.io.cluster.map_jobs`).
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Generic, TypeVar

from eo_mmcl import __version__
from eo_mmcl.errors import SourceError
from eo_mmcl.io.atomic import atomic_output
from eo_mmcl.io.cluster import map_jobs

T = TypeVar("T")

PLAN_FILE: Final = "plan.json"
JOBS_DIR: Final = "jobs"
_JOB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def mark_done(folder: str, job_id: str, result: Any) -> None:
    """Write a finished job's marker (atomically: a killed write leaves no marker).

    Args:
        folder: The ledger's folder.
        job_id: The job.
        result: Its JSON-serialisable result.
    """
    with atomic_output(Path(folder) / JOBS_DIR / f"{job_id}.json") as tmp:
        tmp.write_text(json.dumps({"job": job_id, "result": result}))


@dataclass(frozen=True)
class MarkedJob(Generic[T]):
    """A job as sent to a worker: the work, and where its marker goes once it is done.

    Args:
        func: Module-level function doing the work (picklable); returns the job's result.
        job: The job's description (picklable).
        folder: The ledger's folder.
        job_id: The job's identifier.
    """

    func: Callable[[T], Any]
    job: T
    folder: str
    job_id: str


def run_marked(marked: MarkedJob[Any]) -> Any:
    """Run one job, then write its marker (in the process that ran it).

    Args:
        marked: The job.

    Returns:
        The job's result.
    """
    result = marked.func(marked.job)
    mark_done(marked.folder, marked.job_id, result)
    return result


class JobLedger:
    """The progress of one stage's jobs in a hidden folder of its output.

    Args:
        folder: The progress folder (``OUT/.tile``, ``OUT/.embed``, ...).
        fingerprint: Digest of the inputs and options the work is planned from.
    """

    def __init__(self, folder: Path, fingerprint: str) -> None:
        self.folder = Path(folder)
        self.fingerprint = fingerprint
        self.fresh = False

    @classmethod
    def open(
        cls, folder: Path, fingerprint: str, *, force: bool, owner: Path, what: str
    ) -> JobLedger:
        """Resume the work planned with this fingerprint, or start it afresh.

        Args:
            folder: The progress folder.
            fingerprint: Today's fingerprint.
            force: Start afresh even if unfinished work with another fingerprint is there.
            owner: The output folder (named in the error).
            what: What the work is (``store``, ``export``...: named in the error).

        Returns:
            The ledger; ``fresh`` is True when it was started afresh (no job done).

        Raises:
            SourceError: If unfinished work with another fingerprint is there and not ``force``.
        """
        ledger = cls(folder, fingerprint)
        started = ledger.planned_fingerprint()
        if started is not None and started != fingerprint and not force:
            raise SourceError(
                f"{owner}: an unfinished {what} was started with other inputs or options; "
                "rerun with --force to start over"
            )
        if force or started != fingerprint:
            ledger.restart()
        return ledger

    def planned_fingerprint(self) -> str | None:
        """The fingerprint the work in the folder was planned with (None: no work there)."""
        path = self.folder / PLAN_FILE
        if not path.is_file():
            return None
        try:
            return str(json.loads(path.read_text(encoding="utf-8"))["fingerprint"])
        except (json.JSONDecodeError, KeyError, TypeError):
            return None  # a plan half-written by hand: start over

    def restart(self) -> None:
        """Drop every job done so far and plan afresh with this fingerprint."""
        shutil.rmtree(self.folder, ignore_errors=True)
        (self.folder / JOBS_DIR).mkdir(parents=True)
        with atomic_output(self.folder / PLAN_FILE) as tmp:
            tmp.write_text(json.dumps({"fingerprint": self.fingerprint}))
        self.fresh = True

    def discard(self) -> None:
        """Remove the progress folder (once the stage's outputs are final)."""
        shutil.rmtree(self.folder, ignore_errors=True)

    def marker(self, job_id: str) -> Path:
        """The marker file of a job.

        Args:
            job_id: The job.

        Returns:
            Its path.

        Raises:
            ValueError: If the identifier is not a plain file name.
        """
        if not _JOB_ID.match(job_id):
            raise ValueError(f"job id {job_id!r}: letters, digits, '.', '_' and '-' only")
        return self.folder / JOBS_DIR / f"{job_id}.json"

    def is_done(self, job_id: str) -> bool:
        """Whether a job has its marker.

        Args:
            job_id: The job.

        Returns:
            True when done.
        """
        return self.marker(job_id).is_file()

    def result(self, job_id: str) -> Any:
        """A finished job's result.

        Args:
            job_id: The job.

        Returns:
            What the job returned.
        """
        return json.loads(self.marker(job_id).read_text(encoding="utf-8"))["result"]

    def mark(self, job_id: str, result: Any) -> None:
        """Record a job done in this process.

        Args:
            job_id: The job.
            result: Its JSON-serialisable result.
        """
        self.marker(job_id)  # validates the identifier
        mark_done(str(self.folder), job_id, result)

    def run(
        self,
        func: Callable[[T], Any],
        jobs: Sequence[T],
        job_id: Callable[[T], str],
        workers: int | None = 0,
        scheduler: str | None = None,
        on_done: Callable[[], None] = lambda: None,
    ) -> int:
        """Run every job without a marker, marking each as it finishes.

        Args:
            func: Module-level function doing one job (picklable for Dask).
            jobs: Every job of the plan, done or not.
            job_id: A job's identifier.
            workers: LocalCluster worker processes (default: one per CPU); 0 runs in this
                process.
            scheduler: Address of an existing Dask scheduler (overrides ``workers``).
            on_done: Called once per job finished now (progress bars).

        Returns:
            How many jobs were already done.
        """
        pending = [
            MarkedJob(func, job, str(self.folder), job_id(job))
            for job in jobs
            if not self.is_done(job_id(job))
        ]
        map_jobs(run_marked, pending, workers, scheduler, on_done)
        return len(jobs) - len(pending)


def read_record(path: Path, fingerprint: str) -> dict[str, Any] | None:
    """A stage's completion record, when it was made from these inputs and options.

    Args:
        path: The record file.
        fingerprint: Today's fingerprint.

    Returns:
        The record, or None when there is none, it is unreadable or its fingerprint differs.
    """
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        return None
    if not isinstance(record, dict) or record.get("fingerprint") != fingerprint:
        return None
    return record


def write_record(
    path: Path, fingerprint: str, payload: dict[str, Any], indent: int = 1
) -> dict[str, Any]:
    """Write a stage's completion record (atomically, after the outputs it vouches for).

    Args:
        path: The record file.
        fingerprint: The fingerprint the outputs were made from.
        payload: What the stage records (counts, options, file names...); values JSON cannot
            hold (paths) are written as text.
        indent: JSON indentation.

    Returns:
        The record written: ``fingerprint`` and ``version`` first, then the payload.
    """
    record = {"fingerprint": fingerprint, "version": __version__, **payload}
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(record, indent=indent, default=str))
    return record
