"""Serverless front end: map-reduce-map handlers for AWS Lambda, AWS Batch or a plain process.

A run is four stages (see :mod:`stacrrn.pipeline.stages`), each a handler in
:mod:`stacrrn.serverless.handlers` taking a stac-task/cirrus style payload::

    {"type": "FeatureCollection",
     "features": [<STAC items>],
     "process": {"upload_options": {"path_template": "s3://bucket/prefix"},
                 "tasks": {"stacrrn": {"assets": ["red", "nir"], "method": "global+local", "tiles": 16}}}}

``statistics`` (once per ``"tile"``, map) -> ``solve`` (reduce) -> ``apply`` (once per
``"item"``, map) -> ``collection``. Run one locally with
``python -m stacrrn.serverless STAGE --event payload.json``.
"""
