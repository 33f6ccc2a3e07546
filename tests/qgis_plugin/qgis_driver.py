"""Runs QGIS headless with the stacrrn plugin and prints what happened as JSON (one object on the last line).

Run by QGIS's Python (``.qgis-venv/bin/python``, or plain ``/usr/bin/python3`` for the
missing-stacrrn case), never by the project's own venv::

    python qgis_driver.py describe                 # provider, algorithms, parameter checks
    python qgis_driver.py run JOBS.json            # processing.run each job, with progress and cancel
    python qgis_driver.py missing                  # plugin + provider without stacrrn: the message
    python qgis_driver.py screenshot ALG PNG       # the algorithm dialog, grabbed (needs an X server)
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = "/usr/share/qgis/python/plugins"


def start_qgis(gui: bool = False) -> Any:
    """A QgsApplication with Processing initialized (offscreen unless ``gui``)."""
    os.environ.setdefault("QT_QPA_PLATFORM", "xcb" if gui else "offscreen")
    os.environ.setdefault("QGIS_CUSTOM_CONFIG_PATH", tempfile.mkdtemp(prefix="qgis-config-"))
    from qgis.core import QgsApplication

    QgsApplication.setPrefixPath("/usr", True)
    app = QgsApplication([], gui)
    app.initQgis()
    sys.path[:0] = [str(ROOT / "qgis_plugin"), PLUGINS]
    return app


def load_plugin(iface: Any = None) -> Any:
    """The plugin as QGIS loads it (``classFactory``), with its provider registered."""
    import stacrrn_qgis
    from processing.core.Processing import Processing

    Processing.initialize()
    plugin = stacrrn_qgis.classFactory(iface)
    plugin.initGui() if iface is not None else plugin.initProcessing()
    return plugin


def describe_parameter(param: Any) -> dict[str, Any]:
    from qgis.core import QgsProcessingParameterDefinition

    d: dict[str, Any] = {
        "name": param.name(),
        "type": param.type(),
        "description": param.description(),
        "optional": bool(param.flags() & QgsProcessingParameterDefinition.FlagOptional),
        "advanced": bool(param.flags() & QgsProcessingParameterDefinition.FlagAdvanced),
        "default": param.defaultValue(),
        "default_acceptable": param.checkValueIsAcceptable(param.defaultValue()),
        "is_destination": param.isDestination(),
    }
    if param.type() == "enum":
        d["options"] = list(param.options())
        d["multiple"] = param.allowMultiple()
        d["static"] = param.usesStaticStrings()
    if param.type() == "number":
        d["minimum"], d["maximum"] = param.minimum(), param.maximum()
        d["default_in_range"] = (
            param.defaultValue() is None or param.minimum() <= param.defaultValue() <= param.maximum()
        )
    return d


def describe() -> dict[str, Any]:
    from qgis.core import QgsApplication, QgsProcessingContext

    app = start_qgis()
    plugin = load_plugin()
    registry = QgsApplication.processingRegistry()
    provider = registry.providerById("stacrrn")
    out: dict[str, Any] = {"provider": provider.id(), "long_name": provider.longName(), "algorithms": {}}
    out["warning"] = provider.warningMessage()
    context = QgsProcessingContext()
    for alg in provider.algorithms():
        created = registry.createAlgorithmById(alg.id())
        ok, message = created.checkParameterValues({}, context)
        out["algorithms"][alg.id()] = {
            "display_name": alg.displayName(),
            "group": alg.group(),
            "help": alg.shortHelpString(),
            "can_execute": list(alg.canExecute()),
            "parameters": [describe_parameter(p) for p in created.parameterDefinitions()],
            "outputs": [o.name() for o in created.outputDefinitions()],
            "empty_parameters_ok": ok,
            "empty_parameters_message": message,
        }
    del plugin, provider, created
    app.exitQgis()
    return out


def make_feedback(cancel_at: float | None, watch: str | None) -> Any:
    """A feedback that records progress and messages, and cancels once the bar passes ``cancel_at`` (%)."""
    from qgis.core import QgsProcessingFeedback

    class Recording(QgsProcessingFeedback):
        def __init__(self) -> None:
            super().__init__()
            self.values: list[float] = []
            self.texts: list[str] = []
            self.messages: list[str] = []
            self.seen_at_cancel: list[str] | None = None
            self.progressChanged.connect(self.on_progress)

        def setProgressText(self, text: str) -> None:  # noqa: N802 (QGIS API)
            self.texts.append(text)
            super().setProgressText(text)

        def pushInfo(self, info: str) -> None:  # noqa: N802 (QGIS API)
            self.messages.append(info)
            super().pushInfo(info)

        def pushWarning(self, warning: str) -> None:  # noqa: N802 (QGIS API)
            self.messages.append(warning)
            super().pushWarning(warning)

        def reportError(self, error: str, fatalError: bool = False) -> None:  # noqa: N802 (QGIS API)
            self.messages.append(error)
            super().reportError(error, fatalError)

        def on_progress(self, value: float) -> None:
            self.values.append(value)
            if cancel_at is not None and value > cancel_at and not self.isCanceled():
                if watch:  # what the run had written when it was canceled
                    self.seen_at_cancel = sorted(str(p.relative_to(watch)) for p in Path(watch).rglob("*"))
                self.cancel()

    return Recording()


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    import processing
    from qgis.core import QgsProcessingContext, QgsProcessingException, QgsProject, QgsRasterLayer, QgsVectorLayer

    feedback = make_feedback(job.get("cancel_at"), job.get("watch"))
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    out: dict[str, Any] = {"alg": job["alg"]}
    try:
        out["results"] = processing.run(job["alg"], job["params"], feedback=feedback, context=context)
        out["ok"] = True
    except QgsProcessingException as exc:
        out["ok"], out["error"] = False, str(exc)
    layers = {}
    for path, details in context.layersToLoadOnCompletion().items():
        cls = QgsVectorLayer if details.layerTypeHint == details.layerTypeHint.Vector else QgsRasterLayer
        layer = cls(path, details.name, "ogr" if cls is QgsVectorLayer else "gdal")
        layers[path] = {"name": details.name, "output": details.outputName, "valid": layer.isValid()}
        del layer
    out |= {"layers": layers, "progress": feedback.values, "texts": feedback.texts, "messages": feedback.messages}
    out |= {"canceled": feedback.isCanceled(), "seen_at_cancel": feedback.seen_at_cancel}
    return out


def run(jobs_file: str) -> dict[str, Any]:
    app = start_qgis()
    plugin = load_plugin()
    done = [run_job(job) for job in json.loads(Path(jobs_file).read_text())]
    del plugin
    app.exitQgis()
    return {"jobs": done}


def missing() -> dict[str, Any]:
    """Plugin loaded (with a stub message bar) where stacrrn does not import."""
    from unittest import mock

    from qgis.core import QgsApplication, QgsProcessingException

    app = start_qgis()
    iface = mock.Mock()
    plugin = load_plugin(iface)
    import processing

    provider = QgsApplication.processingRegistry().providerById("stacrrn")
    out: dict[str, Any] = {
        "algorithms": [a.id() for a in provider.algorithms()],
        "warning": provider.warningMessage(),
        "long_name": provider.longName(),
        "message_bar": [list(c.args) for c in iface.messageBar().pushWarning.call_args_list],
        "can_execute": list(provider.algorithm("match").canExecute()),
    }
    try:
        processing.run("stacrrn:match", {"INPUT": ["a.tif", "b.tif"], "OUTPUT_FOLDER": "TEMPORARY_OUTPUT"})
        out["run_error"] = None
    except QgsProcessingException as exc:
        out["run_error"] = str(exc)
    del plugin, provider
    app.exitQgis()
    return out


def screenshot(alg_id: str, png: str) -> dict[str, Any]:
    """Open the algorithm's dialog as the toolbox does, grab it to ``png``."""
    from unittest import mock

    from qgis.gui import QgisInterface, QgsMapCanvas
    from qgis.PyQt.QtWidgets import QLabel, QMainWindow

    app = start_qgis(gui=True)
    import qgis.utils

    window = QMainWindow()
    canvas = QgsMapCanvas(window)
    iface = mock.Mock(spec=QgisInterface)
    iface.mainWindow.return_value = window
    iface.mapCanvas.return_value = canvas
    iface.activeLayer.return_value = None
    iface.browserModel.return_value = None
    qgis.utils.iface = iface  # before processing is imported: its dialogs read it
    plugin = load_plugin(iface)
    import processing

    dialog = processing.createAlgorithmDialog(alg_id, {})
    dialog.resize(1000, 900)
    dialog.show()
    for _ in range(20):
        app.processEvents()
    image = dialog.grab()
    saved = image.save(png, "PNG")
    labels = sorted({w.text() for w in dialog.findChildren(QLabel)})
    out = {"saved": saved, "width": image.width(), "height": image.height(), "title": dialog.windowTitle()}
    out["labels"] = [t for t in labels if t]
    dialog.close()
    del dialog, plugin, canvas, window
    app.exitQgis()
    return out


def main() -> None:
    command, *args = sys.argv[1:]
    try:
        result = {"describe": describe, "run": run, "missing": missing, "screenshot": screenshot}[command](*args)
    except Exception:
        result = {"crash": traceback.format_exc()}
    sys.stdout.flush()
    print("\n" + json.dumps(result, default=str))


if __name__ == "__main__":
    main()
