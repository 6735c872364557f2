"""How mailbot reaches its mail servers: [mailbox] (IMAP or a Maildir), [smtp], and an XOAUTH2 login."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from mailbot.settings.base import StrictModel


class OAuth2Settings(StrictModel):
    """Where an XOAUTH2 access token comes from: `provider` (microsoft, google) or `command`. The
    login user is the URL's. Secrets never sit here: the variables named by the *_env keys hold them."""

    provider: Literal["microsoft", "google"] | None = None
    # microsoft: client credentials of an Entra ID app registration (msal).
    tenant_id_env: str = "MAILBOT_OAUTH2_TENANT_ID"
    client_id_env: str = "MAILBOT_OAUTH2_CLIENT_ID"
    client_secret_env: str = "MAILBOT_OAUTH2_CLIENT_SECRET"
    authority: str = "https://login.microsoftonline.com"  # another cloud: login.microsoftonline.us
    # google: a service account's JSON key, with domain-wide delegation to act as the URL's user.
    key_file: Path | None = None
    scope: str = ""  # empty: https://outlook.office365.com/.default, https://mail.google.com/
    # A program (run without a shell) that prints an access token; it is used for token_lifetime.
    command: str = ""
    command_timeout: float = Field(default=30.0, gt=0)
    token_lifetime: float = Field(default=3600.0, gt=0)
    # A token is replaced this many seconds before it expires.
    refresh_margin: float = Field(default=300.0, ge=0)

    @model_validator(mode="after")
    def _one_source(self) -> OAuth2Settings:
        if (self.provider is None) == (not self.command.strip()):
            raise ValueError('set either provider ("microsoft" or "google") or command')
        if self.provider == "google" and self.key_file is None:
            raise ValueError('provider = "google" needs key_file (the service account\'s JSON key)')
        if self.command and self.token_lifetime <= self.refresh_margin:
            raise ValueError("token_lifetime must be longer than refresh_margin")
        return self


class _Login(StrictModel):
    """How mailbot logs in to a mail server: a password, or XOAUTH2 with a token of [*.oauth2]."""

    auth: Literal["password", "xoauth2"] = "password"
    oauth2: OAuth2Settings | None = None

    @model_validator(mode="after")
    def _oauth2_with_xoauth2(self) -> _Login:
        if self.auth == "xoauth2" and self.oauth2 is None:
            raise ValueError('auth = "xoauth2" needs an oauth2 table (provider or command)')
        if self.auth == "password" and self.oauth2 is not None:
            raise ValueError('an oauth2 table is used only with auth = "xoauth2"')
        return self


class MailboxSettings(_Login):
    url: str = "maildir://var/mailbox"
    password_env: str = "MAILBOT_IMAP_PASSWORD"
    # What happens to a message once it is safely stored: moved to a folder, or flagged.
    after: Literal["move", "flag"] = "move"
    processed_folder: str = "Processed"
    quarantine_folder: str = "Quarantine"
    idle: bool = True
    idle_timeout: float = Field(default=300.0, gt=0)
    poll_interval: float = Field(default=30.0, gt=0)
    batch_size: int = Field(default=200, ge=1, le=5000)
    # Messages processed in one database transaction (a failure in one of them rolls the group
    # back and its messages are processed again one by one, each in its own transaction).
    transaction_size: int = Field(default=50, ge=1, le=1000)
    # Processes that parse the next group of a backlog while the intake thread stores the
    # current one (0: parse in the intake thread).
    parse_workers: int = Field(default=1, ge=0, le=16)
    reconnect_max_seconds: float = Field(default=300.0, gt=0)
    timeout: float = Field(default=60.0, gt=0)
    # PEM file of the CA that signed the server's certificate; empty: the system's CAs.
    ca_file: str = ""


class SmtpSettings(_Login):
    url: str = "file://var/outbox"
    password_env: str = "MAILBOT_SMTP_PASSWORD"
    timeout: float = Field(default=30.0, gt=0)
    # Temporary failures are retried with exponential backoff until this many attempts.
    max_attempts: int = Field(default=12, ge=1)
    retry_base_seconds: float = Field(default=30.0, gt=0)
    retry_max_seconds: float = Field(default=3600.0, gt=0)
    # Mails claimed and recorded per transaction, and SMTP connections a batch is spread over
    # (the mails of one ticket always go over the same connection, in order).
    batch_size: int = Field(default=250, ge=1)
    connections: int = Field(default=2, ge=1, le=32)
    # The daemon drains the outbox in a child process of its own (another core than intake),
    # started when mail is queued; with nothing to send for this long it exits until there is.
    sender_process: bool = True
    sender_idle_seconds: float = Field(default=300.0, gt=0)
    ca_file: str = ""
    # A process claims a mail for this long before sending; if it dies mid-send the claim runs
    # out and the mail is sent again (at-least-once, with the same Message-ID).
    claim_lease_seconds: float = Field(default=600.0, gt=0)
