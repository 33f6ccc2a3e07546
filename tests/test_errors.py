"""The error tree: where each class sits, what the core raises, and the one-line report."""

import pickle

import numpy as np
import pytest

from stacrrn import errors
from stacrrn.core.fidelity import FidelitySums
from stacrrn.core.global_model import solve_global
from stacrrn.core.masks import clear_from_qa, qa_pixel_clear
from stacrrn.core.pif import fit_irmad
from stacrrn.core.seamlines import partition
from stacrrn.io import hrefs


@pytest.mark.parametrize(
    ("error", "bases", "exit_code"),
    [
        (errors.EmptySearchError, (errors.InputError,), 2),
        (errors.ImagesUnreadableError, (errors.UnreadableRasterError,), 2),
        (errors.ServiceError, (errors.StacrrnError, RuntimeError), 1),
        (errors.ArgumentError, (errors.ParameterError, ValueError), 2),
        (errors.RunLockedError, (errors.TemporaryError,), 75),
    ],
)
def test_place_in_the_tree(error, bases, exit_code):
    assert error.__bases__ == bases
    assert error.exit_code == exit_code
    assert error.__module__ == "stacrrn.errors"


def test_images_unreadable_error_keeps_its_images_through_pickle():
    error = errors.ImagesUnreadableError("chunk 3 unreadable", {0: "403", 2: "truncated"})
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is errors.ImagesUnreadableError
    assert (str(copy), copy.images) == ("chunk 3 unreadable", {0: "403", 2: "truncated"})


def test_report_redacts_urls_and_keeps_one_line():
    error = errors.UnreadableRasterError("cannot read https://u:p@h/a.tif?X-Amz-Signature=abc.\nmore")
    assert errors.report(error).to_dict() == {
        "error": "UnreadableRasterError",
        "message": "cannot read https://h/a.tif.",
        "exit_code": 2,
    }


def test_hrefs_reexports_the_redaction_functions():
    from stacrrn import _redact

    assert hrefs.redact_text is _redact.redact_text
    assert hrefs.redact_href is _redact.redact_href


@pytest.mark.parametrize(
    "call",
    [
        lambda: qa_pixel_clear(np.zeros((2, 2), np.uint16), exclude=("haze",)),
        lambda: clear_from_qa("fog", np.zeros((2, 2), np.uint16)),
        lambda: partition([np.ones((2, 2), bool)] * 2, ["a", "a"]),
        lambda: partition([np.ones((2, 2), bool)] * 2, ["a", "b"], priority=[1.0, 0.0]),
        lambda: FidelitySums(3, every=0),
        lambda: solve_global([], [], estimator="median"),
        lambda: fit_irmad(np.zeros((3, 100)), np.zeros((3, 99))),
        lambda: fit_irmad(np.zeros((3, 5)), np.zeros((3, 5))),
    ],
)
def test_core_raises_argument_errors_that_are_still_value_errors(call):
    with pytest.raises(errors.ArgumentError) as caught:
        call()
    assert isinstance(caught.value, ValueError)
    assert errors.report(caught.value).exit_code == 2
