"""One options type: every front end offers every option with the library's choices and defaults.

The QGIS plugin's side of the same check is in tests/qgis_plugin/test_provider.py (it needs QGIS).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import typer

from stacrrn.cli.app import app
from stacrrn.core.settings import ESTIMATORS, LOCAL_EXTENTS, METHODS, LocalParams
from stacrrn.errors import ParameterError
from stacrrn.options import (
    CLOUD_MASKS,
    LOCAL_CLOUD_MASKS,
    MODES,
    ON_ERROR,
    OPTION_FIELDS,
    PifOptions,
    RunOptions,
    choices_of,
    default_of,
    field_docs,
)
from stacrrn.pipeline.match import STAC_ONLY

# options whose CLI spelling is not the field name, or that the CLI splits into several flags
# (each flag's default must be the default of the matching field of the option's object)
CLI_FLAGS: dict[str, dict[str, Any]] = {
    "references": {"reference": None},
    "n_blocks": {"blocks": None},
    "local_params": {"local_extent": LocalParams.extent, "local_decay": LocalParams.decay},
    "pif": {
        "pif": None,
        "exclude": None,
        "pif_threshold": PifOptions.threshold,
        "pif_min_share": PifOptions.min_share,
        "holdout": None,
    },
    "reflectance": {"reflectance_scale": None, "reflectance_offset": 0.0},
}


def _command(name: str) -> Any:
    return typer.main.get_command(app).commands[name]  # type: ignore[attr-defined]


def _cli_defaults(command: str) -> dict[str, tuple[Any, str]]:
    # what --help shows of an option: its metavar (choices) and its help text
    return {
        p.name: (p.default, f"{p.metavar or ''} {getattr(p, 'help', '') or ''}")
        for p in _command(command).params
        if p.name
    }


def test_every_option_has_one_group_a_docstring_and_literal_choices_match_the_registries():
    groups = [getattr(RunOptions(), g.name) for g in dataclasses.fields(RunOptions)]
    assert set(OPTION_FIELDS) == {f.name for g in groups for f in dataclasses.fields(g)}
    assert set(field_docs()) == set(OPTION_FIELDS)
    assert all(len(doc) > 20 for doc in field_docs().values())
    assert choices_of("method") == METHODS and choices_of("estimator") == ESTIMATORS
    assert choices_of("mode") == MODES and choices_of("cloud_mask") == CLOUD_MASKS
    assert choices_of("on_error") == ON_ERROR and set(LOCAL_CLOUD_MASKS) <= set(CLOUD_MASKS)
    assert LOCAL_EXTENTS == ("overlaps", "image")


@pytest.mark.parametrize(("command", "skip"), [("run", ()), ("match", STAC_ONLY)])
def test_cli_offers_every_option_with_the_library_default_and_choices(command, skip):
    cli = _cli_defaults(command)
    for name in OPTION_FIELDS:
        if name in skip:
            assert name not in cli, f"{command} --{name} is a STAC-only option"
            continue
        flags = CLI_FLAGS.get(name, {name: default_of(name)})
        for flag, default in flags.items():
            assert flag in cli, f"stacrrn {command} misses --{flag.replace('_', '-')} (option {name})"
            got = cli[flag][0]
            assert got == default, f"stacrrn {command} --{flag}: default {got!r}, the library's is {default!r}"
        choices = LOCAL_CLOUD_MASKS if (command, name) == ("match", "cloud_mask") else choices_of(name)
        for choice in choices:
            assert choice in cli[name][1], f"stacrrn {command} --{name} --help does not offer {choice!r}"


def test_serverless_parameters_are_the_option_fields_with_the_same_defaults():
    assert RunOptions.from_dict({}) == RunOptions()
    for name in OPTION_FIELDS:
        default = default_of(name)
        json_value = dataclasses.asdict(default) if dataclasses.is_dataclass(default) else default
        if isinstance(json_value, tuple):
            json_value = list(json_value)
        assert RunOptions.from_dict({name: json_value}) == RunOptions(), name
    with pytest.raises(ParameterError, match="unknown run parameter"):
        RunOptions.from_dict({"methd": "global"})


def test_flat_names_reach_their_group_and_are_checked():
    o = RunOptions.of(method="global", assets=["red", "nir"], workers=4, local_params={"extent": "image"})
    assert o.model.method == "global" and o.inputs.assets == ("red", "nir") and o.execution.workers == 4
    assert o.model.local_params == LocalParams(extent="image")
    assert o.flat()["method"] == "global" and RunOptions.of(**o.flat()) == o
    assert RunOptions.of(method=None, local_params=None) == RunOptions()  # None: the default
    assert RunOptions.of(pif="imad").masks.pif == PifOptions(methods=("imad",))
    assert RunOptions.of(pif=["imad", "ndvi"]).masks.pif == PifOptions(methods=("imad", "ndvi"))
    assert RunOptions.of(pif="none").masks.pif is None
    for bad, words in [
        ({"method": "magic"}, "unknown --method 'magic'; choose one of global, local, global+local"),
        ({"workers": 1.5}, "--workers must be a whole number, got 1.5"),
        ({"star": "yes"}, "--star must be true or false"),
        ({"reflectance": [1.0]}, "--reflectance must be a list of 2 values"),
        ({"local_params": {"decay": "far"}}, "--local-params field 'decay' must be a number"),
        ({"local_params": {"extent": "all"}}, "unknown --local-extent 'all'"),
        ({"resolutoin": 10.0}, "unknown option(s) 'resolutoin'"),
        ({"pif": "imda"}, "--pif/--exclude 'imda' is neither imad, ndvi, none, nor an existing vector file"),
    ]:
        with pytest.raises(ParameterError) as err:
            RunOptions.of(**bad)
        assert words in str(err.value), (bad, str(err.value))
