"""Is a staff command mail really from its From address? Proof by the office's mail server or
by mailbot's own DKIM check, as the profile says.

Trust boundary (issue #16 item 5): the signed token of a command mail proves that the sender has
seen one of mailbot's Message-IDs, not who the sender is; a forwarded or copied notification
hands it to others. With `require_authentication` a command counts only when the From domain
is proven:

- "header": the topmost Authentication-Results of our own server (its authserv-id) shows
  DMARC pass for the From domain or a DKIM pass aligned with it (RFC 8601 s. 5: headers are
  prepended, so anything below ours came with the mail and may be forged);
- "microsoft365": the same in Exchange Online's header, which carries no authserv-id; mail
  from a mailbox of the same tenant carries `X-MS-Exchange-Organization-AuthAs: Internal`
  instead (Exchange removes X-MS-Exchange-Organization-* headers from mail it receives from
  outside, so a stranger cannot bring one);
- "dkim": mailbot verifies a DKIM signature (RFC 6376) whose d= aligns with the From domain
  (DMARC relaxed alignment, RFC 7489 s. 3.1.1), from the mail as stored.

What this proves is the domain, not the mailbox: anyone who can send from the office's domain
can still write another person's From unless the office's server forbids it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from mailbot.core.authz import aligned, passes, topmost_results
from mailbot.settings import Profile

log = logging.getLogger(__name__)

DnsFunc = Callable[..., bytes | None]


def sender_verified(
    raw: bytes,
    msg_headers: Mapping[str, tuple[str, ...]],
    from_addr: str,
    profile: Profile,
    dnsfunc: DnsFunc | None = None,
) -> tuple[bool, str]:
    """(proven, how): how the From address was proven ("authentication-results <id>: dmarc",
    "microsoft365: dkim d=x.go.id", "dkim d=x.go.id"), or why not. `msg_headers` as
    mailbot.core.message gives them (lower-case names, values top first). `dnsfunc(name, timeout=)`
    answers TXT lookups for the DKIM check (tests pass a stub resolver)."""
    if not profile.require_authentication:
        return True, "From address only (require_authentication is off)"
    froms = msg_headers.get("from", ())
    if len(froms) != 1:
        # RFC 5322 s. 3.6: exactly one From. With two, the domain a check proves need not be
        # the one mailbot reads (DKIM signs the bottom one, the parser takes the top one).
        return False, "no From header" if not froms else "several From headers"
    if "@" not in from_addr:
        return False, "no From address"
    results = msg_headers.get("authentication-results", ())
    if profile.authserv == "header":
        found = topmost_results(results, profile.authserv_id)
        if found is None:
            return False, f"no Authentication-Results from {profile.authserv_id}"
        how = passes(found, from_addr)
        if how is None:
            return False, f"authentication-results {profile.authserv_id}: no pass for the From domain"
        return True, f"authentication-results {profile.authserv_id}: {how}"
    if profile.authserv == "microsoft365":
        auth_as = msg_headers.get("x-ms-exchange-organization-authas", ())
        if auth_as and auth_as[0].strip().lower() == "internal":
            return True, "microsoft365: internal sender"
        found = topmost_results(results, "")
        if found is None:
            return False, "no Authentication-Results from Microsoft 365"
        how = passes(found, from_addr)
        if how is None:
            return False, "microsoft365: no pass for the From domain"
        return True, f"microsoft365: {how}"
    return dkim_verified(raw, from_addr, dnsfunc)


def dkim_verified(raw: bytes, from_addr: str, dnsfunc: DnsFunc | None = None) -> tuple[bool, str]:
    """(True, "dkim d=...") when a DKIM signature of the mail verifies, signs the From header,
    covers the whole body and its d= aligns with the From address's domain."""
    import dkim  # type: ignore[import-untyped]  # dkimpy and dnspython: for authserv = "dkim" only

    domain = from_addr.rsplit("@", 1)[-1].lower()
    message = raw.lstrip(b" \t\r\n")  # as the parser reads it
    try:
        checker = dkim.DKIM(message, logger=log)
        count = sum(1 for name, _ in checker.headers if name.lower() == b"dkim-signature")
    except dkim.DKIMException as exc:
        return False, f"dkim: unreadable message: {exc}"
    if count == 0:
        return False, "dkim: no signature"
    reasons: list[str] = []
    for idx in range(min(count, 10)):
        try:
            prep = checker.verify_headerprep(idx)
        except dkim.DKIMException as exc:
            reasons.append(f"bad signature: {exc}")
            continue
        if not prep:
            continue
        sig, include_headers, _ = prep
        signer = sig[b"d"].decode("ascii", "replace").lower()
        if not aligned(domain, signer):
            reasons.append(f"d={signer} is not the From domain")
            continue
        if b"l" in sig:
            # A body length limit lets anyone append commands below the signed part.
            reasons.append(f"d={signer} signs only part of the body (l=)")
            continue
        if b"from" not in include_headers:
            reasons.append(f"d={signer} does not sign From")
            continue
        try:
            ok = checker.verify(idx, dnsfunc=dnsfunc) if dnsfunc else checker.verify(idx)
        except dkim.DKIMException as exc:
            reasons.append(f"d={signer}: {exc}")
            continue
        except Exception as exc:  # the resolver's failures are open-ended; none proves anything
            reasons.append(f"d={signer}: DNS: {type(exc).__name__}")
            continue
        if ok:
            return True, f"dkim d={signer}"
        reasons.append(f"d={signer}: signature does not verify")
    return False, "dkim: " + "; ".join(reasons or ["no usable signature"])
