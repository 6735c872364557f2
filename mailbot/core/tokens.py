"""Signed thread tokens in the Message-IDs we send: a reply naming one proves it answers our mail.

`<mb.n-KONS-2026-000042.notify.k3j9x2.3f1c…@domain>`: the ticket's number (`n-`; `x-` and the
number in hex when it holds other characters than letters, digits and hyphens; mail sent before
2026-12 carries the ticket's database id instead: `mb.42.`), the kind of mail, a nonce and an
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

_TOKEN_RE = re.compile(
    r"<?mb\.(\d++|[nx]-[A-Za-z0-9-]++)\.([a-z_]++)\.([a-z0-9]++)\.([0-9a-f]{20})@([^>\s]++)>?", re.IGNORECASE
)
_SIG_HEX = 20


@dataclass(frozen=True)
class ThreadToken:
    ticket_id: int | None  # mail sent before tokens carried the number
    kind: str
    nonce: str
    message_id: str
    ticket_number: str | None = None


def _signature(secret: bytes, key: str, kind: str, nonce: str, recipient: str) -> str:
    mac = hmac.new(secret, f"{key}.{kind}.{nonce}.{recipient.strip().lower()}".encode(), hashlib.sha256)
    return mac.hexdigest()[:_SIG_HEX]


def _key(ticket: int | str) -> str:
    if isinstance(ticket, int):
        return str(ticket)
    if re.fullmatch(r"[A-Za-z0-9-]++", ticket):
        return f"n-{ticket}"
    return f"x-{ticket.encode().hex()}"


def make_message_id(secret: bytes, ticket: int | str, kind: str, domain: str, recipient: str) -> str:
    """A fresh Message-ID carrying a token for this ticket (its number; an int: its database id,
    the older form), signed for one recipient."""
    if not re.fullmatch(r"[a-z_]+", kind):
        raise ValueError(f"bad token kind {kind!r}")
    nonce = secrets.token_hex(6)
    key = _key(ticket)
    sig = _signature(secret, key, kind, nonce, recipient)
    return f"<mb.{key}.{kind}.{nonce}.{sig}@{domain}>"


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
        key, kind, nonce, sig = m.group(1), m.group(2).lower(), m.group(3).lower(), m.group(4)
        expected = _signature(secret, key, kind, nonce, sender)
        if not hmac.compare_digest(expected, sig.lower()):
            continue
        if key[:2] == "n-":
            found.append(ThreadToken(None, kind, nonce, mid.strip(), key[2:]))
        elif key[:2] == "x-":
            try:
                number = bytes.fromhex(key[2:]).decode()
            except ValueError:
                continue
            found.append(ThreadToken(None, kind, nonce, mid.strip(), number))
        else:
            found.append(ThreadToken(int(key), kind, nonce, mid.strip()))
    return found
