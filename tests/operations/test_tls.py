"""TLS and STARTTLS to real servers: certificates are verified, an office CA can be configured."""

from __future__ import annotations

import ssl

import pytest
from aiosmtpd.controller import Controller

from mailbot.pipeline.intake import Source
from mailbot.shell.mailbox import MailboxError
from tests.conftest import HEAD, request_mail, send_all
from tests.servers import RecordingHandler, free_port

pytestmark = pytest.mark.imap


@pytest.mark.parametrize("scheme", ["imaps", "imap+starttls"])
def test_imap_over_tls_with_office_ca(scheme, dovecot, imap, smtp, sqlite_url, make_app):
    app = make_app(
        database_url=sqlite_url,
        mailbox_url=imap.url(scheme=scheme),
        smtp_url=smtp.url,
        mailbox_extra=f'ca_file = "{dovecot.ca_file}"',
    )
    imap.deliver(request_mail())
    assert app.run_intake_once().processed == 1
    assert send_all(app).sent == 2


def test_unverifiable_certificate_is_a_clear_mailbox_error(dovecot, imap, smtp, sqlite_url, make_app):
    app = make_app(database_url=sqlite_url, mailbox_url=imap.url(scheme="imaps"), smtp_url=smtp.url)
    with pytest.raises(MailboxError, match="CERTIFICATE_VERIFY_FAILED"):
        app.run_intake_once()


def test_smtp_starttls_with_office_ca(dovecot, sqlite_url, make_app, tmp_path):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(dovecot.root / "cert.pem", dovecot.root / "key.pem")
    handler = RecordingHandler()
    port = free_port()
    controller = Controller(
        handler, hostname="127.0.0.1", port=port, tls_context=context, require_starttls=True
    )
    controller.start()
    try:
        app = make_app(
            database_url=sqlite_url,
            mailbox_url=f"maildir://{tmp_path / 'md'}",
            smtp_url=f"smtp+starttls://127.0.0.1:{port}",
            smtp_extra=f'ca_file = "{dovecot.ca_file}"',
        )
        app.process_raw(Source("t", 1, "1"), request_mail())
        assert send_all(app).sent == 2
        assert HEAD in [r.rcpt_tos[0] for r in handler.received]
    finally:
        controller.stop()
