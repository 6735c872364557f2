"""`mailbot export mbox` as an archivist runs it: a ticket number that does not exist is refused,
and an archive already on disk is never replaced by an empty export."""

from __future__ import annotations

from mailbot.cli import main
from tests.conftest import request_mail
from tests.desk import Desk


def test_an_unknown_ticket_is_refused_and_the_archive_left_untouched(desk: Desk, tmp_path, capsys) -> None:
    desk.deliver(request_mail())
    number = desk.ticket().number
    config = ["--config", str(tmp_path / "mailbot.toml")]
    archive = tmp_path / "arsip.mbox"
    assert main([*config, "export", "mbox", str(archive), "--ticket", number]) == 0
    kept = archive.read_bytes()
    assert kept.startswith(b"From ")
    capsys.readouterr()

    assert main([*config, "export", "mbox", str(archive), "--ticket", "KONS-2026-999"]) == 1
    out, err = capsys.readouterr()
    assert "no ticket KONS-2026-999" in err and "written" not in out
    assert archive.read_bytes() == kept

    # A selection that matches nothing does not empty the archive either.
    assert main([*config, "export", "mbox", str(archive), "--from", "2030-01-01"]) == 1
    assert "no ticket matches" in capsys.readouterr().err
    assert archive.read_bytes() == kept
    assert [p.name for p in tmp_path.glob("arsip.mbox*")] == ["arsip.mbox"]  # no draft left behind
