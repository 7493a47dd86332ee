"""`hean bus keys --dir D --services feed,executor,...`: the stack's CURVE keypairs, for the deploy role.

Writes `<service>.key` (public, the allow-list entry) and `<service>.key_secret` (mode 0600) per service;
keypairs already there are kept, so a re-run changes nothing.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hean.bus.endpoints import PUBLISHERS
from hean.bus.security import write_keys


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="hean bus", description="bus tools")
    sub = parser.add_subparsers(dest="cmd", required=True)
    keys = sub.add_parser("keys", help="write CURVE keypairs for the bus")
    keys.add_argument("--dir", required=True, type=Path, help="directory for the key files")
    keys.add_argument("--services", default=",".join(PUBLISHERS),
                      help="comma-separated service names (default: every publisher)")
    args = parser.parse_args(argv)
    services = [s.strip() for s in args.services.replace(" ", ",").split(",") if s.strip()]
    written = write_keys(args.dir, services)
    print(f"hean bus keys: {len(written) // 2} keypair(s) written, {len(services) - len(written) // 2} kept"
          f" in {args.dir}")
    return 0
