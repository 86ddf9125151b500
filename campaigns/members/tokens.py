"""Member tokens: a signed, self-contained reference to a member, kept by the consumer's browser."""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from collections.abc import Sequence

import msgspec

from campaigns.members.errors import InvalidMemberToken

_VERSION = "m1"


class MemberRef(msgspec.Struct, frozen=True):
    member_id: uuid.UUID
    brand_id: uuid.UUID
    enrolled: bool


def derive_key(master_key: bytes, purpose: str) -> bytes:
    """A sub-key per purpose, so no two features ever share key material."""
    return hmac.new(master_key, f"onecode:{purpose}".encode(), hashlib.sha256).digest()


class MemberTokens:
    """Signs with the current master key's sub-key; reads tokens signed under the old keys too, so a
    master-key rotation does not log out every member (their next scan replaces the token: is_current)."""

    def __init__(self, master_key: bytes, old_master_keys: Sequence[bytes] = ()) -> None:
        self._key = derive_key(master_key, "member-token")
        self._old_keys = tuple(derive_key(old, "member-token") for old in old_master_keys)

    def issue(self, ref: MemberRef) -> str:
        payload = f"{_VERSION}.{ref.member_id.hex}.{ref.brand_id.hex}.{int(ref.enrolled)}"
        return f"{payload}.{self._sign(payload)}"

    def read(self, token: str, *, brand_id: uuid.UUID | None = None) -> MemberRef:
        """The member a token names; InvalidMemberToken when forged, malformed or for another brand."""
        payload, _, signature = token.rpartition(".")
        if not payload or not any(
            hmac.compare_digest(signature, self._sign(payload, key)) for key in (self._key, *self._old_keys)
        ):
            raise InvalidMemberToken("the member token is not valid")
        version, member_hex, brand_hex, enrolled = payload.split(".")
        if version != _VERSION or enrolled not in {"0", "1"}:
            raise InvalidMemberToken("the member token is not valid")
        ref = MemberRef(uuid.UUID(hex=member_hex), uuid.UUID(hex=brand_hex), enrolled == "1")
        if brand_id is not None and ref.brand_id != brand_id:
            raise InvalidMemberToken("the member token belongs to another brand")
        return ref

    def is_current(self, token: str) -> bool:
        """Signed under the current master key: a token signed under an old one is replaced when next
        answered, so that the old key can go without signing its members out."""
        payload, _, signature = token.rpartition(".")
        return bool(payload) and hmac.compare_digest(signature, self._sign(payload))

    def _sign(self, payload: str, key: bytes | None = None) -> str:
        digest = hmac.new(key or self._key, payload.encode(), hashlib.sha256).digest()[:18]
        return base64.urlsafe_b64encode(digest).decode()
