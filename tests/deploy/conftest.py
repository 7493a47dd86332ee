"""Fixtures of the deploy tests: one booted VPS and one deployment (two stacks) for the package, powered
off after its last test (its 16 processes would otherwise load the rest of the suite)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import vps as vpsmod  # noqa: E402
from deployment import Deployment, recap, require_prerequisites, timing  # noqa: E402


@pytest.fixture(scope="package")
def vps():
    require_prerequisites()
    spent = vpsmod.build_rootfs()
    timing("root file system (mmdebstrap; 0 when cached)", spent)
    machine = vpsmod.Vps()
    timing("boot to running + sshd", machine.boot())
    try:
        yield machine
    finally:
        machine.shutdown()


@pytest.fixture(scope="package")
def deployed(vps, tmp_path_factory):
    t0 = time.monotonic()
    dep = Deployment(vps, tmp_path_factory.mktemp("deploy"))
    timing("HEAN wheel + dependency wheelhouse (controller; wheelhouse cached)", time.monotonic() - t0)
    out, took = dep.playbook("deploy.yml")
    timing("first deploy (two stacks)", took)
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-3000:]
    dep.first_recap = recap(out)
    return dep
