"""Every option of a normalization job, in one typed place that every front end reads.

A job's options are five frozen groups, gathered in :class:`RunOptions`:

- :class:`InputOptions`: which bands, how scenes pair up (mosaic or time series), the common grid;
- :class:`ModelOptions`: the method, references, estimator and the local step's block grid;
- :class:`MaskOptions`: cloud masks, reflectance scaling and pseudo-invariant features;
- :class:`OutputOptions`: the output collection, fidelity sampling, extra metrics, failures;
- :class:`ExecutionOptions`: workers, chunk size, resuming.

Field names are unique across the groups, so a job also takes them flat
(``stacrrn.run(search, out, method="global")``); :data:`OPTION_FIELDS` maps each name to its
group. The CLI, the serverless payload and the QGIS plugin read their choices and defaults
from these types (``tests/test_options.py`` fails when one of them misses or mis-defaults a
field). The module imports no numpy, rasterio or pystac, so ``stacrrn --help`` stays fast.
"""

from __future__ import annotations

import functools
import json
import math
import os
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, Field, dataclass, field, fields, replace
from typing import Any, Literal, NamedTuple, get_args, get_origin

from stacrrn.core.settings import SAMPLE_EVERY, Estimator, LocalParams, Method, SpectralPifThresholds
from stacrrn.errors import ParameterError

Mode = Literal["mosaic", "timeseries"]
"""``mosaic``: adjacent scenes, pairs where footprints overlap. ``timeseries``: one place, many dates."""
MODES: tuple[Mode, ...] = get_args(Mode)

CloudMask = Literal["auto", "qa", "spectral", "s2cloudless", "none"]
"""Where cloud masks come from (see :attr:`MaskOptions.cloud_mask`)."""
CLOUD_MASKS: tuple[CloudMask, ...] = get_args(CloudMask)

LOCAL_CLOUD_MASKS: tuple[CloudMask, ...] = ("auto", "none", "spectral")
"""Cloud masks local files can have: no quality assets to decode, so ``auto`` means mask files or none."""

OutputFormat = Literal["cog", "zarr"]
"""How a STAC run writes the corrected images (see :attr:`OutputOptions.format`)."""
OUTPUT_FORMATS: tuple[OutputFormat, ...] = get_args(OutputFormat)

OnError = Literal["fail", "skip"]
"""What a run does with an item that cannot be read or written."""
ON_ERROR: tuple[OnError, ...] = get_args(OnError)

PifKind = Literal["imad", "ndvi"]
"""Named pseudo-invariant feature criteria; any other ``--pif`` value is a vector file."""
PIF_KINDS: tuple[PifKind, ...] = get_args(PifKind)

SeamMode = Literal["center", "least-cost"]
"""Seamline placement: distance-transform centre lines, or moved onto the cheapest cut."""
SEAM_MODES: tuple[SeamMode, ...] = get_args(SeamMode)

PriorityBy = Literal["cloud-cover", "date"]
"""Item properties that can set mosaic priorities: clearer items, or more recent ones, win more area."""
PRIORITY_BY: tuple[PriorityBy, ...] = get_args(PriorityBy)

Sensor = Literal["landsat-c2-l1", "landsat-c2-l2", "sentinel-2-l1c", "sentinel-2-l2a"]
"""Products whose pixel values map to reflectance by a published scale and offset."""

SENSOR_REFLECTANCE: dict[Sensor, tuple[float, float]] = {
    "landsat-c2-l1": (2.0e-5, -0.1),  # Collection 2 Level-1 TOA: REFLECTANCE_MULT/ADD_BAND_n of the MTL
    "landsat-c2-l2": (2.75e-5, -0.2),  # Collection 2 Level-2 surface reflectance (USGS product guide)
    "sentinel-2-l1c": (1.0e-4, -0.1),  # processing baseline 04.00 and later: RADIO_ADD_OFFSET -1000
    "sentinel-2-l2a": (1.0e-4, -0.1),  # processing baseline 04.00 and later: BOA_ADD_OFFSET -1000
}
"""``(scale, offset)`` from pixel values to reflectance of each :data:`Sensor` preset (``--sensor``).

Sentinel-2 products of processing baselines before 04.00 (before 25 January 2022) have no
offset: give ``--reflectance-scale 1e-4`` instead. STAC items that carry ``raster:bands``
scale/offset need no preset: runs read them.
"""
SENSORS: tuple[Sensor, ...] = get_args(Sensor)

DEFAULT_CHUNK = 1024
"""Edge of the square chunks (common-grid pixels) processed as one task."""

DEFAULT_HOLDOUT = 0.2
"""Share of pixels held out for validation when PIFs are used."""


@dataclass(frozen=True, kw_only=True)
class PifOptions:
    """How pass 1 selects pseudo-invariant pixels."""

    methods: tuple[str, ...] = ()
    """``imad``, ``ndvi`` and/or paths of vector files with include polygons."""
    exclude: tuple[str, ...] = ()
    """Paths of vector files whose polygons are never used."""
    threshold: float = 0.5
    """Minimum IR-MAD no-change probability."""
    holdout: float | None = None
    """Share of pixels held out for validation (default 0.2 with PIFs, else 0)."""
    min_share: float = 0.1
    """IR-MAD keeps at least this share of each overlap (its most invariant pixels)."""
    spectral: SpectralPifThresholds = field(default_factory=SpectralPifThresholds)
    """NDVI/NIR limits of the ``ndvi`` criterion."""
    samples: int = 4
    """Windows of 512 pixels read per pair to fit IR-MAD."""

    @classmethod
    def parse(
        cls,
        values: Sequence[str],
        exclude: Sequence[str] = (),
        threshold: float = 0.5,
        holdout: float | None = None,
        min_share: float = 0.1,
    ) -> PifOptions | None:
        """Options from CLI values (``none`` or nothing: no PIF selection, unless holdout/exclude ask).

        Raises
        ------
        ParameterError
            For a value that is neither a criterion nor an existing file, or bad numbers.
        """
        methods = tuple(v for v in values if v != "none")
        if "none" in values and methods:
            raise ParameterError(f"--pif none cannot be combined with --pif {' '.join(methods)}")
        for v in (*methods, *exclude):
            if v not in PIF_KINDS and not os.path.isfile(v):
                raise ParameterError(
                    f"--pif/--exclude {v!r} is neither {', '.join(PIF_KINDS)}, none, nor an existing vector file"
                )
        if not 0.0 <= threshold < 1.0:
            raise ParameterError(f"--pif-threshold must be in [0, 1), got {threshold}")
        if not 0.0 <= min_share < 1.0:
            raise ParameterError(f"--pif-min-share must be in [0, 1), got {min_share}")
        if holdout is not None and not 0.0 <= holdout < 1.0:
            raise ParameterError(f"--holdout must be in [0, 1), got {holdout}")
        if not methods and not exclude and not holdout:
            return None
        return cls(
            methods=tuple(dict.fromkeys(methods)),
            exclude=tuple(exclude),
            threshold=threshold,
            holdout=holdout,
            min_share=min_share,
        )

    @property
    def vectors(self) -> list[str]:
        """Include vector files."""
        return [m for m in self.methods if m not in PIF_KINDS]

    @property
    def holdout_share(self) -> float:
        """Share of pixels held out for validation."""
        if self.holdout is not None:
            return self.holdout
        return DEFAULT_HOLDOUT if self.methods or self.exclude else 0.0


@dataclass(frozen=True, kw_only=True)
class InputOptions:
    """Which bands are normalized, how the scenes pair up, and the common grid of pass 1."""

    assets: tuple[str, ...] | None = None
    """Bands to normalize: asset keys, ``asset.N``, band names or ``eo:common_name`` values
    (STAC), or 1-based band numbers (local files). Default: the spectral reflectance bands
    (STAC), every band (local files)."""
    mode: Mode = "mosaic"
    """``mosaic`` (pairs where footprints overlap) or ``timeseries`` (one place, many dates)."""
    neighbours: int | None = None
    """Time series: pair each date with this many nearest dates (default all pairs)."""
    star: bool = False
    """Time series: also (or only, without ``neighbours``) pair every date with the reference dates."""
    crs: str | None = None
    """CRS of the common grid (default: the first input's)."""
    resolution: float | None = None
    """Pixel size of the common grid in CRS units (default: the finest input's)."""


@dataclass(frozen=True, kw_only=True)
class ModelOptions:
    """The model that is fitted: method, references, estimator and the local step."""

    method: Method = "global+local"
    """``global`` (gain/offset), ``local`` (block fields only) or ``global+local``."""
    references: tuple[str, ...] | None = None
    """Images held fixed: item ids (STAC) or names, file names or paths (local files).
    Default: every image, i.e. normalization towards their central tendency."""
    estimator: Estimator = "spread"
    """Relative gain of each overlap in the global step: ``spread`` or ``orthogonal``."""
    min_overlap: int = 64
    """Overlaps with fewer valid pixels are ignored."""
    block_size: float | None = None
    """Edge of the local step's blocks in CRS units (default: ``n_blocks`` along the longer side)."""
    n_blocks: int | None = None
    """Blocks of the local step along the longer side of the union (default 32)."""
    local_params: LocalParams = field(default_factory=LocalParams)
    """Extent, decay and weights of the local solve (:class:`~stacrrn.core.settings.LocalParams`)."""


@dataclass(frozen=True, kw_only=True)
class MaskOptions:
    """Which pixels may inform the statistics: cloud masks and pseudo-invariant features."""

    cloud_mask: CloudMask = "auto"
    """``auto``: the items' quality assets (Landsat ``qa_pixel``, Sentinel-2 ``scl``) when every
    item has one, mask files given to local jobs, else none; ``qa``: quality assets required;
    ``spectral``: a cloud test on the bands (needs blue, red and reflectance scaling);
    ``s2cloudless``: Sentinel Hub's detector on Sentinel-2 L1C items; ``none``. Masks restrict
    the statistics only; output pixels are corrected everywhere."""
    reflectance: tuple[float, float] | None = None
    """``(scale, offset)`` from pixel values to reflectance, for the spectral cloud test and NDVI
    PIFs (default: the bands' ``raster:bands`` scale/offset)."""
    pif: PifOptions | None = None
    """Pseudo-invariant feature selection and holdout (default: none)."""


@dataclass(frozen=True, kw_only=True)
class OutputOptions:
    """What is written besides the corrected images, and what a failure does."""

    collection_id: str | None = None
    """Id of the output collection (default ``<first input collection>-rrn``)."""
    format: OutputFormat = "cog"
    """``cog``: one corrected COG per input asset, with an output item per input item (and block
    maps, clear masks); ``zarr``: every image in one Zarr store on the run's common grid
    (``cube-<model digest>.zarr``, images along ``time``) described by one datacube item."""
    fidelity_every: int = SAMPLE_EVERY
    """Pass 2 measures each output's fidelity on one row of 8 x 8 windows in every this many (1: all)."""
    overlap_pixels: bool | None = None
    """Read the overlaps again for the pixelwise overlap RMSE/MAE before and after (default: when
    the overlaps hold no more pixels than the images, i.e. a mosaic)."""
    on_error: OnError = "fail"
    """``fail``: the first item that cannot be read or written stops the run; ``skip``: such
    items are left out, reported in the warnings and the run manifest."""
    publish: str | None = None
    """STAC API URL (transactions extension) to add the output collection and items to."""


@dataclass(frozen=True, kw_only=True)
class ExecutionOptions:
    """Where and how pixel work runs; never changes the results."""

    workers: int = 2
    """Concurrent chunks in pass 1 and images in pass 2 (threads; a Dask client is passed to the job)."""
    chunk_size: int = DEFAULT_CHUNK
    """Chunk edge in common-grid pixels."""
    resume: bool = True
    """Reuse cached statistics and outputs already written with the same model."""


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    """Every option of a job (:func:`stacrrn.run`, :func:`stacrrn.match`, the serverless stages)."""

    inputs: InputOptions = field(default_factory=InputOptions)
    """Bands, pairing and common grid."""
    model: ModelOptions = field(default_factory=ModelOptions)
    """Method, references, estimator and local step."""
    masks: MaskOptions = field(default_factory=MaskOptions)
    """Cloud masks, reflectance and PIFs."""
    output: OutputOptions = field(default_factory=OutputOptions)
    """Output collection, fidelity sampling, extra metrics, failures."""
    execution: ExecutionOptions = field(default_factory=ExecutionOptions)
    """Workers, chunks, resuming."""

    @classmethod
    def of(cls, **values: Any) -> RunOptions:
        """Options from flat field names (``method="global"``); see :meth:`updated`."""
        return cls().updated(**values)

    def updated(self, *, what: str = "option", **values: Any) -> RunOptions:
        """A copy with the named fields (flat names, from any group) replaced and checked.

        ``None`` means the option's default; lists become tuples; ``local_params`` and ``pif``
        may be given as dicts (JSON), ``pif`` also as criteria (``"imad"``, ``["imad", "ndvi"]``).
        ``what`` names options in messages (``run parameter`` for a serverless payload).

        Raises
        ------
        ParameterError
            For an unknown name or a value of the wrong type or outside its choices.
        """
        unknown = sorted(set(values) - set(OPTION_FIELDS))
        if unknown:
            raise ParameterError(
                f"unknown {what}(s) {', '.join(map(repr, unknown))}; known: {', '.join(sorted(OPTION_FIELDS))}"
            )
        grouped: dict[str, dict[str, Any]] = {}
        for key, value in values.items():
            option = OPTION_FIELDS[key]
            flag = "--" + key.replace("_", "-")
            label = _Name(flag if what == "option" else f"{what} {key!r}", flag)
            checked = default_of(key) if value is None else _check_kind(label, option.kind, value)
            grouped.setdefault(option.group, {})[key] = checked
        return replace(self, **{g: replace(getattr(self, g), **v) for g, v in grouped.items()})

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunOptions:
        """Options from JSON (a serverless event's ``parameters``): flat field names (``null``: the default).

        Raises
        ------
        ParameterError
            For an unknown key or a value of the wrong shape.
        """
        return cls().updated(what="run parameter", **d)

    def flat(self) -> dict[str, Any]:
        """Every field by its flat name (the inverse of :meth:`of`)."""
        return {name: getattr(getattr(self, option.group), name) for name, option in OPTION_FIELDS.items()}

    def check(self) -> None:
        """Checks that a field's type cannot make.

        Raises
        ------
        ParameterError
            For a fidelity step below 1.
        """
        if self.output.fidelity_every < 1:
            every = self.output.fidelity_every
            raise ParameterError(f"--fidelity-every must be a whole number >= 1 (1 measures every pixel), got {every}")


class OptionField(NamedTuple):
    """Where an option lives in :class:`RunOptions` and what it accepts."""

    group: str
    """Its group: a field name of :class:`RunOptions` (``model`` for ``method``)."""
    field: Field[Any]
    """Its dataclass field (default, default factory)."""
    kind: Any
    """Its type, resolved (``Literal["global", ...]``, ``int | None``...)."""


def _option_fields() -> dict[str, OptionField]:
    table: dict[str, OptionField] = {}
    defaults = RunOptions()
    for group in fields(RunOptions):
        kind = type(getattr(defaults, group.name))
        hints = typing.get_type_hints(kind)
        for f in fields(kind):
            if f.name in table:
                raise AssertionError(f"option {f.name!r} is in groups {table[f.name].group} and {group.name}")
            table[f.name] = OptionField(group.name, f, hints[f.name])
    return table


OPTION_FIELDS: dict[str, OptionField] = _option_fields()
"""Each option's flat name and where it lives (names are unique across the groups)."""


def default_of(name: str) -> Any:
    """The default value of an option, by flat name."""
    f = OPTION_FIELDS[name].field
    return f.default_factory() if f.default_factory is not MISSING else f.default


def choices_of(name: str) -> tuple[str, ...]:
    """The allowed values of a ``Literal`` option (empty for other options)."""
    kind = OPTION_FIELDS[name].kind
    return tuple(a for a in get_args(kind) if isinstance(a, str)) if get_origin(kind) is Literal else ()


@functools.cache
def field_docs() -> dict[str, str]:
    """Each option's field docstring (the string literal after the field), whitespace collapsed.

    Read from this module's source on first use (not at import: ``stacrrn --help`` stays fast).
    """
    import ast
    import inspect
    import textwrap

    docs: dict[str, str] = {}
    for kind in {type(getattr(RunOptions(), g.name)) for g in fields(RunOptions)}:
        body = ast.parse(textwrap.dedent(inspect.getsource(kind))).body[0]
        assert isinstance(body, ast.ClassDef)
        for stmt, nxt in zip(body.body, body.body[1:], strict=False):
            named = isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
            if named and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant):
                assert isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
                docs[stmt.target.id] = " ".join(str(nxt.value.value).split())
    return docs


def _is_number(v: object) -> bool:
    if not isinstance(v, int | float) or isinstance(v, bool):
        return False
    try:
        return math.isfinite(v)
    except OverflowError:  # an integer beyond float range
        return False


@dataclass(frozen=True)
class _Name:
    """How messages name an option: ``label`` in sentences, ``flag`` as the CLI spells it."""

    label: str
    flag: str

    def field(self, key: str) -> _Name:
        """The name of a field of this option's object (``local_params`` -> ``decay``)."""
        prefix = self.flag.removeprefix("--").split("-")[0]
        return _Name(f"{self.label} field {key!r}", f"--{prefix}-{key.replace('_', '-')}")


def _check_kind(name: _Name, kind: Any, value: Any) -> Any:
    """``value`` checked against ``kind`` (lists become tuples, objects option dataclasses).

    Raises
    ------
    ParameterError
        When it does not fit.
    """
    origin, args = get_origin(kind), get_args(kind)
    shown = json.dumps(value, default=str)[:60]
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _check_kind(name, inner, value)
    if origin is Literal:
        if value not in args:
            raise ParameterError(f"unknown {name.flag} {value!r}; choose one of {', '.join(map(str, args))}")
        return value
    simple = {bool: (_is_bool, "true or false"), int: (_is_int, "a whole number"), float: (_is_number, "a number")}
    if kind in simple or kind is str:
        test, words = simple.get(kind, (lambda v: isinstance(v, str), "a string"))
        if not test(value):
            raise ParameterError(f"{name.label} must be {words}, got {shown}")
        return value
    if origin is tuple:
        if isinstance(value, str) or not isinstance(value, Sequence):
            raise ParameterError(f"{name.label} must be a list, got {shown}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_check_kind(name, args[0], v) for v in value)
        if len(value) != len(args):
            raise ParameterError(f"{name.label} must be a list of {len(args)} values, got {shown}")
        return tuple(_check_kind(name, a, v) for a, v in zip(args, value, strict=True))
    if isinstance(kind, type) and hasattr(kind, "__dataclass_fields__"):
        return _dataclass_of(name, kind, value)
    raise AssertionError(f"{name.label} has an unsupported type {kind!r}")


def _is_strings(v: object) -> bool:
    return isinstance(v, list | tuple) and all(isinstance(x, str) for x in v)


def _is_bool(v: object) -> bool:
    return isinstance(v, bool)


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _dataclass_of(name: _Name, kind: type, value: Any) -> Any:
    """An option dataclass (``local_params``, ``pif``) from an instance or a JSON object."""
    if isinstance(value, kind):
        return value
    if kind is PifOptions and (isinstance(value, str) or _is_strings(value)):  # pif="imad", ["imad", "ndvi"]
        return PifOptions.parse([value] if isinstance(value, str) else list(value))
    if not isinstance(value, Mapping):
        raise ParameterError(f"{name.label} must be an object, got {json.dumps(value, default=str)[:60]}")
    hints = typing.get_type_hints(kind)
    known = {f.name for f in fields(kind) if f.init}
    unknown = sorted(set(value) - known)
    if unknown:
        raise ParameterError(
            f"{name.label} has unknown field(s) {', '.join(map(repr, unknown))}; known: {', '.join(sorted(known))}"
        )
    converted = {k: _check_kind(name.field(k), hints[k], v) for k, v in value.items()}
    constructor: Callable[..., Any] = kind
    return constructor(**converted)


__all__ = [
    "CLOUD_MASKS",
    "DEFAULT_CHUNK",
    "DEFAULT_HOLDOUT",
    "LOCAL_CLOUD_MASKS",
    "MODES",
    "ON_ERROR",
    "OPTION_FIELDS",
    "PIF_KINDS",
    "PRIORITY_BY",
    "SEAM_MODES",
    "SENSORS",
    "SENSOR_REFLECTANCE",
    "CloudMask",
    "ExecutionOptions",
    "InputOptions",
    "MaskOptions",
    "Mode",
    "ModelOptions",
    "OnError",
    "OptionField",
    "OutputOptions",
    "PifKind",
    "PifOptions",
    "PriorityBy",
    "RunOptions",
    "SeamMode",
    "Sensor",
    "choices_of",
    "default_of",
    "field_docs",
]
