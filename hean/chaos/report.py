"""The readable report of `hean chaos` (pure): invariants first, then faults, figures and bounds."""

from __future__ import annotations

from typing import Any


def render(result: dict[str, Any], seed: int, duration_s: float) -> str:
    inv, ex = result["invariants"], result.get("examples", {})
    failed = sum(1 for v in inv.values() if v)
    lines = [f"hean chaos: seed {seed}, {duration_s:.0f} s of trading, "
             f"{'PASS' if not failed else f'FAIL ({failed} invariants not 0)'}", "", "invariants (must be 0):"]
    for name, count in inv.items():
        lines.append(f"  {'ok ' if not count else 'BAD'} {name:44s} {count}")
        for example in (ex.get(name) or [])[:3] if count else []:
            lines.append(f"        e.g. {example}")
    lines += ["", "faults injected:"]
    lines += [f"  {k:36s} {v}" for k, v in result["faults"].items()]
    lines += ["", "figures:"]
    lines += [f"  {k:36s} {v}" for k, v in result["figures"].items()]
    b = result.get("bounds") or {}
    if b:
        lines += ["", "bounds: held <= max_hold {max_hold_s:g} s + check {check_interval_s:g} s + margin "
                  "{hold_margin_s:g} s; force-close never before max_hold; opening accepted under "
                  "QUARANTINE/HARD_STOP in force >= {risk_margin_s:g} s, or risk silent > {risk_stale_s:g} + "
                  "{risk_margin_s:g} s; exchange drawdown >= threshold + {dd_margin_pct:g} pp -> state within "
                  "{transition_bound_s:g} s".format(**b)]
    for note in result.get("notes") or []:
        lines.append(f"note: {note}")
    lines.append(f"state dir: {result.get('state_dir')}")
    return "\n".join(lines)
