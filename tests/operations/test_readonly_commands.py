"""The read-only commands (`tickets list`, `tickets show`, `status`) start without the validated
configuration and without SQLAlchemy: they read the few settings they need (`mailbot.locate`)
and the database through its own driver (`mailbot.shell.readonly`). What they read must be what
the models hold, on SQLite and PostgreSQL, and what the full loader would resolve."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from dataclasses import fields
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from mailbot.cli import main
from mailbot.cli.warnings import authentication_of_profiles
from mailbot.config import load_config
from mailbot.core.workflow import OPEN_STATES, State
from mailbot.locate import ConfigError, locate
from mailbot.migrations import head_revision
from mailbot.shell import health, models, readonly
from tests.conftest import PROFILES, ROOT, request_mail, send_all, write_config
from tests.desk import HEAD, STAFF, Desk

INCOMPLETE = "Yth. Bapak/Ibu,\n\nBagaimana cara mengurus kenaikan pangkat?\n\nTerima kasih.\n"


def _values(row: object, shape: type) -> dict[str, object]:
    """What the reader's `shape` holds, read off a model or a reader's row alike."""
    return {f.name: getattr(row, f.name) for f in fields(shape) if f.name != "events"}


def _busy_desk(make_app, database_url: str, tmp_path: Path, smtp) -> Desk:
    """A desk with a little of everything: a complete and an incomplete request, a disposition,
    an ASSIGN, a quarantined mail, a dead letter, a failing component."""
    app = make_app(
        database_url=database_url,
        mailbox_url=f"maildir://{tmp_path / 'md'}",
        smtp_url=smtp.url,
        staff=STAFF,
        extra="[limits]\nmax_message_bytes = 200000\n",
    )
    desk = Desk(app)
    desk.deliver(request_mail())
    desk.deliver(request_mail(sender="agus@desa.example.id", name="Agus", body=INCOMPLETE))
    desk.deliver(request_mail(body="x" * 300_000, subject="Lampiran besar"))  # quarantined
    smtp.handler.replies = ["550 5.1.1 mailbox unknown"]  # the first mail sent is a dead letter
    send_all(app)
    desk.reply(desk.last(HEAD, "notify"), HEAD, "ASSIGN Budi Santoso")
    send_all(app)
    health.record(app.sessions, "intake", app.clock(), error="IMAP login refused")
    return desk


def test_the_reader_reads_what_the_models_hold(make_app, database_url, tmp_path, smtp) -> None:
    desk = _busy_desk(make_app, database_url, tmp_path, smtp)
    app = desk.app
    later = app.clock() + timedelta(days=40)  # every open step is overdue by then
    with app.sessions() as session:
        tickets = list(session.scalars(select(models.Ticket).order_by(models.Ticket.id.desc())))
        stored = {
            t.number: (
                [_values(e, readonly.Event) for e in t.events],
                [
                    _values(m, readonly.Inbound)
                    for m in session.scalars(
                        select(models.InboundMessage)
                        .where(models.InboundMessage.ticket_id == t.id)
                        .order_by(models.InboundMessage.id)
                    )
                ],
                [
                    _values(m, readonly.Outbound)
                    for m in session.scalars(
                        select(models.OutboundMessage)
                        .where(models.OutboundMessage.ticket_id == t.id)
                        .order_by(models.OutboundMessage.id)
                    )
                ],
            )
            for t in tickets
        }

        def count(model, *where) -> int:
            return int(session.scalar(select(func.count()).select_from(model).where(*where)))

        out = models.OutboundMessage
        expected_counts = (
            count(out, out.status == "pending"),
            count(out, out.status == "sending"),
            count(out, out.status == "dead"),
            count(models.InboundMessage, models.InboundMessage.status == "quarantined"),
            count(models.Ticket, models.Ticket.state.in_(list(OPEN_STATES))),
            count(models.Ticket, models.Ticket.state.in_(list(OPEN_STATES)), models.Ticket.due_at <= later),
        )
        open_profiles = set(
            session.scalars(select(models.Ticket.profile).where(models.Ticket.state.in_(list(OPEN_STATES))))
        )
        intake = session.get(models.Health, "intake")
    assert len(tickets) == 2 and expected_counts[2] >= 1 and expected_counts[3] == 1
    assert expected_counts[5] >= 1  # the test sees an overdue ticket

    reader = readonly.open_reader(app.config.database_url)
    assert reader is not None
    with reader:
        rows = reader.tickets()
        assert [r.number for r in rows] == [t.number for t in tickets]
        for row, ticket in zip(rows, tickets, strict=True):
            assert _values(row, readonly.Ticket) == _values(ticket, readonly.Ticket)
        assert [r.number for r in reader.tickets(state=State.AWAITING_INFO)] == [
            t.number for t in tickets if t.state is State.AWAITING_INFO
        ]
        assert len(reader.tickets(limit=1)) == 1
        for ticket in tickets:
            shown = reader.ticket(ticket.number.lower())  # numbers are found in any case
            assert shown is not None
            events, inbound, outbound = stored[ticket.number]
            assert [_values(e, readonly.Event) for e in shown.events] == events
            got_in, got_out = reader.messages(shown.id)
            assert [_values(m, readonly.Inbound) for m in got_in] == inbound
            assert [_values(m, readonly.Outbound) for m in got_out] == outbound
        assert reader.ticket("KONS-1999-999999") is None
        assert set(reader.open_profiles()) == open_profiles

        st = reader.status(later, timedelta(minutes=15))
        assert (
            st.outbox_pending,
            st.outbox_sending,
            st.dead_letters,
            st.quarantined,
            st.open_tickets,
            st.overdue_tickets,
        ) == expected_counts
        assert st.failing == ["intake"] and not st.healthy  # failing for 40 days
        assert st.components["intake"]["last_error"] == "IMAP login refused"
        assert st.components["intake"]["failing_since"] == intake.failing_since.isoformat()
        assert st.components["outbox"]["last_ok_at"] is None or "T" in st.components["outbox"]["last_ok_at"]
        assert reader.status(app.clock(), timedelta(minutes=15)).failing == []  # failing for 0 min


def test_the_commands_print_what_the_reader_read(make_app, database_url, tmp_path, smtp, capsys) -> None:
    desk = _busy_desk(make_app, database_url, tmp_path, smtp)
    config = str(tmp_path / "mailbot.toml")
    number = desk.ticket().number
    capsys.readouterr()
    assert main(["--config", config, "tickets", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert len(listed) == 2 and listed[0]["number"] == number
    assert main(["--config", config, "tickets", "show", number.lower(), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["number"] == number and shown["history"] and shown["messages"]
    assert {m["direction"] for m in shown["messages"]} == {"in", "out"}
    assert main(["--config", config, "tickets", "show", "KONS-1999-000001"]) == 1
    assert "no ticket KONS-1999-000001" in capsys.readouterr().err
    assert main(["--config", config, "status", "--json", "--failing-after", "0"]) == 1
    status = json.loads(capsys.readouterr().out)
    assert status["failing"] == ["intake"] and status["quarantined"] == 1
    assert status["outbox"]["dead"] >= 1 and status["tickets"]["open"] == 2
    assert any("sop-002" in w for w in status["warnings"])


def test_a_new_or_older_database_gets_the_full_start_first(tmp_path, capsys) -> None:
    db = tmp_path / "var" / "fresh.db"
    config = write_config(
        tmp_path,
        database_url=f"sqlite:///{db}",
        mailbox_url=f"maildir://{tmp_path / 'md'}",
        smtp_url=f"file://{tmp_path / 'out'}",
    )
    assert main(["--config", str(config), "tickets", "list"]) == 0  # no database yet: created
    assert capsys.readouterr().out.strip() == "no tickets"
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(head_revision(),)]
        conn.execute("UPDATE alembic_version SET version_num = '0006'")  # as an older mailbot left it
        conn.execute("DROP INDEX IF EXISTS ix_tickets_next_check_at")
        conn.execute("ALTER TABLE tickets DROP COLUMN next_check_at")
    assert readonly.open_reader(f"sqlite:///{db}") is None  # not read at an older schema
    assert main(["--config", str(config), "status"]) == 0  # migrated first, then read
    assert "0 open" in capsys.readouterr().out
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(head_revision(),)]


def test_an_unreadable_database_is_said_and_exits_75(tmp_path, capsys) -> None:
    db = tmp_path / "broken.db"
    db.write_bytes(b"this is not a database file, " * 100)
    config = write_config(
        tmp_path,
        database_url=f"sqlite:///{db}",
        mailbox_url=f"maildir://{tmp_path / 'md'}",
        smtp_url=f"file://{tmp_path / 'out'}",
    )
    assert main(["--config", str(config), "tickets", "list"]) == 75
    err = capsys.readouterr().err
    assert "database unavailable" in err and "Traceback" not in err
    assert db.read_bytes().startswith(b"this is not a database file")  # never written


@pytest.mark.parametrize(
    "layout",
    ["plain", "config-folder", "relative-paths", "environment", "defaults"],
)
def test_locate_resolves_what_the_full_loader_resolves(layout, tmp_path, monkeypatch) -> None:
    folder = tmp_path / ("a#b?c 50%" if layout == "relative-paths" else "office")
    if layout == "config-folder":
        folder = tmp_path / "checkout" / "config"
    folder.mkdir(parents=True)
    (folder / "var").mkdir()
    path = write_config(
        folder,
        database_url="sqlite:///var/m.db" if layout != "plain" else f"sqlite:///{tmp_path / 'm.db'}",
        mailbox_url="maildir://var/md",
        smtp_url="file://var/out",
    )
    text = path.read_text()
    if layout in ("relative-paths", "config-folder"):
        text = text.replace(f'data_dir = "{folder / "var"}"', 'data_dir = "var"')
    if layout == "defaults":
        text = text.replace('timezone = "Asia/Jakarta"\n', "").replace('profile = "sop-002"\n', "")
        text = text.replace('url = "sqlite:///var/m.db"\n', "")
        text = text.replace(f'data_dir = "{folder / "var"}"', "")
    if layout == "environment":
        monkeypatch.setenv("MAILBOT_DATABASE_URL", f"sqlite:///{tmp_path / 'env.db'}")
        text = text.replace('timezone = "Asia/Jakarta"', 'timezone = "Asia/Makassar"')
        text = text.replace('profile = "sop-002"', 'profile = "sop-003"')
    path.write_text(text)
    full = load_config(path)
    lean = locate(path)
    assert lean.source == full.source and lean.base == full.base_dir
    assert lean.database_url == full.database_url
    assert lean.timezone.key == full.service.timezone
    assert lean.data_dir == full.data_dir
    assert lean.profile == full.profile.id
    assert authentication_of_profiles(lean.profiles_dir) == {
        pid: p.require_authentication for pid, p in full.profiles.items()
    }


def test_locate_says_what_is_wrong_with_the_little_it_reads(tmp_path) -> None:
    path = tmp_path / "mailbot.toml"
    with pytest.raises(ConfigError, match="does not exist"):
        locate(path)
    path.write_text("[service\n")
    with pytest.raises(ConfigError, match="cannot read"):
        locate(path)
    path.write_text('[service]\ntimezone = "Mars/Olympus"\n')
    with pytest.raises(ConfigError) as exc:
        locate(path)
    assert exc.value.problems[0][0] == "service.timezone"
    path.write_text("[database]\nurl = 5\n")
    with pytest.raises(ConfigError, match="must be text"):
        locate(path)


def test_the_read_only_commands_load_neither_sqlalchemy_nor_the_validation(tmp_path) -> None:
    """What keeps them quick (a tenth of a second, bench/footprint.py): checked by what a
    process running them has imported, not by a clock."""
    db = tmp_path / "m.db"
    config = write_config(
        tmp_path,
        database_url=f"sqlite:///{db}",
        mailbox_url=f"maildir://{tmp_path / 'md'}",
        smtp_url=f"file://{tmp_path / 'out'}",
    )
    assert main(["--config", str(config), "tickets", "list"]) == 0  # sets the database up
    probe = (
        "import sys\n"
        "from mailbot.cli import main\n"
        f"for argv in ({str(config)!r}, 'tickets', 'list'), ({str(config)!r}, 'status'),"
        f" ({str(config)!r}, 'tickets', 'show', 'KONS-2026-000001'):\n"
        "    main(['--config', *argv])\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('sqlalchemy', 'pydantic', 'alembic'))\n"
        "print('HEAVY', heavy)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
        check=True,
    )
    assert "HEAVY []" in done.stdout, done.stdout + done.stderr


def _one_ticket(make_app, database_url: str, tmp_path: Path, smtp) -> str:
    """A database at `database_url` with one ticket, set up by the full start; its number."""
    app = make_app(
        database_url=database_url,
        mailbox_url=f"maildir://{tmp_path / 'md'}",
        smtp_url=smtp.url,
        staff=STAFF,
    )
    desk = Desk(app)
    desk.deliver(request_mail())
    return desk.ticket().number


@pytest.mark.parametrize(
    "form",
    ["hash-in-path", "driver-options", "relative-with-options", "sqlite-uri", "relative-sqlite-uri"],
)
def test_sqlite_urls_the_full_start_accepts_are_read_alike(
    form, make_app, tmp_path, smtp, capsys, monkeypatch
) -> None:
    """Every SQLite URL form SQLAlchemy reads names the same file here: an unescaped "#" is part
    of the path (not a fragment), the driver's options (timeout, ...) are not a reason to give
    up, and a form this path does not read itself (uri=true) is read through the full start."""
    folder = tmp_path / "a#b"
    folder.mkdir()
    cwd = tmp_path / "cwd"  # nothing of the database lands where the command was started
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    url = {
        "hash-in-path": f"sqlite:///{folder / 'm.db'}",
        "driver-options": f"sqlite:///{folder / 'm.db'}?timeout=5&check_same_thread=false",
        "relative-with-options": "sqlite:///var/m.db?timeout=5",
        "sqlite-uri": f"sqlite:///file:{tmp_path / 'm.db'}?uri=true&cache=private",
        "relative-sqlite-uri": "sqlite:///file:var/m.db?uri=true&cache=private",
    }[form]
    (tmp_path / "var").mkdir(exist_ok=True)
    number = _one_ticket(make_app, url, tmp_path, smtp)
    config = str(tmp_path / "mailbot.toml")
    capsys.readouterr()
    assert main(["--config", config, "tickets", "list", "--json"]) == 0, capsys.readouterr().err
    assert [t["number"] for t in json.loads(capsys.readouterr().out)] == [number]
    assert main(["--config", config, "status", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["tickets"]["open"] == 1
    assert list(cwd.iterdir()) == []
    if form.endswith("sqlite-uri"):  # the file the URI names, relative to the project
        db = tmp_path / ("var/m.db" if form.startswith("relative") else "m.db")
        assert db.is_file() and db.with_name("m.db.writer").is_file()  # the writers' turn beside it
    else:  # read by the quick path itself
        reader = readonly.open_reader(locate(Path(config)).database_url)
        assert reader is not None
        with reader:
            assert [t.number for t in reader.tickets()] == [number]


def test_postgresql_urls_are_read_as_sqlalchemy_reads_them(make_app, database_url, tmp_path, smtp, capsys):
    """A password with "/", "#" or a space, unescaped, is one SQLAlchemy reads as the password;
    libpq's URI parser would take "/" for the end of the host. Query options are passed on."""
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL URL forms")
    scheme, _, rest = database_url.partition("://")
    user, _, host_db = rest.partition("@")
    # The test server trusts its local connections: a password is sent and not needed.
    url = f"{scheme}://{user.split(':')[0]}:pa/ss w#rd@{host_db}?application_name=mailbot%20status"
    number = _one_ticket(make_app, url, tmp_path, smtp)
    reader = readonly.open_reader(url)
    assert reader is not None
    with reader:
        assert [t.number for t in reader.tickets()] == [number]
    capsys.readouterr()
    assert main(["--config", str(tmp_path / "mailbot.toml"), "tickets", "list", "--json"]) == 0
    assert [t["number"] for t in json.loads(capsys.readouterr().out)] == [number]


def test_status_says_when_the_service_profile_cannot_be_read(tmp_path, capsys) -> None:
    """`status` does not validate the profiles; one it cannot read is named, not passed over."""
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    for source in PROFILES.glob("*.toml"):
        (profiles / source.name).write_text(source.read_text())
    (profiles / "sop-002.toml").write_text("id = 'sop-002'\nrequire_authentication = 'ya'\n")
    config = write_config(
        tmp_path,
        database_url=f"sqlite:///{tmp_path / 'm.db'}",
        mailbox_url=f"maildir://{tmp_path / 'md'}",
        smtp_url=f"file://{tmp_path / 'out'}",
        profiles_dir=PROFILES,
    )
    assert main(["--config", str(config), "status"]) == 0  # sets the database up, shipped profiles
    capsys.readouterr()
    config.write_text(config.read_text().replace(str(PROFILES), str(profiles)))
    assert main(["--config", str(config), "status"]) == 0
    out = capsys.readouterr().out
    assert "WARNING: profile sop-002: its file could not be read; `mailbot check-config` says why" in out


def test_tickets_show_prints_every_line_of_the_question(tmp_path, capsys) -> None:
    """The question runs over several lines: the text form shows them all, not the first."""
    import mailbox

    from tests.conftest import request_mail, write_config

    config = write_config(
        tmp_path,
        database_url=f"sqlite:///{tmp_path / 'm.db'}",
        mailbox_url=f"maildir://{tmp_path / 'md'}",
        smtp_url=f"file://{tmp_path / 'out'}",
        daily_digest=False,
    )
    mailbox.Maildir(tmp_path / "md", create=True).add(request_mail())
    assert main(["--config", str(config), "run", "--once"]) == 0
    capsys.readouterr()
    assert main(["--config", str(config), "tickets", "list", "--json"]) == 0
    number = json.loads(capsys.readouterr().out)[0]["number"]  # numbered on the wall clock's year
    assert main(["--config", str(config), "tickets", "show", number]) == 0
    text = capsys.readouterr().out
    assert "Bagaimana tata cara penyusunan Analisis Beban Kerja untuk jabatan" in text
    assert "fungsional yang baru dibentuk?" in text
