"""Run one serverless stage in this process: ``python -m stacrrn.serverless STAGE --event FILE``.

The event is a JSON file, an ``s3://``/``https://`` URL or ``-`` (standard input); ``--tile``,
``--item`` and ``--model`` set the stage selectors on top of it. The result is printed as
JSON. Bad input exits with code 2 and a one-line message (AWS Batch shows it in the job's log).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import fsspec

from stacrrn.errors import StacrrnError
from stacrrn.serverless.handlers import STAGES


def _read_event(source: str) -> dict[str, Any]:
    if source == "-":
        event = json.load(sys.stdin)
    else:
        with fsspec.open(source, "r") as f:
            event = json.load(f)
    if not isinstance(event, dict):
        raise ValueError("the event is not a JSON object")
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
    except (OSError, ValueError) as exc:
        print(f"error: cannot read the event {args.event}: {exc}", file=sys.stderr)
        return 2
    event |= {k: v for k in ("tile", "tiles", "item", "model") if (v := getattr(args, k)) is not None}
    try:
        result = STAGES[args.stage](event)
    except StacrrnError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
