"""Masking of personal data (UU 27/2022): NIK, NIP and phone numbers never appear whole in logs."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

# A number in free text: a digit, or + and a digit, that follows no digit; then 7 to 24 digits,
# spaces, dots or dashes; then a digit that no digit follows. The pattern begins with its first
# character, [+\d], and looks back from there ((?<!\d.): no digit before it): one that begins
# with the lookbehind is tried at every character of the text, this one lets the engine skip to
# the next + or digit (a quarter of the time on prose, bench/README.md). Linear: the run is
# bounded (STYLE.md habit 10).
_LONG_NUMBER = re.compile(r"[+\d](?<!\d.)(?:(?<=\+)\d|(?<=\d))[\d .\-]{7,24}\d(?!\d)")
_NOT_DIGIT = re.compile(r"\D")


def mask_number(value: str) -> str:
    """`3273010101900001` → `3273********0001`; keeps 4 digits at each end (3 for short numbers)."""
    digits = _NOT_DIGIT.sub("", value)
    if len(digits) < 8:
        return "*" * len(digits)
    keep = 4 if len(digits) >= 12 else 2
    prefix = "+" if value.strip().startswith("+") else ""
    return prefix + digits[:keep] + "*" * (len(digits) - 2 * keep) + digits[-keep:]


_IPV4 = re.compile(r"^\d{1,3}(?:\.\d{1,3}){3}$")


def _mask_match(m: re.Match[str]) -> str:
    value = m.group()
    if _IPV4.match(value) or sum(c.isdigit() for c in value) < 9:
        return value  # an address or a short number is no NIK, NIP or phone
    return mask_number(value)


def mask_text(text: str) -> str:
    """Mask every number of 9 or more digits (with spaces, dots or dashes inside) in free text."""
    return _LONG_NUMBER.sub(_mask_match, text)


class MaskingFilter(logging.Filter):
    """A logging filter that masks identity and phone numbers in every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            return True
        masked = mask_text(message)
        if masked != message:
            record.msg = masked
            record.args = None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers: time (ISO 8601, UTC), level, logger, message,
    and the exception's text when there is one. The message is the masked one (MaskingFilter runs
    first, on the handler)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = mask_text(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False)


def masked_stderr_handler(log_format: str = "text") -> logging.Handler:
    """A stderr handler whose every record goes through MaskingFilter; `json` for log shippers."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(MaskingFilter())
    return handler


def setup_worker_logging(level: int = logging.WARNING) -> None:
    """In a spawned process (the parse workers): log through the masking filter. Such a process
    starts without the parent's handlers, and logging's last-resort handler would print a
    parser's warning (which may quote a header) unmasked."""
    root = logging.getLogger()
    root.handlers[:] = [masked_stderr_handler()]
    root.setLevel(level)
