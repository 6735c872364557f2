"""Routing a ticket by the question's field and/or the applicant's region (SOP 001 step 2, SOP 004
step 4): which field and region it belongs to, and who of the staff serves it.

Pure: the profile's rules and the ticket's text in, names out. Trust boundary: the subject,
question and work unit are the applicant's words; they only choose among the office's own staff
(a suggestion to the lead, or an assignment the lead configured), never an address.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from mailbot.settings import Profile, RouteKey, StaffMember

MAX_TEXT = 8000  # the regexes are the office's own; the text they read is bounded all the same


@dataclass(frozen=True)
class Routing:
    """Where a ticket belongs: `keys` ("field" -> "pengadaan", "region" -> "Wilayah I"), and the
    staff who serve it, those matching every key first."""

    keys: Mapping[RouteKey, str]
    people: tuple[StaffMember, ...] = ()

    @property
    def label(self) -> str:
        return ", ".join(f"{k} {v}" for k, v in self.keys.items())

    @property
    def region(self) -> str:
        return self.keys.get("region") or self.keys.get("unit") or ""

    @property
    def best(self) -> tuple[StaffMember, ...]:
        """The people who match the most keys (one person: the ticket is theirs)."""
        if not self.people:
            return ()
        top = _score(self.people[0], self.keys)
        return tuple(p for p in self.people if _score(p, self.keys) == top)


def route_keys(profile: Profile, subject: str, question: str, unit: str) -> dict[RouteKey, str]:
    """For each way the profile routes, the `to` of its first rule that matches: the field from
    the subject and question, the region (or unit) from the applicant's work unit."""
    text: dict[RouteKey, str] = {
        "field": f"{subject}\n{question}"[:MAX_TEXT],
        "region": unit[:MAX_TEXT],
        "unit": unit[:MAX_TEXT],
    }
    keys: dict[RouteKey, str] = {}
    for key in profile.route_by:
        for rule in profile.routes:
            if profile.route_key(rule) == key and re.search(rule.match, text[key], re.IGNORECASE):
                keys[key] = rule.to
                break
    return keys


def _attribute(key: RouteKey) -> str:
    return "field" if key == "field" else "region"


def _score(member: StaffMember, keys: Mapping[RouteKey, str]) -> int:
    return sum(1 for key, to in keys.items() if getattr(member, _attribute(key)).casefold() == to.casefold())


def serving(keys: Mapping[RouteKey, str], candidates: Iterable[StaffMember]) -> tuple[StaffMember, ...]:
    """The candidates whose field or region is one of the keys (field OR region, as SOP 001 says),
    those matching more keys first, in the directory's order otherwise."""
    scored = [(p, _score(p, keys)) for p in candidates]
    return tuple(p for p, n in sorted(scored, key=lambda x: -x[1]) if n)


def route(
    profile: Profile, subject: str, question: str, unit: str, candidates: Sequence[StaffMember]
) -> Routing:
    keys = route_keys(profile, subject, question, unit)
    return Routing(keys, serving(keys, candidates) if keys else ())


def of_region(region: str, people: Sequence[StaffMember]) -> list[StaffMember]:
    """The people of one region (SOP 001: the TU of the applicant's region); all of them when
    the region is unknown or nobody has it."""
    mine = [p for p in people if region and p.region.casefold() == region.casefold()]
    return mine or list(people)
