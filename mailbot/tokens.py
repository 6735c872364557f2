"""Signed thread tokens in the Message-IDs we send: a reply naming one proves it answers our mail.

`<mb.42.notify.k3j9x2.3f1c…@domain>`: ticket id, the kind of mail, a nonce and an
HMAC-SHA256 over them and the recipient's address, with the configured secret
(DOMAIN.md s. 5: a token cannot be forged without the secret). Binding the
recipient means a token only vouches for a reply from the person the mail was
sent to: a forwarded copy answered by someone else carries no authority.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

_TOKEN_RE = re.compile(r"<?mb\.(\d+)\.([a-z_]+)\.([a-z0-9]+)\.([0-9a-f]{20})@([^>\s]+)>?", re.IGNORECASE)
_SIG_HEX = 20


@dataclass(frozen=True)
class ThreadToken:
    ticket_id: int
    kind: str
    nonce: str
    message_id: str


def _signature(secret: bytes, ticket_id: int, kind: str, nonce: str, recipient: str) -> str:
    mac = hmac.new(secret, f"{ticket_id}.{kind}.{nonce}.{recipient.strip().lower()}".encode(), hashlib.sha256)
    return mac.hexdigest()[:_SIG_HEX]


def make_message_id(secret: bytes, ticket_id: int, kind: str, domain: str, recipient: str) -> str:
    """A fresh Message-ID carrying a token for this ticket, signed for one recipient."""
    if not re.fullmatch(r"[a-z_]+", kind):
        raise ValueError(f"bad token kind {kind!r}")
    nonce = secrets.token_hex(6)
    sig = _signature(secret, ticket_id, kind, nonce, recipient)
    return f"<mb.{ticket_id}.{kind}.{nonce}.{sig}@{domain}>"


def make_plain_message_id(domain: str) -> str:
    """A Message-ID for mail that belongs to no ticket."""
    return f"<mb.x.{secrets.token_hex(12)}@{domain}>"


def verify_tokens(secret: bytes, message_ids: list[str], sender: str) -> list[ThreadToken]:
    """The tokens among referenced Message-IDs that were signed for `sender`, newest reference first.

    A token with a bad signature, or signed for someone else, is dropped here; the
    caller treats the mail as if it referenced nothing of ours.
    """
    found: list[ThreadToken] = []
    if not secret:
        return found
    for mid in message_ids:
        m = _TOKEN_RE.fullmatch(mid.strip())
        if not m:
            continue
        ticket_id, kind, nonce, sig = (
            int(m.group(1)),
            m.group(2).lower(),
            m.group(3).lower(),
            m.group(4),
        )
        expected = _signature(secret, ticket_id, kind, nonce, sender)
        if hmac.compare_digest(expected, sig.lower()):
            found.append(ThreadToken(ticket_id, kind, nonce, mid.strip()))
    return found
