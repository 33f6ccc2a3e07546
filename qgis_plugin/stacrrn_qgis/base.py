"""What every stacrrn algorithm shares: progress, cancellation, cleanup, errors and loading outputs.

An algorithm subclass declares its id, texts and progress stages, adds its parameters in
:meth:`StacrrnAlgorithm.define`, reads them into plain Python in :meth:`StacrrnAlgorithm.prepare`
(main thread) and calls the library in :meth:`StacrrnAlgorithm.execute` (Processing's worker
thread). The base class turns stacrrn's errors into one-line :class:`QgsProcessingException`
messages, drives the progress bar from stacrrn's ``progress(stage, done, total)`` callback,
stops the run when the user cancels, removes whatever the canceled run wrote, and registers
the outputs to load into the project.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingParameterDefinition,
    QgsProcessingUtils,
)
from qgis.PyQt.QtGui import QIcon

from .dependencies import missing
from .parameters import Parameters

ICON = os.path.join(os.path.dirname(__file__), "icon.svg")


class Canceled(Exception):  # noqa: N818 (a signal, not an error)
    """Raised from the progress callback to stop the library when the user cancels."""


class StageProgress:
    """stacrrn's progress callback driving Processing's feedback.

    stacrrn reports ``(stage, done, total)`` and restarts the count at every stage; each
    stage gets a share of the bar in proportion to its weight, in the order given, and the
    bar never moves back (a stage a run skips is passed over).

    Parameters
    ----------
    feedback
        The algorithm's feedback.
    stages
        ``(stage, weight)`` in the order the library runs them.
    """

    def __init__(self, feedback: QgsProcessingFeedback, stages: Sequence[tuple[str, float]]) -> None:
        self.feedback = feedback
        total = sum(w for _, w in stages) or 1.0
        self.span: dict[str, tuple[float, float]] = {}
        start = 0.0
        for stage, weight in stages:
            self.span[stage] = (100.0 * start / total, 100.0 * weight / total)
            start += weight
        self.position = 0.0
        self.stage = ""

    def check(self) -> None:
        """Raise :class:`Canceled` if the user canceled."""
        if self.feedback.isCanceled():
            raise Canceled

    def __call__(self, stage: str, done: int, total: int) -> None:
        """Move the bar (called by stacrrn from the thread that runs the algorithm)."""
        self.check()
        if stage != self.stage:
            self.stage = stage
            self.feedback.setProgressText(f"stacrrn: {stage}")
        start, width = self.span.get(stage, (self.position, 0.0))
        self.position = max(self.position, start + width * done / max(total, 1))
        self.feedback.setProgress(self.position)


class Snapshot:
    """What an output location (folder or ``s3://`` prefix) held before a run, to undo a canceled run.

    Parameters
    ----------
    url
        The folder or ``s3://bucket/prefix`` the run writes to.
    """

    def __init__(self, url: str) -> None:
        from stacrrn.io.storage import Storage

        storage = Storage(url)
        self.fs, self.root = storage.fs, storage.root
        self.existed = self.fs.exists(self.root) and self.fs.isdir(self.root)
        self.before = self._entries() if self.existed else set()

    def _entries(self) -> set[str]:
        self.fs.invalidate_cache()
        try:
            return {p.rstrip("/") for p in self.fs.find(self.root, withdirs=True)}
        except FileNotFoundError:
            return set()

    def restore(self) -> list[str]:
        """Remove every file and folder made since the snapshot (the whole location if it was new).

        Returns
        -------
        list of str
            What was removed (top-level new entries only).
        """
        new = self._entries() - self.before
        if not self.existed:
            new = {self.root} if new or self.fs.exists(self.root) else set()
        top = sorted(p for p in new if p.rsplit("/", 1)[0] not in new)
        for path in top:
            self.fs.rm(path, recursive=True)
        return top


@dataclass
class Job:
    """An algorithm's parameters read into plain Python, and where it writes."""

    out: str
    args: dict[str, Any] = field(default_factory=dict)


@dataclass
class Made:
    """What an algorithm made: its results and the layers to load into the project.

    ``layers`` holds ``(path, layer name, output name, kind)`` with kind ``raster`` or ``vector``.
    """

    results: dict[str, Any]
    layers: list[tuple[str, str, str, str]] = field(default_factory=list)


class StacrrnAlgorithm(QgsProcessingAlgorithm):
    """Base of the stacrrn algorithms (see the module docstring)."""

    NAME: ClassVar[str] = ""
    DISPLAY: ClassVar[str] = ""
    GROUP: ClassVar[str] = ""
    HELP: ClassVar[str] = ""
    STAGES: ClassVar[tuple[tuple[str, float], ...]] = ()

    def __init__(self) -> None:
        super().__init__()
        self.job: Job | None = None
        self.failure: str | None = None

    # --- what a subclass provides ----------------------------------------------------------

    def define(self) -> None:
        """Add the parameters (stacrrn is importable here)."""
        raise NotImplementedError

    def prepare(self, parameters: Parameters, context: QgsProcessingContext) -> Job:
        """Read the parameters into a :class:`Job` (main thread; may touch layers)."""
        raise NotImplementedError

    def execute(self, job: Job, progress: StageProgress) -> Made:
        """Run the library (worker thread): stacrrn errors and :class:`Canceled` propagate."""
        raise NotImplementedError

    # --- QgsProcessingAlgorithm ------------------------------------------------------------

    def addParameter(self, definition: QgsProcessingParameterDefinition, createOutput: bool = True) -> bool:
        """Add a parameter; a name used twice is a bug (QGIS would drop the second one silently)."""
        if not super().addParameter(definition, createOutput):
            raise ValueError(f"{self.NAME}: parameter {definition.name()} is defined twice")
        return True

    def createInstance(self) -> StacrrnAlgorithm:
        """A new instance of this algorithm."""
        return type(self)()

    def name(self) -> str:
        """Algorithm id within the provider."""
        return self.NAME

    def displayName(self) -> str:
        """Title in the toolbox."""
        return self.DISPLAY

    def group(self) -> str:
        """Toolbox group."""
        return self.GROUP

    def groupId(self) -> str:
        """Toolbox group id."""
        return self.GROUP.lower().replace(" ", "_")

    def shortHelpString(self) -> str:
        """Help shown beside the parameters (with the missing-dependency message, if any)."""
        problem = missing()
        return self.HELP if problem is None else f"<b>{problem}</b><br><br>{self.HELP}"

    def icon(self) -> QIcon:
        """The stacrrn icon."""
        return QIcon(ICON)

    def initAlgorithm(self, config: dict[str, Any] | None = None) -> None:
        """Add the parameters; none when stacrrn cannot be imported (the algorithm then refuses to run)."""
        if missing() is None:
            self.define()

    def canExecute(self) -> tuple[bool, str]:
        """False with the missing-dependency message when stacrrn cannot be imported."""
        problem = missing()
        return problem is None, problem or ""

    def checkParameterValues(self, parameters: Parameters, context: QgsProcessingContext) -> tuple[bool, str]:
        """Refuse to run without stacrrn; otherwise Processing's own checks."""
        problem = missing()
        if problem is not None:
            return False, problem
        return super().checkParameterValues(parameters, context)

    def prepareAlgorithm(
        self, parameters: Parameters, context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> bool:
        """Read the parameters (main thread, where layers may be touched).

        A bad value is reported when the algorithm runs (:meth:`processAlgorithm`): an error
        raised here would reach ``processing.run`` only as "There were errors executing the
        algorithm", its message in the log.
        """
        problem = missing()
        if problem is not None:
            self.failure = problem
            return True
        from stacrrn.errors import StacrrnError, report

        try:
            self.job = self.prepare(parameters, context)
        except StacrrnError as exc:
            self.failure = report(exc).message
        except QgsProcessingException as exc:
            self.failure = str(exc)
        return True

    def processAlgorithm(
        self, parameters: Parameters, context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> dict[str, Any]:
        """Run :meth:`execute`; on cancel remove what the run wrote; register the outputs to load."""
        if self.failure is not None or self.job is None:
            raise QgsProcessingException(self.failure or "stacrrn: the parameters were not read")
        from stacrrn.errors import StacrrnError, report

        progress = StageProgress(feedback, self.STAGES)
        made: Made | None = None
        try:
            snapshot = Snapshot(self.job.out)
            progress.check()
            made = self.execute(self.job, progress)
            progress.check()  # canceled during a step that reports no progress: undone too
        except Canceled:
            made = None
        except StacrrnError as exc:
            raise QgsProcessingException(report(exc).message) from None
        if made is not None:
            feedback.setProgress(100.0)
            self._load(made, context)
            return made.results
        # out of the except clause, no traceback holds the library's generators any more: collected
        # now, their thread pools wait for running tasks, so nothing is written after the cleanup
        gc.collect()
        removed = snapshot.restore()
        feedback.pushInfo(f"stacrrn: canceled; removed {len(removed)} partial output(s) from {self.job.out}")
        raise QgsProcessingException(f"stacrrn: canceled; the partial outputs in {self.job.out} were removed")

    def _load(self, made: Made, context: QgsProcessingContext) -> None:
        hints = {"raster": QgsProcessingUtils.LayerHint.Raster, "vector": QgsProcessingUtils.LayerHint.Vector}
        for path, name, output, kind in made.layers:
            details = QgsProcessingContext.LayerDetails(name, context.project(), output, hints[kind])
            context.addLayerToLoadOnCompletion(path, details)
