"""Settings that are present but unusable stop the process with one line naming them."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from service.cli import main as cli_main
from service.settings import Settings, SettingsError

KEY = "A" * 43  # base64 (urlsafe) of 32 bytes


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("ONECODE_POOL_TIMEOUT_S", "abc", "must be a number of seconds"),
        ("ONECODE_POOL_TIMEOUT_S", "0", "must be more than 0"),
        ("ONECODE_POOL_TIMEOUT_S", "inf", "must be more than 0"),
        ("ONECODE_LOG_LEVEL", "LOUD", "must be one of DEBUG, INFO"),
        ("ONECODE_PORT", "eighty", "must be an integer"),
        ("ONECODE_LOG_JSON", "maybe", "must be true or false"),
        ("ONECODE_IP_DATABASE", "/missing/GeoLite2-City.mmdb", "names files that do not exist"),
    ],
)
def test_unusable_settings_name_themselves(name: str, value: str, message: str, tmp_path: Path) -> None:
    env = {"ONECODE_MASTER_KEY": KEY, "ONECODE_HOME": str(tmp_path), name: value}
    with pytest.raises(SettingsError, match=f"{name} {message}"):
        Settings.from_env(env)


def test_good_values_are_read(tmp_path: Path) -> None:
    env = {"ONECODE_MASTER_KEY": KEY, "ONECODE_POOL_TIMEOUT_S": "1.5", "ONECODE_LOG_LEVEL": "debug"}
    settings = Settings.from_env({**env, "ONECODE_HOME": str(tmp_path)})
    assert (settings.pool_timeout_s, settings.log_level) == (1.5, "DEBUG")


def test_the_command_line_says_it_in_one_line(tmp_path: Path) -> None:
    env = {"ONECODE_MASTER_KEY": KEY, "ONECODE_HOME": str(tmp_path), "ONECODE_POOL_TIMEOUT_S": "abc"}
    result = CliRunner().invoke(cli_main, ["partitions", "--dry-run"], env=env)
    assert result.exit_code == 2  # click: a usage error
    assert "ONECODE_POOL_TIMEOUT_S must be a number of seconds" in result.output
    assert "Traceback" not in result.output
