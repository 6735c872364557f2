"""Signed thread tokens: valid ones verify for their recipient, forged or tampered ones do not."""

from __future__ import annotations

from mailbot.core.tokens import make_message_id, verify_tokens

SECRET = b"0123456789abcdef"
HEAD = "kabag.umum@bpsdm.example.go.id"


def test_round_trip_for_the_recipient_only() -> None:
    mid = make_message_id(SECRET, 42, "notify", "bpsdm.example.go.id", HEAD)
    [token] = verify_tokens(SECRET, [mid], HEAD.upper())
    assert (token.ticket_id, token.kind) == (42, "notify")
    assert verify_tokens(SECRET, [mid], "someone.else@bpsdm.example.go.id") == []


def test_tampered_ticket_id_kind_or_signature_fails() -> None:
    mid = make_message_id(SECRET, 42, "notify", "bpsdm.example.go.id", HEAD)
    assert verify_tokens(SECRET, [mid.replace("mb.42.", "mb.43.")], HEAD) == []
    assert verify_tokens(SECRET, [mid.replace(".notify.", ".ack.")], HEAD) == []
    sig = mid.split(".")[4].split("@")[0]
    flipped = ("0" if sig[0] != "0" else "1") + sig[1:]
    assert verify_tokens(SECRET, [mid.replace(sig, flipped)], HEAD) == []


def test_other_secret_or_no_secret_fails() -> None:
    mid = make_message_id(SECRET, 7, "ack", "x.go.id", HEAD)
    assert verify_tokens(b"another secret", [mid], HEAD) == []
    assert verify_tokens(b"", [mid], HEAD) == []


def test_ordinary_message_ids_are_ignored() -> None:
    assert verify_tokens(SECRET, ["<CAF=abc@mail.gmail.com>", "<mb.x.123@x>", ""], HEAD) == []


def test_a_token_carries_the_ticket_number_and_older_ones_their_id() -> None:
    mid = make_message_id(SECRET, "KONS-2026-000042", "notify", "bpsdm.example.go.id", HEAD)
    assert mid.startswith("<mb.n-KONS-2026-000042.notify.")
    [token] = verify_tokens(SECRET, [mid], HEAD)
    assert (token.ticket_number, token.ticket_id) == ("KONS-2026-000042", None)
    assert verify_tokens(SECRET, [mid.replace("000042", "000043")], HEAD) == []
    odd = make_message_id(SECRET, "SIKUWAS/2026.7", "ack", "x.go.id", HEAD)
    [token] = verify_tokens(SECRET, [odd], HEAD)
    assert token.ticket_number == "SIKUWAS/2026.7"
    legacy = make_message_id(SECRET, 42, "ack", "x.go.id", HEAD)
    assert verify_tokens(SECRET, [legacy], HEAD)[0].ticket_id == 42
