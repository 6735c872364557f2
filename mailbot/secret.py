"""The secret that signs the thread tokens: read from the environment or its file, made once."""

from __future__ import annotations

import os
import pwd
from pathlib import Path
from typing import TYPE_CHECKING

# Standard library only at import: the read-only commands use `permission_denied` too.
from mailbot.locate import ConfigError

if TYPE_CHECKING:
    from mailbot.settings import Settings

MIN_SECRET_BYTES = 32  # the tokens' HMAC key: a shorter one is guessable, an empty one signs nothing


def permission_denied(path: Path, *, create: bool = False) -> str:
    """Why the user running mailbot cannot read (or `create`) `path`, and what to do: the first
    folder on the way it may not enter (or the file, or the folder it cannot write in), with its
    owner. A service started as another user than the one who ran `mailbot init` (root, say)
    meets this first."""
    blocked, why = (path.parent, "is not writable") if create else (path, "")
    for parent in reversed(path.parents):
        if not os.access(parent, os.X_OK):
            blocked, why = parent, "may not be entered"
            break
    try:
        uid = blocked.stat().st_uid
        owner = pwd.getpwuid(uid).pw_name
    except KeyError:
        owner = str(uid)
    except OSError:
        owner = "unknown"
    where = f"{blocked} {why}, " if why else ""
    return (
        f"cannot {'create' if create else 'read'} {path}: permission denied ({where}owner {owner}); "
        "chown the data folder to the user mailbot runs as"
    )


def secret_path(settings: Settings, base: Path) -> Path:
    """The secret file, a relative one relative to the configuration's base."""
    path = settings.security.secret_file
    return path if path.is_absolute() else base / path


def load_secret(settings: Settings, base: Path, create: bool) -> bytes:
    """The tokens' HMAC key: $MAILBOT_SECRET (or the variable named), else the secret file,
    made on the first run when `create`; an empty or short one is refused."""
    env_value = os.environ.get(settings.security.secret_env, "")
    if env_value:
        if len(env_value.encode()) < MIN_SECRET_BYTES:
            short = f"is shorter than {MIN_SECRET_BYTES} bytes: use a random value"
            raise ConfigError([(settings.security.secret_env, short)])
        return env_value.encode()
    path = secret_path(settings, base)
    try:
        secret = path.read_bytes().strip() if path.exists() else None
    except PermissionError:
        raise ConfigError([("security.secret_file", permission_denied(path))]) from None
    if secret is not None:
        if len(secret) < MIN_SECRET_BYTES:
            # An empty or truncated file (a crash while it was written, a hand edit) would make
            # every staff command fail its signature without a word: refuse it, say what to do.
            raise ConfigError(
                [
                    (
                        "security.secret_file",
                        f"{path} holds {len(secret)} bytes, fewer than {MIN_SECRET_BYTES}: remove it and "
                        "mailbot makes a new one (mail sent before then can no longer be answered with "
                        "commands; the transcript of a late reply is a fresh mail to act on)",
                    )
                ]
            )
        return secret
    if not create:
        return b""
    try:
        return _create(path)
    except PermissionError:
        raise ConfigError([("security.secret_file", permission_denied(path, create=True))]) from None


def _create(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = os.urandom(32).hex().encode()
    # Written whole under another name, then renamed: a crash leaves no empty secret behind.
    draft = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(secret)
        fh.flush()
        os.fsync(fh.fileno())
    try:
        os.link(draft, path)  # fails if another process made it meanwhile: theirs counts
    except FileExistsError:
        secret = path.read_bytes().strip()
    finally:
        draft.unlink()
    return secret
