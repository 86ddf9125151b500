"""Logs stay structured once the app is built: one JSON object a line, with the request's id."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

from service.app import create_app
from service.logs import configure_logging, reset_request_id, set_request_id
from service.settings import Settings


def test_building_the_app_keeps_the_json_log_handler(settings: Settings) -> None:
    """A worker configures logging, then builds the app: nothing in the app may take the root logger
    over (a throwaway litestar app, built for the scan's OpenAPI contract, did: plain text lines)."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    try:
        configure_logging("INFO", json=True)
        create_app(settings)
        stream = io.StringIO()
        [handler] = root.handlers
        assert isinstance(handler, logging.StreamHandler)
        handler.setStream(stream)
        token = set_request_id("req-logs-1")
        try:
            logging.getLogger("onecode.test").warning("the scan log is unavailable")
        finally:
            reset_request_id(token)
        line: dict[str, Any] = json.loads(stream.getvalue().strip().splitlines()[-1])
        assert line["event"] == "the scan log is unavailable"
        assert line["request_id"] == "req-logs-1"
        assert line["level"] == "warning"
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
