"""What the app holds for its lifetime: settings, the PostgreSQL pool and the Redis client."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from psycopg_pool import AsyncConnectionPool
    from redis.asyncio import Redis

    from service.settings import Settings


@dataclass(frozen=True, slots=True)
class AppState:
    settings: Settings
    pool: AsyncConnectionPool
    redis: Redis
