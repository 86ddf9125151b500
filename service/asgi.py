"""Entry point for the ASGI server's worker processes: settings from the environment, then the app."""

from __future__ import annotations

import ctypes
from typing import TYPE_CHECKING

from service.app import create_app
from service.logs import configure_logging
from service.settings import Settings

if TYPE_CHECKING:
    from litestar import Litestar


# glibc serves a block this large or larger from its own mapping, returned to the system when freed.
LARGE_BLOCK_BYTES = 256 * 1024
_M_MMAP_THRESHOLD = -3  # mallopt's parameter number, from glibc's malloc.h


def app_from_env() -> Litestar:
    """Called once per worker; the parent `onecode serve` has already set DATABASE_URL and REDIS_URL."""
    settings = Settings.from_env()
    configure_logging(settings.log_level, json=settings.log_json)
    return_large_blocks()
    return create_app(settings)


def return_large_blocks() -> bool:
    """Keep the worker's memory flat: fix glibc's mmap threshold. Left dynamic, it rises to the size of
    the largest block freed so far (the member refresh's id list of a busy minute: megabytes), and later
    blocks that size come from the heap, whose freed space stays with the process: the worker's memory
    rose by a step every few minutes of a promotion (+71 MiB in 5 minutes of first scans). False where
    the C library has no mallopt (musl): nothing to fix there."""
    try:
        libc = ctypes.CDLL(None)
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, LARGE_BLOCK_BYTES))
    except (OSError, AttributeError):
        return False
