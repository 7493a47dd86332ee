"""`hean bus keys --dir D --services feed,executor,...`: the stack's CURVE keypairs, for the deploy role.

Writes `<service>.key` (public, the allow-list entry) and `<service>.key_secret` (mode 0600) per service;
keypairs already there are kept, so a re-run changes nothing. `--json` prints the public key files'
text as one JSON object, for the deploy role to hand to the other hosts (secrets never leave the host
that made them); `--no-create` only reads what is there (a `--check` run must not create keys).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import orjson

from hean.bus.endpoints import PUBLISHERS
from hean.bus.security import write_keys


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="hean bus", description="bus tools")
    sub = parser.add_subparsers(dest="cmd", required=True)
    keys = sub.add_parser("keys", help="write CURVE keypairs for the bus")
    keys.add_argument("--dir", required=True, type=Path, help="directory for the key files")
    keys.add_argument("--services", default=",".join(PUBLISHERS),
                      help="comma-separated service names (default: every publisher)")
    keys.add_argument("--json", action="store_true", help="print the public key files' contents as JSON")
    keys.add_argument("--no-create", action="store_true", help="create nothing; report what is there")
    args = parser.parse_args(argv)
    services = [s.strip() for s in args.services.replace(" ", ",").split(",") if s.strip()]
    bad = [s for s in services if s not in PUBLISHERS]
    if bad:
        print(f"hean bus keys: {', '.join(bad)} not a bus publisher ({', '.join(PUBLISHERS)})", file=sys.stderr)
        return 2
    written = [] if args.no_create else write_keys(args.dir, services)
    if args.json:
        files = {}
        for name in services:
            path = args.dir / f"{name}.key"
            if path.is_file() and (args.dir / f"{name}.key_secret").is_file():
                files[path.name] = path.read_text()
        sys.stdout.buffer.write(orjson.dumps({"written": len(written) // 2, "files": files}) + b"\n")
    else:
        print(f"hean bus keys: {len(written) // 2} keypair(s) written, {len(services) - len(written) // 2} kept"
              f" in {args.dir}")
    return 0
