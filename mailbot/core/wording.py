"""What a service calls the requests it takes, in each language: "pengajuan konsultasi" and
"konsultasi" for a consultation service, "keluhan" and "penanganan keluhan" for SOP 003's
complaints. Every mail names the service this way; the profile's `service_noun` decides."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

# An Indonesian noun a profile may give, as the English mails say it.
_ENGLISH = {"konsultasi": "consultation", "keluhan": "complaint", "pengaduan": "complaint"}


@dataclass(frozen=True)
class Wording:
    """`noun`: what the service handles ("konsultasi", "keluhan"); `request`: what the applicant
    sent ("pengajuan konsultasi", "keluhan"); `handling`: the service as a whole ("riwayat
    konsultasi", "penanganan keluhan selesai")."""

    noun: str
    request: str
    handling: str


@lru_cache(maxsize=32)
def wording(service_noun: str, language: str) -> Wording:
    own = service_noun.strip() or "konsultasi"
    if language == "en":
        noun = _ENGLISH.get(own.lower(), own)
        if noun == "consultation":
            return Wording(noun, "consultation request", "consultation")
        return Wording(noun, noun, f"{noun} handling")
    if own.lower() == "konsultasi":
        return Wording("konsultasi", "pengajuan konsultasi", "konsultasi")
    return Wording(own, own, f"penanganan {own}")


def _attribute(profile: Any, name: str) -> str:
    """A profile's attribute, or its key where an office's template passes a dict, as Jinja reads it."""
    value = profile.get(name) if isinstance(profile, Mapping) else getattr(profile, name, None)
    return str(value or "")


def wording_of(profile: Any, language: str) -> Wording:
    """The wording of a profile: its `service_noun`; without one, a complaint service where the
    profile is SOP 003 or its title says so ("keluhan", "complaint"), else a consultation service."""
    own = _attribute(profile, "service_noun").strip()
    if not own:
        title = _attribute(profile, "title").lower()
        complaint = _attribute(profile, "id") == "sop-003" or "keluhan" in title or "complaint" in title
        own = "keluhan" if complaint else "konsultasi"
    return wording(own, language)
