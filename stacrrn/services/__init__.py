"""Real services on loopback (``127.0.0.1`` only) for the demo, the tests and benchmarks.

- :class:`LoopbackS3`: moto's S3 server in a thread, plus the GDAL/boto environment.
- :class:`FaultProxy`: a reverse proxy that fails a seeded fraction of the requests (503,
  dropped connections, cut transfers), to prove that a run survives transient S3 faults.
- :class:`RustacAPI`: ``rustac serve``, a read-only in-memory STAC API (bbox, datetime).
- :class:`PgstacAPI`: PostgreSQL + pgstac + stac-fastapi-pgstac, a full STAC API
  (query, CQL2 filter, transactions); :func:`pgstac_unavailable_reason` says whether it
  can run on this machine.

Each is a context manager that starts the service on entry and stops it on exit.
"""

from __future__ import annotations

from stacrrn.errors import ServiceError
from stacrrn.services.common import free_port
from stacrrn.services.fault_proxy import FaultProxy
from stacrrn.services.pgstac import PgstacAPI, pgstac_unavailable_reason
from stacrrn.services.rustac import RustacAPI
from stacrrn.services.s3 import LoopbackS3

__all__ = [
    "FaultProxy",
    "LoopbackS3",
    "PgstacAPI",
    "RustacAPI",
    "ServiceError",
    "free_port",
    "pgstac_unavailable_reason",
]
