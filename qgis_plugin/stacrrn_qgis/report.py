"""``stacrrn:report``: the HTML report of a match or run (:func:`stacrrn.report.build_report`)."""

from __future__ import annotations

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingOutputHtml,
    QgsProcessingParameterFile,
    QgsProcessingParameterFolderDestination,
)

from .base import Job, Made, StacrrnAlgorithm, StageProgress
from .options import OUTPUT_FOLDER
from .parameters import Parameters, comma_list, text

HELP = """A self-contained HTML report of a run, as <code>stacrrn report</code> writes it: summary, spectral \
profiles before and after, parameters, overlap graph, block maps, before/after quick-looks and metrics; the \
figures are also saved as PNG files. <b>Run folder</b>: the output folder of the match algorithm (or of a STAC run \
to a folder). The report opens in the Processing results viewer."""


class ReportAlgorithm(StacrrnAlgorithm):
    """Report of a run's outputs."""

    NAME = "report"
    DISPLAY = "Run report (HTML)"
    GROUP = "Report"
    HELP = HELP

    def define(self) -> None:
        """The run folder, quick-look bands and the report folder."""
        self.addParameter(
            QgsProcessingParameterFile("RUN", "Run folder (output of match or run)", QgsProcessingParameterFile.Folder)
        )
        self.addParameter(text("RGB", "Quick-look bands R,G,B (labels, common names or 1-based positions; one: grey)"))
        self.addParameter(
            QgsProcessingParameterFolderDestination(OUTPUT_FOLDER, "Report folder", QgsProcessing.TEMPORARY_OUTPUT)
        )
        self.addOutput(QgsProcessingOutputHtml("OUTPUT_HTML", "stacrrn report"))

    def prepare(self, parameters: Parameters, context: QgsProcessingContext) -> Job:
        """The run folder and bands."""
        run = self.parameterAsFile(parameters, "RUN", context)
        out = self.parameterAsString(parameters, OUTPUT_FOLDER, context)
        return Job(out, {"run": run, "rgb": comma_list(self, parameters, "RGB", context)})

    def execute(self, job: Job, progress: StageProgress) -> Made:
        """:func:`stacrrn.report.build_report` (it reports no progress; a cancel is honoured when it returns)."""
        from stacrrn.report import build_report

        result = build_report(job.args["run"], job.out, rgb=job.args["rgb"])
        for note in result.notes:
            progress.feedback.pushInfo(f"stacrrn: {note}")
        return Made({OUTPUT_FOLDER: job.out, "OUTPUT_HTML": str(result.html)})
