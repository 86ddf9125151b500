"""Phone numbers: normalised to E.164, sealed at rest, found again through a keyed blind index."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Sequence

import phonenumbers

from campaigns.members.errors import InvalidMemberInput
from campaigns.members.tokens import derive_key
from codegen import keys

DEFAULT_REGION = "CN"


def normalize_phone(raw: str, region: str = DEFAULT_REGION) -> str:
    """E.164 (`+8613800138000`) from what people type: spaces, dashes, +86, 0086 prefixes."""
    if len(raw) > 32:  # noqa: PLR2004 - longer than any phone number with formatting
        raise InvalidMemberInput("phone", "not a phone number")
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        raise InvalidMemberInput("phone", "not a phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidMemberInput("phone", "not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


class PhoneVault:
    """Seals phones under the master key and derives their blind index (HMAC, per brand)."""

    def __init__(self, master_keys: Sequence[bytes]) -> None:
        self._master_keys = tuple(master_keys)
        self._index_key = derive_key(self._master_keys[0], "phone-index")

    def blind_index(self, brand_id: uuid.UUID, phone_e164: str) -> bytes:
        return hmac.new(self._index_key, f"{brand_id}:{phone_e164}".encode(), hashlib.sha256).digest()

    def seal(self, brand_id: uuid.UUID, phone_e164: str) -> bytes:
        return keys.seal(self._master_keys[0], phone_e164.encode(), aad=f"phone:{brand_id}".encode())

    def unseal(self, brand_id: uuid.UUID, sealed: bytes) -> str:
        return keys.unseal(self._master_keys, sealed, aad=f"phone:{brand_id}".encode()).decode()


def mask(phone_e164: str) -> str:
    """`+86138****8000`: enough for a person to recognise their own number."""
    return phone_e164[:-8] + "****" + phone_e164[-4:] if len(phone_e164) > 8 else "****"  # noqa: PLR2004
