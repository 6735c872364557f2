"""The event loop every command runs its coroutines on.

uvloop (libuv) when it is installed, else the standard library's loop. The sending child spends
most of its time in the loop's socket and transport code, which uvloop does in C: a quarter less
CPU per mail sent (bench/profile_sending.py). `MAILBOT_EVENT_LOOP=asyncio` keeps the standard loop.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

ENV_EVENT_LOOP = "MAILBOT_EVENT_LOOP"


def loop_name() -> str:
    """The loop `run` uses in this process: "uvloop" or "asyncio"."""
    if os.environ.get(ENV_EVENT_LOOP, "").strip().lower() == "asyncio":
        return "asyncio"
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(main)` on the loop `loop_name` names."""
    if loop_name() == "uvloop":
        import uvloop

        return uvloop.run(main)
    return asyncio.run(main)
