"""The probe run's jobs (one per checkpoint, then the references), resumable after a kill.

Each job embeds one model's chips and probes them into the :class:`Collector`. Its marker in the
job ledger (:mod:`eo_mmcl.io.jobs`) holds the rows it added; the report's predictions and maps it
added go beside it (Parquet, ``.npz`` read without pickle). A rerun with the same fingerprint
replays finished jobs into the collector in order, instead of embedding and probing again, so a
killed run's table equals an uninterrupted one.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from eo_mmcl.io.atomic import atomic_output
from eo_mmcl.io.jobs import JobLedger
from eo_mmcl.probe.collect import Collector

PROGRESS_DIR = ".probe"


def _plain(value: Any) -> Any:
    """A row value as JSON holds it exactly (numpy scalars as Python numbers)."""
    if isinstance(value, np.generic):
        return value.item()
    return value


class ProbeJobs:
    """The probe run's ledger and the collector its jobs fill.

    Args:
        ledger: The job ledger (``OUT/.probe``).
        collector: The collector every job adds to.
    """

    def __init__(self, ledger: JobLedger, collector: Collector) -> None:
        self.ledger = ledger
        self.collector = collector

    @classmethod
    def open(cls, out: Path, fingerprint: str, collector: Collector, force: bool) -> ProbeJobs:
        """Resume the jobs of a killed run with this fingerprint, or start afresh.

        Probing is cheap to redo, so work planned from other inputs is dropped, not refused.

        Args:
            out: The probe folder.
            fingerprint: The run's fingerprint.
            collector: The collector to fill.
            force: Start afresh.

        Returns:
            The jobs.
        """
        folder = out / PROGRESS_DIR
        stale = JobLedger(folder, fingerprint).planned_fingerprint() != fingerprint
        ledger = JobLedger.open(
            folder, fingerprint, force=force or stale, owner=out, what="probe run"
        )
        return cls(ledger, collector)

    def run(self, job_id: str, work: Callable[[], None]) -> None:
        """Do one job, or replay it when a killed run finished it.

        Args:
            job_id: The job.
            work: Adds the job's rows (and predictions, maps) to the collector.
        """
        collector = self.collector
        if self.ledger.is_done(job_id):
            self._replay(job_id)
            return
        n_rows, n_predictions = len(collector.rows), len(collector.predictions)
        maps_before, kept_before = set(collector.maps), set(collector.kept)
        work()
        side = self.ledger.folder / job_id
        predictions = collector.predictions[n_predictions:]
        if predictions:
            with atomic_output(side.with_suffix(".predictions.parquet")) as tmp:
                pd.concat(predictions, ignore_index=True).to_parquet(tmp)
        maps = {k: v for k, v in collector.maps.items() if k not in maps_before}
        if maps:
            with atomic_output(side.with_suffix(".maps.npz")) as tmp, tmp.open("wb") as handle:
                np.savez(handle, **maps)  # type: ignore[arg-type]
        rows = [{k: _plain(v) for k, v in row.items()} for row in collector.rows[n_rows:]]
        self.ledger.mark(
            job_id,
            {
                "rows": rows,
                "kept": sorted(collector.kept - kept_before),
                "predictions": bool(predictions),
                "maps": list(maps),
            },
        )

    def _replay(self, job_id: str) -> None:
        collector = self.collector
        done = self.ledger.result(job_id)
        # Python's JSON writes NaN and reads it back as NaN: the rows are as they were.
        collector.rows.extend(done["rows"])
        collector.kept.update(done["kept"])
        side = self.ledger.folder / job_id
        if done["predictions"]:
            collector.predictions.append(pd.read_parquet(side.with_suffix(".predictions.parquet")))
        if done["maps"]:
            with np.load(side.with_suffix(".maps.npz"), allow_pickle=False) as stored:
                collector.maps.update({k: stored[k] for k in done["maps"]})

    def discard(self) -> None:
        """Remove the progress folder once the run's outputs are final."""
        self.ledger.discard()
