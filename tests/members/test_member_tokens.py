"""Member tokens across a master-key rotation: members stay signed in, forgeries stay out."""

from __future__ import annotations

import os
import uuid

import pytest

from campaigns.members.errors import InvalidMemberToken
from campaigns.members.tokens import MemberRef, MemberTokens

OLD, NEW = os.urandom(32), os.urandom(32)
REF = MemberRef(uuid.uuid4(), uuid.uuid4(), enrolled=True)


def test_a_token_signed_under_the_old_key_still_reads_after_rotation() -> None:
    token = MemberTokens(OLD).issue(REF)
    assert MemberTokens(NEW, [OLD]).read(token) == REF


def test_new_tokens_are_signed_under_the_current_key_only() -> None:
    token = MemberTokens(NEW, [OLD]).issue(REF)
    assert MemberTokens(NEW).read(token) == REF
    with pytest.raises(InvalidMemberToken):
        MemberTokens(OLD).read(token)


def test_once_the_old_key_is_dropped_its_tokens_are_refused() -> None:
    token = MemberTokens(OLD).issue(REF)
    with pytest.raises(InvalidMemberToken):
        MemberTokens(NEW).read(token)


def test_a_changed_payload_is_refused_under_every_key() -> None:
    token = MemberTokens(OLD).issue(REF)
    payload, _, signature = token.rpartition(".")
    forged = payload.replace(REF.member_id.hex, uuid.uuid4().hex) + "." + signature
    with pytest.raises(InvalidMemberToken):
        MemberTokens(NEW, [OLD]).read(forged)


def test_only_tokens_under_the_current_key_are_current() -> None:
    """The scan answer replaces a token that is not (tests/service/test_reseal.py scans with one)."""
    rotated = MemberTokens(NEW, [OLD])
    assert rotated.is_current(rotated.issue(REF))
    assert not rotated.is_current(MemberTokens(OLD).issue(REF))
    assert not rotated.is_current("not a token")
