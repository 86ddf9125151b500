"""Entry point for the ASGI server's worker processes: settings from the environment, then the app."""

from __future__ import annotations

from typing import TYPE_CHECKING

from service.app import create_app
from service.logs import configure_logging
from service.settings import Settings

if TYPE_CHECKING:
    from litestar import Litestar


def app_from_env() -> Litestar:
    """Called once per worker; the parent `onecode serve` has already set DATABASE_URL and REDIS_URL."""
    settings = Settings.from_env()
    configure_logging(settings.log_level, json=settings.log_json)
    return create_app(settings)
