"""`mailbot init DIR`: write a ready embedded-default configuration, DIR/mailbot.toml."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path
from string import Template
from urllib.parse import quote

from mailbot.config import load_config

CONFIG_NAME = "mailbot.toml"
TEMPLATE = resources.files("mailbot") / "samples" / "mailbot.toml.in"


def _toml_string(value: str) -> str:
    # A JSON string is a TOML basic string (the same escapes), quotes and backslashes included;
    # TOML also wants DEL escaped, which JSON leaves as it is.
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def _comment(value: object) -> str:
    """A path as comment text: a line break in a folder's name would end the comment and make
    the rest of the name settings of the file; control characters are shown escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(value))


def _url_path(path: str) -> str:
    """A path inside a URL: `#`, `?` and `%` in a folder's name would end or change the path."""
    return quote(path, safe="/")


def config_text(directory: Path, data_dir: Path) -> str:
    """The configuration for `directory` with its data in `data_dir` (both absolute).

    The loader reads relative paths relative to the file's folder, except in a folder named
    `config`, where they are relative to the folder above (a checkout's config/mailbot.toml). So
    the paths are written relative only where they cannot be read two ways: data inside
    `directory`, and `directory` not named `config`; else they are written absolute."""
    relative = directory.name != "config" and data_dir.is_relative_to(directory)
    data = data_dir.relative_to(directory).as_posix() if relative else str(data_dir)
    if relative:
        base_note = f"Relative paths in this file are relative to its own folder, {_comment(directory)}."
    elif directory.name == "config":
        base_note = (
            "This file's folder is named `config`: relative paths in it would be read relative to\n"
            f"# the folder above ({_comment(directory.parent)}), so the paths below are absolute."
        )
    else:
        base_note = (
            f"The data live in {_comment(data_dir)}, so the paths below are absolute; a relative path\n"
            f"# you add is relative to this file's folder, {_comment(directory)}."
        )
    url = _url_path(data)
    return Template(TEMPLATE.read_text(encoding="utf-8")).substitute(
        config=_comment(directory / CONFIG_NAME),
        base_note=base_note,
        data_dir=_toml_string(data),
        database_url=_toml_string(f"sqlite:///{url}/mailbot.db"),
        mailbox_url=_toml_string(f"maildir://{url}/mailbox"),
        smtp_url=_toml_string(f"file://{url}/outbox"),
        secret_file=_toml_string(f"{data}/secret.key"),
        shipped_templates=_comment(resources.files("mailbot") / "templates"),
    )


def _keep_previous(path: Path, new: bytes) -> Path | None:
    """`init --force` over a configuration an office has edited: the old file's content is kept
    beside the new one, as mailbot.toml.<time>.bak (a name of its own: an earlier backup is never
    overwritten), readable by no one the old file was not (it may hold passwords). A symlinked
    mailbot.toml is copied, not linked. None when there was no file, or it held `new` already (a
    second --force in a row keeps nothing)."""
    if not path.is_file():
        return None
    content = path.read_bytes()
    if content == new:
        return None
    mode = path.stat().st_mode & 0o777
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(100):
        backup = path.with_name(f"{path.name}.{stamp}{f'-{n}' if n else ''}.bak")
        try:
            # A new file (O_EXCL, never through a planted symlink), private until its content is in.
            fd = os.open(backup, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError:
            continue
        with os.fdopen(fd, "wb") as fh:
            fh.write(content)
            os.fchmod(fh.fileno(), mode)  # as the old file: no one else reads its copy
        return backup
    raise FileExistsError(f"{path}: too many backups named {path.name}.{stamp}*.bak")


def cmd_init(args: argparse.Namespace) -> int:
    given = Path(args.dir).expanduser()
    if given.suffix.lower() == ".toml" or (given.exists() and not given.is_dir()):
        # `mailbot init /etc/mailbot/mailbot.toml` made a folder of that name: the file's name
        # is always mailbot.toml, DIR is where it goes.
        print(
            f"{args.dir}: DIR is the folder to create the configuration in (DIR/{CONFIG_NAME}); "
            f"did you mean `mailbot init {given.parent}`?",
            file=sys.stderr,
        )
        return 1
    directory = given.resolve()
    data_dir = Path(args.data_dir).expanduser().resolve() if args.data_dir else directory / "var"
    path = directory / CONFIG_NAME
    if path.is_dir():
        print(f"{path} is a folder, not a configuration file", file=sys.stderr)
        return 1
    if path.exists() and not args.force:
        print(
            f"{path} exists already; --force writes it anew (the old file is kept beside it as a "
            ".bak; the data and the secret stay)",
            file=sys.stderr,
        )
        return 1
    try:
        text = config_text(directory, data_dir).encode("utf-8")
    except UnicodeEncodeError:
        print(f"{data_dir}: a path outside UTF-8 cannot be written in TOML (UTF-8)", file=sys.stderr)
        return 1
    try:
        directory.mkdir(parents=True, exist_ok=True)
        # A fresh file of a name of its own (O_EXCL): a fixed name could be a symlink someone
        # planted in a shared folder, and init would write through it into the file it points to.
        fd, name = tempfile.mkstemp(prefix=f".{CONFIG_NAME}.", suffix=".new", dir=directory)
    except OSError as exc:
        print(f"cannot write in {directory}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    draft = Path(name)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # as any file the user writes: mkstemp's is 0600
        with os.fdopen(fd, "wb") as fh:
            fh.write(text)
        # The database and the outbox hold the applicants' NIK, NIP and phone numbers (UU 27/2022):
        # a data folder init creates is the service's own. One that exists keeps its permissions.
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Read back as every command will (from the same folder, so with the same base), which also
        # creates the thread tokens' secret. An existing secret is kept: with a new one, the replies
        # to mails already sent would no longer match their tokens.
        config = load_config(draft)
        kept = _keep_previous(path, text)
        draft.replace(path)
    except OSError as exc:  # the data folder is a file, the secret cannot be written, ...
        print(f"cannot write {exc.filename or path}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    finally:
        draft.unlink(missing_ok=True)
    if kept is not None:
        print(f"The previous {CONFIG_NAME} is kept as {kept}.")
    print(f"Wrote {path}: the embedded default with the five SOP profiles (active: {config.profile.id}),")
    print(f"  the database {config.database_url.removeprefix('sqlite:///')},")
    print(f"  the mailbox {config.mailbox.path} (a Maildir; three sample requests arrive on the first run),")
    print(f"  outgoing mail as .eml files in {config.smtp.path}.")
    secret = config.settings.security.secret_file
    secret = secret if secret.is_absolute() else config.base_dir / secret
    if secret.exists():
        print(f"  The thread tokens' secret: {secret}")
    print("Edit [service] and the [[staff]] directory in it; [mailbox] and [smtp] for the real mail server.")
    print("Next:")
    print(f"  mailbot --config {path} run --once")
    return 0
