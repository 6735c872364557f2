"""The masking regex, written for speed (core/masking.py), masks exactly what its plain form does,
and stays linear on hostile text (STYLE.md habit 10)."""

from __future__ import annotations

import random
import re
import time

from mailbot.core.masking import _mask_match, mask_text

# The rule in its plain form: a +, if any, and a digit that follows no digit; 7 to 24 digits,
# spaces, dots or dashes; a digit that no digit follows. The engine tries a pattern that begins
# with a lookbehind at every character; mailbot's begins with the character class instead.
PLAIN = re.compile(r"(?<!\d)\+?\d[\d .\-]{7,24}\d(?!\d)")

PIECES = ["0", "1", "9", " ", ".", "-", "+", "a", "\n", "٣", "１", "  ", "62", "08", "+62 ", "1.2.3.4"]


def test_masks_what_the_plain_rule_masks() -> None:
    rnd = random.Random(17)
    for _ in range(30_000):
        text = "".join(rnd.choice(PIECES) for _ in range(rnd.randint(0, 40)))
        assert mask_text(text) == PLAIN.sub(_mask_match, text), text


def test_examples() -> None:
    assert mask_text("HP +62 812-3456-7890, NIK 3273014101900001.") == (
        "HP +6281*****7890, NIK 3273********0001."
    )
    assert mask_text("x+62 812-3456-7890") == "x+6281*****7890"
    assert mask_text("1+62 812-3456-7890") == "1+6281*****7890"  # the + after a digit is kept apart
    assert mask_text("server 192.168.100.200 and 2026") == "server 192.168.100.200 and 2026"


def test_linear_on_hostile_text() -> None:
    def seconds(n: int) -> float:
        text = ("1 " * 12 + "x") * (n // 25)
        start = time.process_time()
        mask_text(text)
        return time.process_time() - start

    small, large = seconds(20_000), seconds(200_000)
    assert large < max(small, 0.002) * 30  # ten times the text, not a hundred times the time
