import numpy as np

from stacrrn.core.global_model import GlobalFit
from stacrrn.core.local_model import LocalFit
from stacrrn.core.model import ImageRef, RRNModel
from stacrrn.types import BlockGrid, Box, Grid


def test_model_json_round_trip_and_digest():
    rng = np.random.default_rng(1)
    frames = [Box(0, 0, 2, 3), Box(1, 1, 3, 4)]
    local = LocalFit(
        BlockGrid(8, 8, 3, 4), frames, [rng.uniform(0.9, 1.1, (2, 2, 3)) for _ in frames], rng.normal(size=(2, 2))
    )
    model = RRNModel(
        "global+local",
        [ImageRef("a", "/x/a.tif"), ImageRef("b", "/x/b.tif")],
        [1, 2],
        Grid("EPSG:32633", (10.0, 0.0, 0.0, 0.0, -10.0, 100.0), 30, 20),
        [1],
        GlobalFit(rng.uniform(0.8, 1.2, (2, 2)), rng.normal(size=(2, 2)), [[0, 1]], [[1]], []),
        local,
        {"before": {"rmse": [1.0, 2.0]}},
    )
    back = RRNModel.from_json(model.to_json())
    assert back.to_dict() == model.to_dict()
    assert back.digest() == model.digest()
    assert back.references == [1] and back.index("b") == 1
    changed = RRNModel.from_json(model.to_json().replace('"global+local"', '"global"'))
    assert changed.digest() != model.digest()
