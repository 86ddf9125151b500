"""Settings: read once from the environment into one frozen object that is handed to whoever needs it."""

from __future__ import annotations

import base64
import logging
import os
import secrets
from collections.abc import Mapping
from pathlib import Path

import msgspec

logger = logging.getLogger("onecode.settings")

MASTER_KEY_FILE = "master.key"


class SettingsError(Exception):
    """A setting is present but unusable; the message names it."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Every knob of a OneCode process. Built by `Settings.from_env()`; never mutated."""

    # PostgreSQL conninfo/URL. None means "start the embedded engine under `home`".
    database_url: str | None = None
    # Optional read replica for reports; falls back to the primary.
    database_replica_url: str | None = None
    # Redis URL (redis://, rediss://, unix://). None means "start the embedded engine under `home`".
    redis_url: str | None = None
    # Prefix for every Redis key this process writes, so several deployments (or tests) share one Redis.
    redis_prefix: str = "oc:"
    # Data directory for the embedded engines and the generated master key.
    home: Path = Path(".onecode")
    # 32-byte key that seals brand keys and personal data. Older keys stay readable during rotation.
    master_key: bytes = b""
    old_master_keys: tuple[bytes, ...] = ()
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    # Apply pending migrations when `onecode serve` starts.
    auto_migrate: bool = True
    # Public scan domain printed into codes (lowercase host, up to 20 characters keeps QR version <= 4).
    scan_domain: str = "127.0.0.1:8000"
    # Where people reach the console: the base of the links mailed to them (never the request's Host).
    console_url: str = "http://127.0.0.1:8000"
    # Webhooks may call private or loopback addresses (a development receiver); never in production.
    webhook_private_targets: bool = False
    # Request body limit in bytes for every endpoint; 413 above it.
    max_body_bytes: int = 64 * 1024
    # Largest page any list endpoint returns.
    max_page_size: int = 200
    # The value above which a single lottery prize draws a warning (50,000 CNY, in cents).
    prize_legal_cap_cents: int = 5_000_000
    # Admin API requests per token per minute.
    admin_rate_per_minute: int = 1200
    # Lifetime of newly created API tokens, in days.
    token_ttl_days: int = 365
    # Connection pool bounds per process.
    pool_min_size: int = 2
    pool_max_size: int = 16
    # Seconds a request waits for a pooled connection before answering 503.
    pool_timeout_s: float = 3.0
    # Take the client address from X-Forwarded-For (only behind a proxy that sets it).
    trust_forwarded_for: bool = False
    # Offline IP-to-region databases the operator provides (MaxMind `.mmdb`, e.g. GeoLite2-City, or
    # ip2region `.xdb`, one per IP version): where a scan without a shared location happened. The first
    # that knows an address answers. None: such scans have no region.
    ip_databases: tuple[Path, ...] = ()
    # Scan velocity limits (429 above them).
    scans_per_device_minute: int = 30
    scans_per_ip_minute: int = 600
    scans_per_member_minute: int = 30
    # Months of scan log kept: monthly partitions whose month ended longer ago are dropped (the scans'
    # devices, IP prefixes and locations are personal data). 0 keeps every scan.
    scan_retention_months: int = 0
    log_level: str = "INFO"
    log_json: bool = True
    # One JSON line per request; at thousands of scans a second it costs measurable CPU.
    access_log: bool = True

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the environment once. Generates and stores a master key when none is configured."""
        env = os.environ if env is None else env
        home = Path(env.get("ONECODE_HOME", ".onecode")).absolute()
        master_key, old_keys = _master_keys(env, home)
        return cls(
            database_url=env.get("DATABASE_URL") or None,
            database_replica_url=env.get("DATABASE_REPLICA_URL") or None,
            redis_url=env.get("REDIS_URL") or None,
            redis_prefix=env.get("ONECODE_REDIS_PREFIX", "oc:"),
            home=home,
            master_key=master_key,
            old_master_keys=old_keys,
            host=env.get("ONECODE_HOST", "127.0.0.1"),
            port=_int(env, "ONECODE_PORT", 8000),
            workers=_int(env, "ONECODE_WORKERS", 1),
            auto_migrate=_bool(env, "ONECODE_AUTO_MIGRATE", default=True),
            scan_domain=env.get("ONECODE_SCAN_DOMAIN", "127.0.0.1:8000").lower(),
            console_url=env.get("ONECODE_CONSOLE_URL", "http://127.0.0.1:8000").rstrip("/"),
            webhook_private_targets=_bool(env, "ONECODE_WEBHOOK_PRIVATE_TARGETS", default=False),
            max_body_bytes=_int(env, "ONECODE_MAX_BODY_BYTES", 64 * 1024),
            max_page_size=_int(env, "ONECODE_MAX_PAGE_SIZE", 200),
            prize_legal_cap_cents=_int(env, "ONECODE_PRIZE_LEGAL_CAP_CENTS", 5_000_000),
            admin_rate_per_minute=_int(env, "ONECODE_ADMIN_RATE_PER_MINUTE", 1200),
            token_ttl_days=_int(env, "ONECODE_TOKEN_TTL_DAYS", 365),
            pool_min_size=_int(env, "ONECODE_POOL_MIN_SIZE", 2),
            pool_max_size=_int(env, "ONECODE_POOL_MAX_SIZE", 16),
            pool_timeout_s=_positive_float(env, "ONECODE_POOL_TIMEOUT_S", 3.0),
            trust_forwarded_for=_bool(env, "ONECODE_TRUST_FORWARDED_FOR", default=False),
            ip_databases=_ip_databases(env),
            scans_per_device_minute=_int(env, "ONECODE_SCANS_PER_DEVICE_MINUTE", 30),
            scans_per_ip_minute=_int(env, "ONECODE_SCANS_PER_IP_MINUTE", 600),
            scans_per_member_minute=_int(env, "ONECODE_SCANS_PER_MEMBER_MINUTE", 30),
            scan_retention_months=_retention_months(env),
            log_level=_log_level(env),
            log_json=_bool(env, "ONECODE_LOG_JSON", default=True),
            access_log=_bool(env, "ONECODE_ACCESS_LOG", default=True),
        )

    def with_engines(self, database_url: str, redis_url: str) -> Settings:
        """A copy pointing at concrete engines (used once the embedded ones are up)."""
        return msgspec.structs.replace(self, database_url=database_url, redis_url=redis_url)

    @property
    def all_master_keys(self) -> tuple[bytes, ...]:
        return (self.master_key, *self.old_master_keys)


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None


def _positive_float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number of seconds, got {raw!r}") from None
    if not 0 < value < float("inf"):
        raise SettingsError(f"{name} must be more than 0, got {raw!r}")
    return value


def _ip_databases(env: Mapping[str, str]) -> tuple[Path, ...]:
    parts = env.get("ONECODE_IP_DATABASE", "").split(",")
    paths = tuple(Path(part.strip()) for part in parts if part.strip())
    # Found missing here, not by each worker as it starts (a traceback per worker, and no service).
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        raise SettingsError(f"ONECODE_IP_DATABASE names files that do not exist: {', '.join(missing)}")
    return paths


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _log_level(env: Mapping[str, str]) -> str:
    level = env.get("ONECODE_LOG_LEVEL", "INFO").upper()
    if level not in LOG_LEVELS:
        raise SettingsError(f"ONECODE_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {level!r}")
    return level


def _retention_months(env: Mapping[str, str]) -> int:
    # 0 by default: an upgrade must never drop history nobody chose to drop (deploy/ examples set 24).
    months = _int(env, "ONECODE_SCAN_RETENTION_MONTHS", 0)
    if months < 0:
        raise SettingsError(f"ONECODE_SCAN_RETENTION_MONTHS must be 0 (keep forever) or more, got {months}")
    return months


def _bool(env: Mapping[str, str], name: str, *, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


def _decode_key(name: str, raw: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(raw.strip() + "=" * (-len(raw.strip()) % 4))
    except ValueError:
        raise SettingsError(f"{name} must be base64 (urlsafe) of 32 bytes") from None
    if len(key) != 32:  # noqa: PLR2004 - AES-256 key length
        raise SettingsError(f"{name} must decode to 32 bytes, got {len(key)}")
    return key


def _master_keys(env: Mapping[str, str], home: Path) -> tuple[bytes, tuple[bytes, ...]]:
    old = tuple(
        _decode_key("ONECODE_OLD_MASTER_KEYS", part)
        for part in env.get("ONECODE_OLD_MASTER_KEYS", "").split(",")
        if part.strip()
    )
    if raw := env.get("ONECODE_MASTER_KEY"):
        return _decode_key("ONECODE_MASTER_KEY", raw), old
    key_file = home / MASTER_KEY_FILE
    if key_file.exists():
        return _decode_key(str(key_file), key_file.read_text()), old
    home.mkdir(parents=True, exist_ok=True)
    encoded = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    # Write aside, then link into place: link fails if another process won the race, and nobody
    # ever reads a half-written key file.
    tmp = home / f".{MASTER_KEY_FILE}.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(encoded)
    try:
        os.link(tmp, key_file)
    except FileExistsError:
        return _decode_key(str(key_file), key_file.read_text()), old
    finally:
        tmp.unlink()
    logger.warning(
        "ONECODE_MASTER_KEY is not set: generated a new master key in %s (mode 0600). "
        "Back it up: without it, brand keys and personal data cannot be decrypted. "
        "In production set ONECODE_MASTER_KEY from a secret store.",
        key_file,
    )
    return _decode_key(str(key_file), encoded), old
