"""Run one serverless stage in this process: ``python -m stacrrn.serverless STAGE --event FILE``.

The event is a JSON file, an ``s3://``/``https://`` URL or ``-`` (standard input); ``--tile``,
``--item`` and ``--model`` set the stage selectors on top of it. The result is printed as
JSON. An error prints one line on stderr and its JSON payload (``error``, ``message``,
``exit_code``) on stdout, and exits with its code: 2 for bad input, 75 for faults a rerun
may cure (AWS Batch shows the line in the job's log and retries by exit code).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import fsspec

from stacrrn.errors import PayloadError, StacrrnError, report
from stacrrn.serverless.handlers import STAGES


def _read_event(source: str) -> dict[str, Any]:
    try:
        if source == "-":
            event = json.load(sys.stdin)
        else:
            with fsspec.open(source, "r") as f:
                event = json.load(f)
    except (OSError, ValueError) as exc:
        raise PayloadError(f"cannot read the event {source}: {exc}; give a JSON file, URL or - for stdin") from None
    if not isinstance(event, dict):
        raise PayloadError(f"the event {source} is not a JSON object; give a stac-task payload (FeatureCollection)")
    return event


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the stage, print its result; return the exit code."""
    parser = argparse.ArgumentParser(prog="python -m stacrrn.serverless", description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=sorted(STAGES))
    parser.add_argument("--event", default="-", help="payload JSON: a file, a URL or - (stdin)")
    parser.add_argument("--tile", type=int, help="statistics: the tile to compute (0-based)")
    parser.add_argument("--tiles", type=int, help="number of tiles (default: the payload's)")
    parser.add_argument("--item", help="apply: the item id")
    parser.add_argument("--model", help="apply, collection: the model href printed by solve")
    args = parser.parse_args(argv)
    try:
        event = _read_event(args.event)
        event |= {k: v for k in ("tile", "tiles", "item", "model") if (v := getattr(args, k)) is not None}
        result = STAGES[args.stage](event, None)
    except StacrrnError as exc:
        err = report(exc)
        print(f"error: {err.message}", file=sys.stderr)
        json.dump(err.to_dict(), sys.stdout)
        sys.stdout.write("\n")
        return err.exit_code
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
