"""The "data belum lengkap" mail shows the applicant how to reply: one field a line, as the
intake reads it. An applicant who copies the example and fills it in completes the request."""

from __future__ import annotations

import email
import email.policy
import re
from html import unescape

import pytest

from mailbot.core.workflow import State
from tests.conftest import request_mail
from tests.desk import APPLICANT, HEAD, Desk, text_of

# Name and NIP only: the work unit, the position and the phone are missing.
INCOMPLETE = (
    "Yth. Tim Sekretariat,\n\n"
    "Nama Lengkap : Rina Kartika\n"
    "NIP          : 19860926 201505 2 001\n\n"
    "Permasalahan:\n"
    "Bagaimana tata cara penyusunan Analisis Beban Kerja untuk jabatan\n"
    "fungsional yang baru dibentuk?\n\n"
    "Hormat saya,\nRina\n"
)
VALUES = {
    "Unit Kerja": "Biro Perencanaan, Kementerian Desa PDTT",
    "Jabatan": "Analis Kebijakan Ahli Muda",
    "Nomor Telepon": "0812-3456-7890",
}


def _html_of(raw: bytes) -> str:
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    return str(msg.get_body(("html",)).get_content())


def _example(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if re.search(r":\s*\.\.\.", line)]


@pytest.mark.parametrize("part", ["text", "html"])
def test_the_example_is_one_field_a_line_and_filling_it_in_completes_the_request(
    desk: Desk, part: str
) -> None:
    desk.deliver(request_mail(body=INCOMPLETE))
    asked = desk.last(APPLICANT, "missing_fields")
    if part == "text":
        body = text_of(asked)
    else:
        pre = re.search(r"<pre>(.*?)</pre>", _html_of(asked.raw), re.DOTALL)
        assert pre is not None
        body = unescape(pre.group(1))
    example = _example(body)
    assert len(example) == 3, body
    for line in example:
        assert sum(label in line for label in VALUES) == 1, line  # one field a line

    def fill(line: str) -> str:
        label = next(label for label in VALUES if label in line)
        return line.replace("...", VALUES[label])

    desk.reply(asked, APPLICANT, "\n".join(fill(line) for line in example) + "\n\nTerima kasih.\n")
    ticket = desk.ticket()
    assert ticket.state is not State.AWAITING_INFO
    assert ticket.fields["unit"] == VALUES["Unit Kerja"]
    assert ticket.fields["position"] == VALUES["Jabatan"]
    assert desk.last(HEAD, "notify")  # complete: the head is asked for a disposition


def test_the_acknowledgment_lists_the_steps_still_ahead(desk: Desk) -> None:
    """'Tahapan selanjutnya': the applicant's own step (sending the request) is done; the list
    begins with the first step mailbot or staff still take."""
    desk.deliver(request_mail())
    text = text_of(desk.last(APPLICANT, "ack"))
    ahead = text.split("Tahapan selanjutnya")[1].split("Jawaban akan kami sampaikan")[0]
    assert "Pengajuan konsultasi oleh pengguna layanan" not in ahead
    assert "1. Pencatatan dalam riwayat konsultasi" in ahead
    html = _html_of(desk.last(APPLICANT, "ack").raw)
    assert "Pengajuan konsultasi oleh pengguna layanan" not in html.split("Tahapan selanjutnya")[1]
