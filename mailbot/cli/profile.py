"""`mailbot profile show`: a service profile as a table of steps."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from mailbot.cli.common import _load
from mailbot.core.safe_output import json_text
from mailbot.core.safe_output import terminal_text as _t
from mailbot.settings import Profile


def profile_rows(profile: Profile) -> list[dict[str, Any]]:
    """Each step of a profile as a row: what it is, who acts, its time, its clock, and the ticket
    states (and, with `role_steps`, the assignee's role) in which its clock runs."""
    runs: dict[str, list[str]] = {}
    for state, step in profile.state_steps.items():
        runs.setdefault(step, []).append(state)
    for role, step in profile.role_steps.items():
        runs.setdefault(step, []).append(f"assigned ({role})")
    for n, step in enumerate(profile.after_answer):
        before = "the answer" if n == 0 else profile.after_answer[n - 1]
        runs.setdefault(step, []).append(f"answered, closed (after {before})")
    return [
        {
            "step": s.id,
            "title": s.title,
            "actor": s.actor,
            "time": s.duration,
            "clock": "working" if s.deadline.working else "wall",
            "runs_in": runs.get(s.id, []),
        }
        for s in profile.steps
    ]


def cmd_profile(args: argparse.Namespace) -> int:
    config = _load(args)
    profile = config.profiles.get(args.id)
    if profile is None:
        print(f"no profile {args.id!r}; known: {', '.join(sorted(config.profiles))}", file=sys.stderr)
        return 1
    rows = profile_rows(profile)
    if args.json:
        print(json_text({"id": profile.id, "title": profile.title, "steps": rows}))
        return 0
    print(
        f"{profile.id}: {_t(profile.title)}" + (f" ({_t(profile.sop_number)})" if profile.sop_number else "")
    )
    print(f"  {'STEP':<14} {'ACTOR':<12} {'TIME':<16} {'CLOCK':<8} RUNS IN")
    for r in rows:
        print(
            f"  {_t(r['step']):<14} {r['actor']:<12} {_t(r['time']):<16} {r['clock']:<8} "
            f"{', '.join(r['runs_in']) or '-'}"
        )
        print(f"    {_t(r['title'])}")
    return 0
