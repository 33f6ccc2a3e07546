"""Seamlines and blending weights: an exact partition of the union of image footprints.

Each pixel of a (coarse) seam grid goes to the image whose valid area it lies deepest inside:
the largest priority-weighted distance to the nearest pixel that other images cover and
this one does not (a distance-transform Voronoi partition of the non-overlapping parts,
"centre seamlines"; the outer edge of the mosaic does not count, so seams run through the
middle of each overlap). Every covered pixel gets exactly one image, so the regions
cover the union once whatever the number of overlapping images; ties are broken by image
key, so the result does not depend on the input order (pairwise cutting does).

Blending across seams uses each image's signed distance to its own region's boundary
(positive inside): weight ``clip(0.5 + d / width, 0, 1)`` on the image's valid pixels,
normalized; ``width`` 0 is a hard cut. Nothing here knows about files.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

F64 = NDArray[np.float64]
Mask = NDArray[np.bool_]
Labels = NDArray[np.int32]

NONE = -1
"""Label of pixels no image covers."""


def edge_distance(valid: Mask, union: Mask) -> F64:
    """Distance (pixels) from each pixel to the nearest pixel of ``union`` that ``valid`` lacks.

    An image that covers the whole union (others lie inside it) measures the distance to its
    own edge instead, so that a smaller image inside it can still win its centre (with a
    priority).
    """
    others = union & ~valid
    if not others.any():
        others = ~np.pad(valid, 1, constant_values=False)
        return np.asarray(ndimage.distance_transform_edt(~others)[1:-1, 1:-1], dtype=np.float64)
    return np.asarray(ndimage.distance_transform_edt(~others), dtype=np.float64)


def partition(valid: Sequence[Mask], keys: Sequence[str], priority: Sequence[float] | None = None) -> Labels:
    """Label every pixel with the image it lies deepest inside (:data:`NONE` where none is valid).

    Parameters
    ----------
    valid
        Each image's valid pixels on the same grid, ``(rows, cols)``.
    keys
        A unique key per image (e.g. its name): ties go to the smallest key, so the
        partition does not depend on the order of the images.
    priority
        Weights of the distances (default 1): an image with weight 2 wins pixels up to
        twice as deep inside its neighbours.

    Returns
    -------
    numpy.ndarray
        ``int32`` labels (image indices in the given order).
    """
    if len(set(keys)) != len(keys):
        raise ValueError("image keys must be unique")
    weights = np.ones(len(valid)) if priority is None else np.asarray(priority, dtype=np.float64)
    if np.any(weights <= 0):
        raise ValueError("priorities must be positive")
    order = sorted(range(len(valid)), key=lambda k: keys[k])
    union = np.logical_or.reduce(list(valid))
    best = np.full(valid[0].shape, -np.inf)
    labels = np.full(valid[0].shape, NONE, dtype=np.int32)
    for k in order:  # strictly greater: an equal score keeps the smaller key
        score = np.where(valid[k], edge_distance(valid[k], union) * weights[k], -np.inf)
        wins = score > best
        best[wins], labels[wins] = score[wins], k
    return labels


def signed_distance(labels: Labels, image: int) -> F64:
    """Distance (pixels) to the boundary of ``image``'s region: positive inside, negative outside."""
    region = labels == image
    if not region.any():  # a region-less image only fills holes of the others
        return np.full(labels.shape, -float(sum(labels.shape)))
    inside = ndimage.distance_transform_edt(region)
    outside = ndimage.distance_transform_edt(~region)
    return np.asarray(inside - outside, dtype=np.float64)


def blend_weights(signed: Sequence[F64], valid: Sequence[Mask], width: float) -> list[F64]:
    """Normalized blending weights of images at the same pixels.

    Parameters
    ----------
    signed
        Each image's signed distance to its region's boundary at these pixels (in pixels).
    valid
        Each image's valid pixels.
    width
        Feathering width across seams (pixels); 0 is a hard cut along the seamline.

    Returns
    -------
    list of numpy.ndarray
        Weights summing to 1 wherever some image is valid (0 elsewhere). Where the image a
        pixel belongs to has no data, the valid image deepest inside its region takes it.
    """
    ok = np.stack(list(valid))
    s = np.where(ok, np.stack(list(signed)), -np.inf)
    w = np.clip(0.5 + s / width, 0.0, 1.0) if width > 0 else (s > 0).astype(np.float64)
    total = w.sum(axis=0)
    orphan = (total == 0) & ok.any(axis=0)
    if orphan.any():
        deepest = np.argmax(s, axis=0)
        w[:, orphan] = (deepest[orphan][None, :] == np.arange(len(signed))[:, None]).astype(np.float64)
        total = w.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return list(np.where(total > 0, w / total, 0.0))
