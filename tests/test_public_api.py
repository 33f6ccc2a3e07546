"""The public API of ``import stacrrn``: every name resolves, is listed, is seen by type checkers, and loads lazily."""

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import stacrrn
import stacrrn.errors

HEAVY = ("numpy", "scipy", "rasterio", "pystac", "pystac_client", "xarray", "s3fs", "odc", "fsspec", "dask")


def _loaded_after(statement: str, libraries: tuple[str, ...]) -> list[str]:
    """Top-level ``libraries`` in ``sys.modules`` after ``statement`` runs in a fresh interpreter."""
    code = f"import sys\n{statement}\nprint(sorted({{m.split('.')[0] for m in sys.modules}} & {set(libraries)!r}))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return ast.literal_eval(done.stdout.strip())


def _type_checking_names() -> dict[str, str]:
    """Name -> module of the ``if TYPE_CHECKING:`` imports of ``stacrrn/__init__.py``, read statically."""
    tree = ast.parse(Path(stacrrn.__file__).read_text())
    block = next(n for n in tree.body if isinstance(n, ast.If) and getattr(n.test, "id", None) == "TYPE_CHECKING")
    return {a.asname or a.name: n.module for n in block.body if isinstance(n, ast.ImportFrom) for a in n.names}


def test_all_is_unique():
    assert len(set(stacrrn.__all__)) == len(stacrrn.__all__)


@pytest.mark.parametrize("name", stacrrn.__all__)
def test_every_public_name_resolves(name):
    value = getattr(stacrrn, name)
    assert value is not None
    if name != "__version__" and hasattr(value, "__name__"):
        assert value.__name__ == name


def test_every_public_name_comes_from_where_type_checkers_see_it():
    seen = _type_checking_names()
    assert set(seen) | {"__version__"} == set(stacrrn.__all__)
    for name, module in seen.items():
        assert getattr(stacrrn, name) is getattr(sys.modules[module], name), name


def test_version_is_the_package_version():
    from stacrrn._version import __version__

    assert stacrrn.__version__ == __version__
    assert stacrrn.__version__.count(".") >= 2


def test_dir_lists_the_public_names():
    assert set(stacrrn.__all__) <= set(dir(stacrrn))


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        _ = stacrrn.no_such_name
    assert not hasattr(stacrrn, "__no_such_dunder__")


def test_every_error_class_is_exported():
    errors = {
        name
        for name, value in vars(stacrrn.errors).items()
        if inspect.isclass(value) and issubclass(value, stacrrn.errors.StacrrnError)
    }
    assert len(errors) > 15
    assert errors <= set(stacrrn.__all__)
    for name in errors:
        assert getattr(stacrrn, name) is getattr(stacrrn.errors, name)


def test_previous_import_paths_of_moved_errors_still_work():
    from stacrrn.io.stac import EmptySearchError
    from stacrrn.pipeline.passes.statistics import ImagesUnreadableError
    from stacrrn.services import ServiceError

    assert EmptySearchError is stacrrn.EmptySearchError
    assert ImagesUnreadableError is stacrrn.ImagesUnreadableError
    assert ServiceError is stacrrn.ServiceError


def test_import_stacrrn_is_light():
    assert _loaded_after("import stacrrn", HEAVY) == []


def test_import_stacrrn_errors_is_light():
    assert _loaded_after("import stacrrn; stacrrn.InputError", HEAVY) == []


def test_import_stacrrn_core_loads_no_io_library():
    io_libraries = ("rasterio", "pystac", "pystac_client", "xarray", "s3fs", "odc", "fsspec", "requests")
    assert _loaded_after("import stacrrn.core", io_libraries) == []
    assert _loaded_after("import stacrrn; stacrrn.solve_global, stacrrn.partition", io_libraries) == []
