"""What the app holds for its lifetime: settings, the PostgreSQL pool and the Redis client."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from redis.asyncio import Redis, RedisCluster

if TYPE_CHECKING:
    from psycopg_pool import AsyncConnectionPool

    from antifraud.blocklist import Blocklist
    from antifraud.regions import IpRegions
    from antifraud.scanlog import ScanWriter
    from antifraud.signals import Signals
    from campaigns.book import CampaignBook
    from campaigns.members.consents import LocationWithdrawals
    from campaigns.members.enrolment import Enrolment
    from campaigns.members.phones import MemberVault
    from campaigns.members.tokens import MemberTokens
    from codegen.registry import CodeRegistry
    from service.registry_follower import RegistryFollower
    from service.settings import Settings
    from service.users import Notifier


# One Redis server (or a proxy in front of several) or a Redis Cluster; see service.app.make_redis.
RedisClient = Redis | RedisCluster


@dataclass(frozen=True, slots=True)
class AppState:
    settings: Settings
    pool: AsyncConnectionPool
    # Read-only reports: the replica's pool when DATABASE_REPLICA_URL is set, else `pool` itself.
    report_pool: AsyncConnectionPool
    redis: RedisClient
    # In-process copy of products, keys and batches: verification does no I/O.
    registry: CodeRegistry
    blocklist: Blocklist
    registry_follower: RegistryFollower
    # Group-commit writer of the scan log (its own connection, outside the pool).
    writer: ScanWriter
    signals: Signals
    member_tokens: MemberTokens
    vault: MemberVault
    enrolment: Enrolment
    # Members who withdrew location consent: their scans' locations are not used (changes polled every 5 s).
    location_withdrawals: LocationWithdrawals
    # In-process copy of the live campaigns: which may reward a scan, decided without I/O.
    campaigns: CampaignBook
    # Staff email (console invitations, password resets); the development adapter records it.
    notifier: Notifier
    # Where a scan without a shared location happened, when the operator provides an IP database.
    ip_regions: IpRegions | None = None
