"""Who sent a staff command, proven how (#16 item 5): the topmost Authentication-Results of our
own server, Microsoft 365's header, or mailbot's own DKIM check of mail signed with a real key."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import dkim
import pytest

from mailbot.core.authz import authenticated, parse_results
from mailbot.core.message import parse_message
from mailbot.core.sender_auth import sender_verified
from mailbot.core.workflow import State
from mailbot.settings import Profile
from tests.conftest import PROFILES, request_mail
from tests.desk import HEAD, reply_bytes, text_of
from tests.staff.test_dispatch import _profile_desk

OUR = "mx.bpsdm.example.go.id"
DOMAIN = "bpsdm.example.go.id"


def profile(**changes: Any) -> Profile:
    data = tomllib.loads((PROFILES / "sop-002.toml").read_text())
    return Profile.model_validate({**data, "require_authentication": True, **changes})


def command_mail(
    headers_on_top: str = "", *, sender: str = HEAD, body: str = "ASSIGN Budi Santoso\r\n"
) -> bytes:
    """A staff member's command as it lies in the mailbox: the receiving servers' headers on top."""
    return (
        headers_on_top.encode()
        + f"From: Siti Rahmawati <{sender}>\r\n"
        "To: konsultasi@bpsdm.example.go.id\r\n"
        "Subject: Re: [KONS-2026-000001] Disposisi\r\n"
        "Date: Fri, 04 Dec 2026 09:15:00 +0700\r\n"
        "Message-ID: <cmd-1@mail.bpsdm.example.go.id>\r\n"
        "In-Reply-To: <t.abc@mailbot.example.go.id>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "\r\n".encode()
        + body.encode()
    )


def verify(raw: bytes, prof: Profile, dnsfunc: Any = None) -> tuple[bool, str]:
    msg = parse_message(raw)
    return sender_verified(raw, msg.headers, msg.from_addr, prof, dnsfunc=dnsfunc)


# --- Authentication-Results of our own server --------------------------------------------------

REAL_FAIL = (
    f"Authentication-Results: {OUR};\r\n\tdkim=none; spf=softfail smtp.mailfrom={DOMAIN};\r\n"
    f"\tdmarc=fail (p=NONE) header.from={DOMAIN}\r\n"
)
FORGED_PASS = (
    f"Authentication-Results: {OUR}; dkim=pass header.d={DOMAIN}; dmarc=pass header.from={DOMAIN}\r\n"
)
REAL_PASS = (
    f"Authentication-Results: {OUR}; dkim=pass (2048-bit key) header.d={DOMAIN} header.s=sel1;\r\n"
    f" dmarc=pass (p=QUARANTINE) header.from={DOMAIN}\r\n"
)
RECEIVED = (
    "Received: from mail.attacker.example (mail.attacker.example [203.0.113.9])\r\n"
    f"\tby {OUR} (Postfix) with ESMTPS id 4QxYz; Fri, 04 Dec 2026 09:15:02 +0700 (WIB)\r\n"
)


def test_parser_gives_headers_top_first() -> None:
    msg = parse_message(command_mail(RECEIVED + REAL_FAIL + FORGED_PASS))
    found = msg.headers["authentication-results"]
    assert "dmarc=fail" in found[0] and "dmarc=pass" in found[1]


def test_forged_header_below_ours_is_ignored() -> None:
    """Our server prepends its verdict; the attacker's copy of our id, further down, says pass."""
    raw = command_mail(RECEIVED + REAL_FAIL + FORGED_PASS)
    msg = parse_message(raw)
    assert not authenticated(msg.headers["authentication-results"], OUR, msg.from_addr)
    ok, how = verify(raw, profile(authserv_id=OUR))
    assert not ok and "no pass" in how


def test_our_pass_on_top_counts() -> None:
    raw = command_mail(RECEIVED + REAL_PASS + "Authentication-Results: other.example; dmarc=fail\r\n")
    assert verify(raw, profile(authserv_id=OUR)) == (True, f"authentication-results {OUR}: dmarc")


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        (f"{OUR}; dkim=pass header.d=mail.{DOMAIN}", True),  # a child of the From domain aligns
        (f"{OUR}; dkim=pass header.i=@{DOMAIN}", True),
        (f"{OUR}; dkim=pass header.d=evil{DOMAIN}", False),  # a suffix is not a parent
        (f"{OUR}; dkim=pass header.d=evil.example (comment; dkim=pass header.d={DOMAIN})", False),
        (f'{OUR}; dmarc=pass header.from="{DOMAIN}"', True),
        (f"{OUR}; dmarc=pass", False),  # pass for which domain?
        (f"{OUR}; dmarc=pass header.from=evil.example", False),
        (f"{OUR}; spf=pass smtp.mailfrom={DOMAIN}", False),  # SPF proves the envelope, not From
        (f"{OUR.upper()} 1; DKIM=Pass header.d={DOMAIN.upper()}", True),
    ],
)
def test_results_read(header: str, ok: bool) -> None:
    assert authenticated((header,), OUR, HEAD) is ok


def test_two_from_headers_prove_nothing() -> None:
    raw = command_mail(REAL_PASS + f"From: {HEAD}\r\n")
    assert verify(raw, profile(authserv_id=OUR)) == (False, "several From headers")


def test_off_means_from_only() -> None:
    ok, how = verify(command_mail(), profile(require_authentication=False))
    assert ok and "From address only" in how


def test_header_mode_needs_the_id() -> None:
    with pytest.raises(ValueError, match="authserv_id"):
        profile()


# --- Microsoft 365 -------------------------------------------------------------------------------

M365 = (
    "Authentication-Results: spf=pass (sender IP is 40.107.1.2)\r\n smtp.mailfrom=bpsdm.example.go.id;"
    " dkim=pass (signature was verified)\r\n header.d=bpsdm.example.go.id;dmarc=pass action=none\r\n"
    " header.from=bpsdm.example.go.id;compauth=pass reason=100\r\n"
)
M365_FAIL = (
    "Authentication-Results: spf=fail (sender IP is 203.0.113.9) smtp.mailfrom=bpsdm.example.go.id;"
    " dkim=none (message not signed) header.d=none;dmarc=fail action=none header.from=bpsdm.example.go.id;"
    "compauth=fail reason=000\r\n"
)
FORGED_M365 = (
    "Authentication-Results: dkim=pass header.d=bpsdm.example.go.id;"
    "dmarc=pass header.from=bpsdm.example.go.id\r\n"
)


def test_microsoft365_form() -> None:
    assert parse_results(M365.split(":", 1)[1])[0] == ""
    ok, how = verify(command_mail(M365), profile(authserv="microsoft365"))
    assert ok and how == "microsoft365: dmarc"
    ok, _ = verify(command_mail(M365_FAIL + FORGED_M365), profile(authserv="microsoft365"))
    assert not ok
    # A profile that waits for its own server's id does not take Microsoft's header.
    assert not verify(command_mail(M365), profile(authserv_id=OUR))[0]


def test_microsoft365_internal_sender() -> None:
    raw = command_mail(
        "X-MS-Exchange-Organization-AuthAs: Internal\r\n"
        "X-MS-Exchange-Organization-AuthSource: SG2PR01MB1234.apcprd01.prod.exchangelabs.com\r\n"
    )
    assert verify(raw, profile(authserv="microsoft365")) == (True, "microsoft365: internal sender")
    raw = command_mail("X-MS-Exchange-Organization-AuthAs: Anonymous\r\n" + M365_FAIL)
    assert not verify(raw, profile(authserv="microsoft365"))[0]


# --- mailbot's own DKIM check ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def rsa_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes]:
    """A fresh 2048-bit RSA key: (private key PEM, DNS TXT record with the public key)."""
    openssl = shutil.which("openssl")
    assert openssl, "openssl is needed to make the test key"
    folder: Path = tmp_path_factory.mktemp("dkim")
    key = folder / "key.pem"
    subprocess.run(
        [openssl, "genrsa", "-traditional", "-out", str(key), "2048"], check=True, capture_output=True
    )
    der = subprocess.run(
        [openssl, "rsa", "-in", str(key), "-pubout", "-outform", "DER"], check=True, capture_output=True
    ).stdout
    return key.read_bytes(), b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)


class StubResolver:
    """TXT records by name, as a DNS server would answer; records every question."""

    def __init__(self, records: dict[bytes, bytes]) -> None:
        self.records = records
        self.asked: list[bytes] = []

    def __call__(self, name: bytes, timeout: int = 5) -> bytes | None:
        self.asked.append(name)
        return self.records.get(name)


def signed(raw: bytes, key: bytes, domain: str, **options: Any) -> bytes:
    signature = dkim.sign(
        raw,
        b"sel1",
        domain.encode(),
        key,
        include_headers=[b"from", b"to", b"subject", b"date", b"message-id", b"in-reply-to"],
        **options,
    )
    return signature + raw


def test_dkim_signed_by_the_from_domain(rsa_key: tuple[bytes, bytes]) -> None:
    key, record = rsa_key
    dns = StubResolver({f"sel1._domainkey.{DOMAIN}.".encode(): record})
    raw = signed(command_mail(), key, DOMAIN)
    assert verify(raw, profile(authserv="dkim"), dns) == (True, f"dkim d={DOMAIN}")
    assert dns.asked == [f"sel1._domainkey.{DOMAIN}.".encode()]


def test_dkim_parent_domain_aligns(rsa_key: tuple[bytes, bytes]) -> None:
    key, record = rsa_key
    dns = StubResolver({b"sel1._domainkey.example.go.id.": record})
    raw = signed(command_mail(), key, "example.go.id")
    assert verify(raw, profile(authserv="dkim"), dns) == (True, "dkim d=example.go.id")


def test_dkim_refusals(rsa_key: tuple[bytes, bytes]) -> None:
    key, record = rsa_key
    prof = profile(authserv="dkim")
    dns = StubResolver(
        {f"sel1._domainkey.{DOMAIN}.".encode(): record, b"sel1._domainkey.evil.example.": record}
    )
    # No signature at all: a forged From.
    assert verify(command_mail(), prof, dns) == (False, "dkim: no signature")
    # The attacker signs with their own domain.
    ok, how = verify(signed(command_mail(), key, "evil.example"), prof, dns)
    assert not ok and "is not the From domain" in how
    # A real signature, a changed body (a command added).
    raw = signed(command_mail(), key, DOMAIN).replace(b"ASSIGN Budi Santoso", b"CLOSE")
    ok, how = verify(raw, prof, dns)
    assert not ok and "body hash mismatch" in how
    # A body length limit lets commands be appended below the signed part.
    raw = signed(command_mail(), key, DOMAIN, length=True) + b"CLOSE\r\n"
    ok, how = verify(raw, prof, dns)
    assert not ok and "l=" in how
    # No key published (the stub answers nothing).
    ok, how = verify(signed(command_mail(), key, DOMAIN), prof, StubResolver({}))
    assert not ok
    # A second From added above a genuinely signed mail.
    raw = (
        b"From: "
        + HEAD.encode()
        + b"\r\n"
        + signed(command_mail(sender="budi.santoso@bpsdm.example.go.id"), key, DOMAIN)
    )
    assert verify(raw, prof, dns) == (False, "several From headers")


# --- through the desk: a command with the forged header is refused ------------------------------


def test_desk_refuses_the_forged_lower_header(make_app, sqlite_url, tmp_path) -> None:
    desk = _profile_desk(
        make_app, sqlite_url, tmp_path, "sop-002", f'require_authentication = true\nauthserv_id = "{OUR}"\n'
    )
    desk.deliver(request_mail())
    notify = desk.last(HEAD, "notify")
    # The attacker's mail carries a pass in our server's name; our server puts its own on top.
    forged = (REAL_FAIL + FORGED_PASS).encode() + reply_bytes(notify, HEAD, "ASSIGN Budi Santoso")
    assert forged.count(b"Authentication-Results") == 2
    desk.deliver(forged)
    assert desk.ticket().state is State.NEW
    assert "tidak memastikan keaslian pengirim" in text_of(desk.last(HEAD, "transcript"))
    desk.deliver(REAL_PASS.encode() + reply_bytes(notify, HEAD, "ASSIGN Budi Santoso"))
    assert desk.ticket().state is State.ASSIGNED


# --- the operator is told -----------------------------------------------------------------------


def test_check_config_and_status_warn(make_app, sqlite_url, tmp_path, capsys) -> None:
    from mailbot.cli import main

    desk = _profile_desk(make_app, sqlite_url, tmp_path, "sop-002")
    desk.deliver(request_mail())
    config = str(tmp_path / "mailbot.toml")
    capsys.readouterr()
    assert main(["--config", config, "check-config", "--offline"]) == 0
    assert "WARNING: profile sop-002: staff commands are accepted on the From address alone" in (
        capsys.readouterr().out
    )
    main(["--config", config, "status"])
    assert "WARNING: profile sop-002" in capsys.readouterr().out
    main(["--config", config, "status", "--json"])
    assert "sop-002" in json.loads(capsys.readouterr().out)["warnings"][0]


def test_no_warning_with_authentication(make_app, sqlite_url, tmp_path, capsys) -> None:
    from mailbot.cli import main

    _profile_desk(
        make_app, sqlite_url, tmp_path, "sop-002", 'require_authentication = true\nauthserv = "dkim"\n'
    )
    capsys.readouterr()
    assert main(["--config", str(tmp_path / "mailbot.toml"), "check-config", "--offline"]) == 0
    assert "WARNING" not in capsys.readouterr().out
