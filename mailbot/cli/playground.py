"""`mailbot reply`: a newcomer plays the head or the consultant on the embedded default."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime
from pathlib import Path

from mailbot.app import create_app
from mailbot.cli.common import _load, how_called, open_maildir
from mailbot.shell import models


def reply_as(original: bytes, sender: str, text: str, *, to: str, name: str = "") -> bytes:
    """A reply to one of our mails as a mail client writes it: threading headers, the new text
    on top, the quoted mail below (the playground's `mailbot reply`)."""
    import email
    import email.policy
    import secrets
    from email.message import EmailMessage
    from email.utils import format_datetime, formataddr

    msg = email.message_from_bytes(original, policy=email.policy.default)
    body = msg.get_body(("plain",))
    quoted = "\n".join("> " + line for line in (str(body.get_content()) if body else "").splitlines())
    reply = EmailMessage()
    reply["From"] = formataddr((name, sender)) if name else sender
    reply["To"] = to
    reply["Subject"] = "Re: " + str(msg["Subject"] or "")
    reply["Date"] = format_datetime(datetime.now(UTC))
    reply["Message-ID"] = f"<play.{secrets.token_hex(8)}@{sender.rsplit('@', 1)[-1]}>"
    reply["In-Reply-To"] = str(msg["Message-ID"])
    reply["References"] = f"{msg.get('References', '')} {msg['Message-ID']}".strip()
    reply.set_content(f"{text}\n\nPada {msg['Date']}, {msg['From']} menulis:\n{quoted}\n")
    return reply.as_bytes()


def cmd_reply(args: argparse.Namespace) -> int:
    """The playground: answer a mail in the outbox as someone, into the Maildir mailbox."""
    config = _load(args)
    if config.mailbox.scheme != "maildir":
        print("mailbot reply writes into a Maildir mailbox (the embedded default) only", file=sys.stderr)
        return 2
    app = create_app(config)
    try:
        with app.sessions() as session:
            row = session.get(models.OutboundMessage, args.outbox_id)
            if row is None:
                print(f"no outgoing mail #{args.outbox_id} (see: mailbot outbox list)", file=sys.stderr)
                return 1
            raw = row.raw
        text = args.text.replace("\\n", "\n")
        mail = reply_as(raw, args.sender.lower(), text, to=config.service.address, name=args.name or "")
        key = open_maildir(Path(config.mailbox.path)).add(mail)
        print(f"written to {config.mailbox.path}/new/{key}; run: {how_called(args)} run --once")
        return 0
    finally:
        app.close()
