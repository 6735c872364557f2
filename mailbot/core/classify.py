"""What an inbound mail is: an ordered table of small rules, each giving its reason.

First the machine-mail rules (DOMAIN.md s. 5; Mailman's replybot and
RFC 3834 list the same signals): a mail any of them matches never gets an
automatic answer and never opens a ticket. Then the thread rules decide between
a new request, an applicant's follow-up and a staff reply.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from dataclasses import dataclass

from mailbot.core.message import InboundMessage


class Kind(enum.StrEnum):
    MACHINE = "machine"
    NEW_REQUEST = "new_request"
    FOLLOW_UP = "follow_up"  # the applicant, in a ticket's thread
    THIRD_PARTY = "third_party"  # someone else replying in a ticket's thread
    STAFF_REPLY = "staff_reply"  # a staff member, in a ticket's thread
    STAFF_MAIL = "staff_mail"  # a staff member, outside any thread


@dataclass(frozen=True)
class Classification:
    kind: Kind
    reason: str


_AUTO_SUBJECT = re.compile(
    r"^\s*(?:automatic reply|auto(?:matic)?[- ]?reply|autoreply|auto:|"
    # Words a person's subject may begin with too ("Sedang cuti besar, apakah TPP dibayar?"):
    # only as a responder writes them, alone, before a colon or a date.
    r"(?:out of (?:the )?office|sedang cuti|di luar kantor)"
    r"(?:\s*+(?:[:(\[-]|$)|\s++(?:auto-?reply|reply|notice|until|till|sampai|hingga|s\.?d|s/d|mulai|tanggal|tgl)\b)|"
    r"balasan otomatis|jawaban otomatis|balas otomatis|"
    r"abwesenheitsnotiz|r[ée]ponse automatique|"
    r"undeliverable|undelivered mail|delivery status notification|delivery failure|"
    r"mail delivery failed|returned mail|failure notice|delivery has failed|"
    r"non[- ]?delivery|pesan tidak terkirim|pesan tidak dapat dikirim|tidak dapat dikirim|tidak terkirim:|"
    r"read:|dibaca:|"
    r"delivery notification|warning: could not send)",
    re.IGNORECASE,
)
_MACHINE_SENDER = re.compile(
    r"^(?:mailer-daemon|postmaster|no[-_.]?reply|do[-_.]?not[-_.]?reply|bounces?|mail-?daemon)(?:[+._-]|$)",
    re.IGNORECASE,
)
_REPORT_TYPES = {
    "multipart/report",
    "message/delivery-status",
    "message/global-delivery-status",
    "message/disposition-notification",
    "message/feedback-report",
}
# Not application/ms-tnef: Outlook's rich text (winmail.dat) travels beside a person's own text;
# an Exchange auto-reply that carries one says so in its headers or subject (the rules below).
_ENCLOSED = {"message/rfc822", "message/global"}
# Outlook and Google Calendar, English and Indonesian.
_CALENDAR_REPLY_SUBJECT = re.compile(
    r"^\s*(?:accepted|declined|tentative|tentatively accepted|diterima|ditolak|tentatif):",
    re.IGNORECASE,
)
LOOP_HEADER = "X-Mailbot-Loop"

Rule = Callable[[InboundMessage, str], str | None]


# Every copy of these headers counts, not the first only: a mail that says anywhere that a machine
# sent it is not answered (found by the fuzzer: a null Return-Path below another one was answered).


def _return_path_null(msg: InboundMessage, _: str) -> str | None:
    if any(rp.strip().strip("<>").strip() == "" for rp in msg.headers.get("return-path", ())):
        return "Return-Path is null (<>): a bounce or other machine mail"
    return None


def _auto_submitted(msg: InboundMessage, _: str) -> str | None:
    for raw in msg.headers.get("auto-submitted", ()):
        value = raw.strip().lower()
        if value and not value.startswith("no"):
            return f"Auto-Submitted: {value} (RFC 3834)"
    return None


def _report(msg: InboundMessage, _: str) -> str | None:
    # The mail's own structure only: a bounce inside a forwarded message (message/rfc822) is a
    # person asking for help with it. The parts are in walk order, so everything before the first
    # enclosed message is the mail's own (a report nested in multipart/mixed still counts).
    for ct in msg.content_types:
        if ct in _ENCLOSED:
            break
        if ct in _REPORT_TYPES:
            return f"contains {ct} (delivery, read or feedback report)"
    return None


def _calendar_reply(msg: InboundMessage, _: str) -> str | None:
    # An iTIP REPLY (RFC 5546 s. 3.2.3): a calendar's answer to an invitation, often sent by the
    # calendar itself (a room, an auto-accept rule) with no automatic-mail header.
    if "text/calendar" in msg.content_types and _CALENDAR_REPLY_SUBJECT.match(msg.subject):
        return f"calendar reply to an invitation: {msg.subject[:60]!r}"
    return None


def _precedence(msg: InboundMessage, _: str) -> str | None:
    value = msg.header("precedence").strip().lower()
    if value in ("bulk", "junk", "list", "auto_reply"):
        return f"Precedence: {value}"
    return None


def _list_headers(msg: InboundMessage, _: str) -> str | None:
    for name in msg.headers:
        if name.startswith("list-") or name in ("x-mailing-list", "mailing-list"):
            return f"mailing-list header {name}"
    return None


def _auto_reply_headers(msg: InboundMessage, _: str) -> str | None:
    for name in (
        "x-auto-response-suppress",
        "x-autoreply",
        "x-autorespond",
        "x-autogenerated",
        "x-autoreply-from",
        "x-mail-autoreply",
        "x-failed-recipients",
        "x-loop",  # list managers and procmail mark mail passing through automation
        "x-ms-exchange-generated-message-source",
    ):
        if msg.has_header(name):
            return f"auto-reply header {name}"
    if msg.header("x-apple-action").strip().lower() == "vacation":
        return "X-Apple-Action: vacation"
    if msg.header("x-ms-exchange-inbox-rules-loop") or msg.header("x-ms-exchange-organization-autoreply"):
        return "Exchange auto-reply header"
    return None


def _machine_sender(msg: InboundMessage, _: str) -> str | None:
    local = msg.from_addr.split("@", 1)[0]
    if _MACHINE_SENDER.match(local):
        return f"sender {msg.from_addr} is a mail system address"
    return None


def _own_loop(msg: InboundMessage, instance_id: str) -> str | None:
    if any(v.strip().lower() == instance_id.lower() for v in msg.headers.get(LOOP_HEADER.lower(), ())):
        return f"carries our own loop header {LOOP_HEADER}"
    if msg.from_addr and msg.from_addr == instance_id.lower():
        return "sent from our own address"
    return None


def _auto_subject(msg: InboundMessage, _: str) -> str | None:
    # Exchange out-of-office mail may carry no standard header at all (DOMAIN.md s. 5).
    if _AUTO_SUBJECT.match(msg.subject):
        return f"subject looks automatic: {msg.subject[:60]!r}"
    return None


MACHINE_RULES: tuple[Rule, ...] = (
    _own_loop,
    _return_path_null,
    _auto_submitted,
    _report,
    _calendar_reply,
    _list_headers,
    _auto_reply_headers,
    _machine_sender,
    _auto_subject,
)


def no_autoreply_reason(msg: InboundMessage) -> str | None:
    """A person's mail that must still not be answered automatically (DOMAIN.md s. 5).

    `Precedence: bulk|junk|list` without any other machine signal is a person writing
    through a list expander: the request is registered, but an automatic answer would
    go to the list.
    """
    return _precedence(msg, "")


def machine_reason(msg: InboundMessage, instance_id: str) -> str | None:
    """The first reason this mail came from a machine, or None for a person's mail."""
    for rule in MACHINE_RULES:
        reason = rule(msg, instance_id)
        if reason:
            return reason
    return None


@dataclass(frozen=True)
class ThreadMatch:
    """The ticket a mail belongs to, as the shell found it, and how."""

    ticket_id: int
    applicant_email: str
    via: str  # "token" | "message-id" | "subject"
    # The Message-ID of our mail that the token was found in (via "token" only).
    answered: str = ""


def classify(
    msg: InboundMessage,
    *,
    instance_id: str,
    thread: ThreadMatch | None,
    sender_is_staff: bool,
) -> Classification:
    reason = machine_reason(msg, instance_id)
    if reason:
        return Classification(Kind.MACHINE, reason)
    sender = msg.from_addr
    if thread is not None:
        if sender_is_staff:
            return Classification(Kind.STAFF_REPLY, f"staff reply in ticket thread ({thread.via})")
        # Trust boundary: the applicant is the From address (bound to our signed token where
        # there is one), never whoever a Reply-To names: anyone can write any Reply-To.
        if sender and thread.applicant_email == sender:
            return Classification(Kind.FOLLOW_UP, f"applicant follow-up ({thread.via})")
        if thread.via != "subject":
            return Classification(Kind.THIRD_PARTY, f"another sender in the ticket thread ({thread.via})")
    if sender_is_staff:
        return Classification(Kind.STAFF_MAIL, "staff mail outside any ticket thread")
    return Classification(Kind.NEW_REQUEST, "new consultation request")


def spam_flag(msg: InboundMessage) -> str | None:
    """The receiving server's spam verdict (SpamAssassin, rspamd, Zimbra's amavis): such mail
    is held for staff, never acknowledged."""
    if msg.header("x-spam-flag").strip().lower().startswith("yes"):
        return "X-Spam-Flag: YES"
    if msg.header("x-spam-status").strip().lower().startswith("yes"):
        return "X-Spam-Status: Yes"
    return None


# --- what a person's reply says -------------------------------------------------------------------
# Out-of-office text written by a person's mail client without any header (Exchange, Zimbra and
# webmail vacation replies). Looked for in the first lines only, and only in forms that such
# replies use, so that an answer *about* leave ("pegawai yang sedang cuti …") is not taken for one.
# Linear: the text is cut to _OOO_HEAD characters and every pattern is a plain alternation.
_OOO_HEAD = 600
_OUT_OF_OFFICE = re.compile(
    r"\b(?:"
    r"(?:saya|kami)\s(?:sedang|masih)\s(?:cuti|dinas(?:\sluar)?|berada\sdi\sluar|tidak\sberada|di\sluar)"
    r"|(?:^|saya\s|kami\s)sedang\scuti\s(?:sampai|hingga|s\.?d\.?|s/d|dari|mulai|tanggal)"
    r"|tidak\sberada\sdi\s(?:kantor|tempat)"
    r"|(?:sedang\s)?(?:berada\s)?di\sluar\skantor\s(?:sampai|hingga|s\.?d\.?|s/d|mulai|dari|tanggal|pada)"
    r"|balasan\sotomatis|pesan\sotomatis|jawaban\sotomatis|email\sotomatis\s(?:ini|dari)"
    r"|akan\skembali\s(?:bertugas|ke\skantor|masuk|aktif|pada\stanggal)"
    r"|out\sof\s(?:the\s)?office|automatic\sreply|auto[- ]?reply|autoreply"
    r"|(?:i\sam|i'm)\s(?:currently\s)?(?:away|out\sof|on\s(?:annual\s)?leave)"
    r"|on\s(?:annual\s)?leave\s(?:until|till|from)|will\sbe\sback\s(?:on|in)"
    r")",
    re.IGNORECASE | re.MULTILINE,
)
# What a person adds to a reply that an out-of-office notice never carries: the data a request
# awaits, as labelled fields or a NIP / NIK.
_FIELD_DATA = re.compile(
    r"^[ \t]*+(?:nama|nip|nik|nip/nik|unit\skerja|instansi|jabatan|no\.?\s?(?:hp|telp)|nomor\s(?:hp|telepon)"
    r"|telepon|substansi|permasalahan|pertanyaan)\b[^:\n]{0,30}+:"
    r"|\b\d{8}[ .]?+\d{6}[ .]?+\d[ .]?+\d{3}\b|\b\d{16}\b",
    re.IGNORECASE | re.MULTILINE,
)
# A reply of courtesy only ("Terima kasih banyak Pak.", "Baik, terima kasih, sudah jelas"): the
# words of thanks and acknowledgment, forms of address and a name. Anything more is a message.
_THANKS = re.compile(
    r"\b(?:terima\s?kasih|terimakasih|makasih|trims|tks|thanks?|thank\syou|matur\snuwun|hatur\snuhun)\b",
    re.IGNORECASE,
)
_COURTESY_WORDS = frozenset(
    [
        "terima",
        "kasih",
        "terimakasih",
        "makasih",
        "trims",
        "tks",
        "thanks",
        "thank",
        "you",
        "matur",
        "nuwun",
        "hatur",
        "nuhun",
        "banyak",
        "sekali",
        "atas",
        "jawaban",
        "jawabannya",
        "penjelasan",
        "penjelasannya",
        "informasi",
        "informasinya",
        "bantuan",
        "bantuannya",
        "baik",
        "oke",
        "ok",
        "okay",
        "siap",
        "noted",
        "sudah",
        "jelas",
        "cukup",
        "sangat",
        "membantu",
        # Satisfaction in a word ("Puas", "Sangat memuaskan", "Mantap"): courtesy, not a new
        # question; the survey form is sent again for the scores.
        "puas",
        "memuaskan",
        "bagus",
        "mantap",
        "luar",
        "biasa",
        "semua",
        "semuanya",
        "diterima",
        "dengan",
        "kami",
        "saya",
        "pak",
        "bu",
        "bapak",
        "ibu",
        "mas",
        "mbak",
        "bpk",
        "tim",
        "admin",
        "sekretariat",
        "salam",
        "hormat",
        "regards",
        "best",
        "kind",
        "wassalam",
        "wassalamualaikum",
        "assalamualaikum",
        "wr",
        "wb",
        "the",
        "for",
        "your",
        "answer",
        "very",
        "much",
        "much",
        "so",
        "received",
        "well",
        "and",
        "dan",
        "yang",
    ]
)
_CLOSING = re.compile(r"\b(?:salam|hormat\s(?:saya|kami)|regards|wassalam\w*)\b", re.IGNORECASE)
# Thanks that are not satisfied: "Terima kasih pak, tapi masih kurang jelas", "…, jawaban belum
# sesuai", "…, lampiran tidak ada": a message for the consultant, not courtesy.
_NOT_SATISFIED = re.compile(
    r"\b(?:belum|kurang|tapi|tetapi|namun|mohon|bingung|salah|keliru"
    r"|tidak\s(?:puas|sesuai|jelas|menjawab|bisa|lengkap|terlampir|ada\slampiran)|lampiran\s(?:tidak|belum))\b",
    re.IGNORECASE,
)
_MAX_COURTESY_CHARS = 300


def out_of_office(text: str) -> bool:
    """Does the start of this text read as an out-of-office reply?"""
    return _OUT_OF_OFFICE.search(text[:_OOO_HEAD]) is not None


def out_of_office_reply(msg: InboundMessage) -> bool:
    """A reply that reads as an out-of-office notice and carries nothing a person adds to one: no
    question, no file, no field data. "Maaf baru membalas, saya sedang dinas luar kemarin.
    NIP: …", or a file sent "sedang di luar kota, SK terlampir", is a person's reply."""
    text = msg.new_text.strip()
    if not text or msg.attachments or "?" in text or _FIELD_DATA.search(text[: _OOO_HEAD * 4]):
        return False
    return out_of_office(text)


def courtesy_only(text: str) -> bool:
    """Is this reply thanks and acknowledgment only, asking nothing new?"""
    text = text.strip()
    if not text or len(text) > _MAX_COURTESY_CHARS or "?" in text:
        return False
    if _NOT_SATISFIED.search(text):
        return False
    head = _CLOSING.split(text, maxsplit=1)[0]  # the name and unit under "Salam," are a signature
    words = re.findall(r"[^\W\d_]++", head.casefold())
    others = [w for w in words if w not in _COURTESY_WORDS]
    if _THANKS.search(text):
        # A name after the thanks ("Rina", "Rina Kartika") is courtesy too; a sentence is not.
        return len(others) <= 3
    return bool(words) and not others  # "Baik, sudah jelas", "Ok"
