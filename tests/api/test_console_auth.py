"""Console accounts: invitation, sign-in with a session cookie and CSRF, lockout, TOTP, password reset."""

from __future__ import annotations

import datetime as dt
import re
import time
import uuid
from typing import Any

import psycopg
import pyotp
import pytest
from litestar.testing import AsyncTestClient

from service import users
from service.errors import InvalidField, LimitReached
from service.guards import CONSOLE_COOKIE
from service.models import Role
from service.routes import console_auth
from service.settings import Settings
from tests.api.test_errors import assert_problem
from tests.conftest import Tenant
from tests.races import assert_last_place_taken_once

PASSWORD = "correct horse battery"


async def last_mail(db: psycopg.AsyncConnection[Any], recipient: str) -> str:
    cur = await db.execute(
        "SELECT body FROM notification_outbox WHERE recipient = %s ORDER BY id DESC LIMIT 1", (recipient,)
    )
    row = await cur.fetchone()
    assert row is not None
    match = re.search(r"/console/[a-z-]+/([A-Za-z0-9_-]+)$", row[0])
    assert match is not None
    return match.group(1)


async def invited_user(
    client: AsyncTestClient[Any], db: psycopg.AsyncConnection[Any], tenant: Tenant, email: str, role: str
) -> Any:
    invited = await client.post(
        "/v1/users/invitations", json={"email": email, "role": role}, headers=tenant.headers(Role.BRAND_ADMIN)
    )
    assert invited.status_code == 201, invited.text
    token = await last_mail(db, email.lower())
    accepted = await client.post("/console/invitations/accept", json={"token": token, "password": PASSWORD})
    assert accepted.status_code == 201, accepted.text
    return accepted.json()


async def sign_in(client: AsyncTestClient[Any], email: str, password: str = PASSWORD, **extra: Any) -> Any:
    return await client.post("/console/login", json={"email": email, "password": password, **extra})


class TestConsoleAccounts:
    async def test_successful_sign_ins_do_not_use_up_the_networks_attempts(
        self, client: AsyncTestClient[Any], db: psycopg.AsyncConnection[Any], tenant_a: Tenant
    ) -> None:
        """An office behind one address signs in at nine: more people than the per-network limit of
        attempts, all with the right password, all get in; a wrong password still counts."""
        await invited_user(client, db, tenant_a, "office@example.com", "marketer")
        for _ in range(console_auth.LOGINS_PER_NETWORK + 2):
            client.cookies.clear()
            assert (await sign_in(client, "office@example.com")).status_code == 200
        wrong = [(await sign_in(client, "office@example.com", "not it")).status_code for _ in range(11)]
        assert wrong[-1] == 429

    async def test_a_new_invitation_replaces_the_open_one(
        self, client: AsyncTestClient[Any], db: psycopg.AsyncConnection[Any], tenant_a: Tenant
    ) -> None:
        """Invited as auditor, then again as marketer: the first link no longer opens an account."""
        admin = tenant_a.headers(Role.BRAND_ADMIN)
        body = {"email": "li@example.com", "role": "auditor"}
        assert (await client.post("/v1/users/invitations", json=body, headers=admin)).status_code == 201
        first = await last_mail(db, "li@example.com")
        body["role"] = "marketer"
        assert (await client.post("/v1/users/invitations", json=body, headers=admin)).status_code == 201
        second = await last_mail(db, "li@example.com")
        assert second != first
        stale = await client.post("/console/invitations/accept", json={"token": first, "password": PASSWORD})
        assert (
            assert_problem(stale, 422, "validation-error")["detail"]
            == "the invitation is unknown, used or expired"
        )
        accepted = await client.post(
            "/console/invitations/accept", json={"token": second, "password": PASSWORD}
        )
        assert accepted.status_code == 201, accepted.text
        assert accepted.json()["role"] == "marketer"

    async def test_invite_accept_sign_in_and_use_the_api_with_the_session(
        self, client: AsyncTestClient[Any], db: psycopg.AsyncConnection[Any], tenant_a: Tenant
    ) -> None:
        user = await invited_user(client, db, tenant_a, "Mei@Example.com", "marketer")
        assert (user["email"], user["role"]) == ("mei@example.com", "marketer")
        cur = await db.execute("SELECT password_hash FROM console_users")
        assert (await cur.fetchone() or [""])[0].startswith("$argon2id$")
        signed_in = await sign_in(client, "MEI@example.com")
        assert signed_in.status_code == 200, signed_in.text
        cookie = signed_in.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        csrf = signed_in.json()["csrf_token"]
        assert (await client.get("/console/me")).json()["email"] == "mei@example.com"
        # The session works on the API with the user's role: a marketer reads campaigns, not tokens.
        assert (await client.get("/v1/campaigns")).status_code == 200
        assert (await client.get("/v1/tokens")).status_code == 403
        # Writes need the CSRF token as well as the cookie.
        body = {"name": "VIP"}
        assert_problem(await client.post("/v1/tags", json=body), 403, "forbidden")
        assert (await client.post("/v1/tags", json=body, headers={"X-CSRF-Token": csrf})).status_code == 201
        audit = await client.get(
            "/v1/audit", params={"action": "tag.create"}, headers=tenant_a.headers(Role.AUDITOR)
        )
        assert audit.json()["items"][0]["actor"] == f"user:{user['id']}"
        logged_out = await client.post("/console/logout", headers={"X-CSRF-Token": csrf})
        assert logged_out.status_code == 204
        client.cookies.set(CONSOLE_COOKIE, cookie.split(";")[0].split("=", 1)[1])
        assert_problem(await client.get("/console/me"), 401, "unauthenticated")

    async def test_failures_lock_the_account_and_the_answer_never_says_who_exists(
        self, client: AsyncTestClient[Any], db: psycopg.AsyncConnection[Any], tenant_a: Tenant
    ) -> None:
        await invited_user(client, db, tenant_a, "ops@example.com", "operations")
        unknown = await sign_in(client, "nobody@example.com")
        wrong = await sign_in(client, "ops@example.com", "wrong password!")
        assert_problem(unknown, 401, "login-failed")
        assert_problem(wrong, 401, "login-failed")
        assert unknown.json()["detail"] == wrong.json()["detail"]
        for _ in range(4):
            assert_problem(await sign_in(client, "ops@example.com", "still wrong!!"), 401, "login-failed")
        # Locked now: a wrong password and the right one get the answer an unknown address gets, so
        # that the lock confirms no guess; the audit tells them apart.
        locked_wrong = await sign_in(client, "ops@example.com", "sixth wrong one")
        locked_right = await sign_in(client, "ops@example.com")
        for answer in (locked_wrong, locked_right):
            assert_problem(answer, 401, "login-failed")
            assert answer.json()["detail"] == unknown.json()["detail"]
            assert "retry-after" not in answer.headers
        cur = await db.execute(
            "SELECT after->>'result' FROM audit_log WHERE action = 'console.login_refused'"
            " ORDER BY id DESC LIMIT 2"
        )
        assert [row[0] for row in await cur.fetchall()] == ["locked", "failed"]
        await db.execute("UPDATE console_users SET locked_until = now() - interval '1 second'")
        assert (await sign_in(client, "ops@example.com")).status_code == 200
        # More attempts per address than the window allows: limited before any password check.
        limited = [(await sign_in(client, "ops@example.com", "guess")).status_code for _ in range(5)]
        assert limited[-1] == 429
        audit = await client.get(
            "/v1/audit", params={"action": "console.login_refused"}, headers=tenant_a.headers(Role.AUDITOR)
        )
        assert len(audit.json()["items"]) >= 5

    async def test_totp_second_factor(
        self, client: AsyncTestClient[Any], db: psycopg.AsyncConnection[Any], tenant_a: Tenant
    ) -> None:
        await invited_user(client, db, tenant_a, "fin@example.com", "finance")
        csrf = (await sign_in(client, "fin@example.com")).json()["csrf_token"]
        setup = await client.post("/console/totp/setup", headers={"X-CSRF-Token": csrf})
        assert setup.status_code == 200, setup.text
        totp = pyotp.TOTP(setup.json()["secret"])
        assert setup.json()["otpauth_uri"].startswith("otpauth://totp/OneCode:fin%40example.com")
        wrong = await client.post(
            "/console/totp/confirm", json={"code": "000000"}, headers={"X-CSRF-Token": csrf}
        )
        assert_problem(wrong, 422, "validation-error")
        confirm_code = totp.now()
        confirmed = await client.post(
            "/console/totp/confirm", json={"code": confirm_code}, headers={"X-CSRF-Token": csrf}
        )
        assert confirmed.json()["totp_enabled_at"] is not None
        client.cookies.clear()
        assert_problem(await sign_in(client, "fin@example.com"), 401, "totp-required")
        assert_problem(await sign_in(client, "fin@example.com", totp_code="000000"), 401, "login-failed")
        # Not six digits: named as the code (the sign-in page then asks for the code, not the password).
        malformed = await sign_in(client, "fin@example.com", totp_code="12345a")
        assert assert_problem(malformed, 422, "validation-error")["errors"][0]["field"] == "totp_code"
        # Each code signs in once (RFC 6238, 5.2): the confirming code is spent; the next step's works once.
        assert_problem(await sign_in(client, "fin@example.com", totp_code=confirm_code), 401, "login-failed")
        next_code = totp.at(time.time() + 30)
        assert (await sign_in(client, "fin@example.com", totp_code=next_code)).status_code == 200
        client.cookies.clear()
        assert_problem(await sign_in(client, "fin@example.com", totp_code=next_code), 401, "login-failed")
        cur = await db.execute("SELECT totp_secret_sealed FROM console_users")
        assert setup.json()["secret"].encode() not in (await cur.fetchone() or [b""])[0]

    async def test_password_reset_and_invitation_rules(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        tenant_a: Tenant,
        tenant_b: Tenant,
    ) -> None:
        await invited_user(client, db, tenant_a, "cs@example.com", "customer_service")
        for email in ("cs@example.com", "ghost@example.com"):
            assert (await client.post("/console/password-resets", json={"email": email})).status_code == 202
        cur = await db.execute(
            "SELECT count(*) FROM notification_outbox WHERE recipient = 'ghost@example.com'"
        )
        assert await cur.fetchone() == (0,)
        signed_in = await sign_in(client, "cs@example.com")
        token = await last_mail(db, "cs@example.com")
        weak = await client.post(
            "/console/password-resets/confirm", json={"token": token, "password": "short"}
        )
        assert_problem(weak, 422, "validation-error")
        token = await last_mail(db, "cs@example.com")
        await client.post("/console/password-resets", json={"email": "cs@example.com"})
        token = await last_mail(db, "cs@example.com")
        reset = await client.post(
            "/console/password-resets/confirm", json={"token": token, "password": "a whole new phrase"}
        )
        assert reset.status_code == 200, reset.text
        assert signed_in.status_code == 200
        assert_problem(await client.get("/console/me"), 401, "unauthenticated")  # every session ended
        assert_problem(await sign_in(client, "cs@example.com"), 401, "login-failed")
        assert (await sign_in(client, "cs@example.com", "a whole new phrase")).status_code == 200
        reused = await client.post(
            "/console/password-resets/confirm", json={"token": token, "password": "yet another phrase"}
        )
        assert_problem(reused, 422, "validation-error")
        admin = tenant_a.headers(Role.BRAND_ADMIN)
        taken = await client.post(
            "/v1/users/invitations", json={"email": "cs@example.com", "role": "marketer"}, headers=admin
        )
        assert_problem(taken, 409, "conflict")
        no_distributor = await client.post(
            "/v1/users/invitations", json={"email": "d@example.com", "role": "distributor"}, headers=admin
        )
        assert_problem(no_distributor, 422, "validation-error")
        platform = await client.post(
            "/v1/users/invitations", json={"email": "p@example.com", "role": "platform_admin"}, headers=admin
        )
        assert platform.status_code in {400, 422}
        marketer = await client.post(
            "/v1/users/invitations",
            json={"email": "m@example.com", "role": "marketer"},
            headers=tenant_a.headers(Role.MARKETER),
        )
        assert marketer.status_code == 403
        listed = await client.get("/v1/users", headers=tenant_b.headers(Role.BRAND_ADMIN))
        assert listed.json() == {"items": [], "next_cursor": None}
        expired_at = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
        await client.post(
            "/v1/users/invitations", json={"email": "late@example.com", "role": "auditor"}, headers=admin
        )
        late_token = await last_mail(db, "late@example.com")
        await db.execute(
            "UPDATE console_invitations SET expires_at = %s WHERE email = 'late@example.com'", (expired_at,)
        )
        late = await client.post(
            "/console/invitations/accept", json={"token": late_token, "password": PASSWORD}
        )
        assert_problem(late, 422, "validation-error")
        # A brand's people list comes whole: accounts and open invitations are capped together.
        await db.execute(
            "INSERT INTO console_invitations (token_hash, brand_id, email, role, invited_by, expires_at)"
            " SELECT sha256(g::text::bytea), %s, 'bulk' || g || '@example.com', 'auditor', 'test',"
            " now() + interval '1 day' FROM generate_series(1, %s) g",
            (tenant_a.brand_id, users.MAX_ACCOUNTS),
        )
        capped = await client.post(
            "/v1/users/invitations", json={"email": "one.more@example.com", "role": "auditor"}, headers=admin
        )
        assert assert_problem(capped, 409, "limit-reached")["detail"].startswith("a brand has at most 2000")


class TestOpenInvitations:
    """A brand admin sees the invitations still open and revokes one; other brands never see or touch them."""

    async def test_open_invitations_are_listed_newest_first_with_who_sent_them(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        tenant_a: Tenant,
        tenant_b: Tenant,
    ) -> None:
        """Only open ones (not accepted, expired or replaced), newest first, a page at a time; the sender is
        named (a token's name, a person's email), never a raw id."""
        admin = tenant_a.headers(Role.BRAND_ADMIN)
        for email, role in (("old@example.com", "auditor"), ("late@example.com", "marketer")):
            sent = await client.post(
                "/v1/users/invitations", json={"email": email, "role": role}, headers=admin
            )
            assert sent.status_code == 201, sent.text
        await db.execute(
            "UPDATE console_invitations SET expires_at = now() - interval '1 second'"
            " WHERE email = 'late@example.com'"
        )
        await invited_user(client, db, tenant_a, "boss@example.com", "brand_admin")  # accepted: not listed
        csrf = {"X-CSRF-Token": (await sign_in(client, "boss@example.com")).json()["csrf_token"]}
        by_person = await client.post(
            "/v1/users/invitations", json={"email": "New@Example.com", "role": "finance"}, headers=csrf
        )
        assert by_person.status_code == 201, by_person.text
        client.cookies.clear()
        again = {"email": "old@example.com", "role": "operations"}  # replaces the first invitation
        replaced = await client.post("/v1/users/invitations", json=again, headers=admin)

        listed = await client.get("/v1/users/invitations", headers=admin)
        assert listed.status_code == 200, listed.text
        assert listed.json()["next_cursor"] is None
        items = listed.json()["items"]
        assert [(i["email"], i["role"], i["invited_by"]) for i in items] == [
            ("old@example.com", "operations", "brand_admin"),  # the token's name
            ("new@example.com", "finance", "boss@example.com"),
        ]
        assert items[0]["id"] == replaced.json()["id"]
        assert items[1]["id"] == by_person.json()["id"]
        assert set(items[0]) == {
            "id", "email", "role", "distributor_id", "invited_by", "created_at", "expires_at"
        }  # fmt: skip
        first = await client.get("/v1/users/invitations", params={"limit": 1}, headers=admin)
        assert [i["email"] for i in first.json()["items"]] == ["old@example.com"]
        rest = await client.get(
            "/v1/users/invitations",
            params={"limit": 1, "after": first.json()["next_cursor"]},
            headers=admin,
        )
        assert [i["email"] for i in rest.json()["items"]] == ["new@example.com"]
        assert rest.json()["next_cursor"] is None
        auditor = await client.get("/v1/users/invitations", headers=tenant_a.headers(Role.AUDITOR))
        assert auditor.json() == listed.json()
        marketer = await client.get("/v1/users/invitations", headers=tenant_a.headers(Role.MARKETER))
        assert_problem(marketer, 403, "forbidden")
        other = await client.get("/v1/users/invitations", headers=tenant_b.headers(Role.BRAND_ADMIN))
        assert other.json() == {"items": [], "next_cursor": None}

    async def test_a_revoked_invitations_link_is_refused_like_an_expired_one(
        self, client: AsyncTestClient[Any], db: psycopg.AsyncConnection[Any], tenant_a: Tenant
    ) -> None:
        """Invited the wrong address: revoked, the link at once gets the answer an expired link gets, the
        invitation leaves the list and the brand's count, and the audit log says who revoked what."""
        admin = tenant_a.headers(Role.BRAND_ADMIN)
        body = {"email": "wrong@example.com", "role": "marketer"}
        invited = await client.post("/v1/users/invitations", json=body, headers=admin)
        token = await last_mail(db, "wrong@example.com")
        invitation_id = invited.json()["id"]
        revoked = await client.delete(f"/v1/users/invitations/{invitation_id}", headers=admin)
        assert revoked.status_code == 204, revoked.text
        refused = await client.post(
            "/console/invitations/accept", json={"token": token, "password": PASSWORD}
        )
        assert (
            assert_problem(refused, 422, "validation-error")["detail"]
            == "the invitation is unknown, used or expired"
        )
        assert (await client.get("/v1/users/invitations", headers=admin)).json()["items"] == []
        cur = await db.execute("SELECT count(*) FROM console_users")
        assert await cur.fetchone() == (0,)
        audit = await client.get(
            "/v1/audit",
            params={"action": "console.invitation_revoke"},
            headers=tenant_a.headers(Role.AUDITOR),
        )
        [entry] = audit.json()["items"]
        assert (entry["actor"], entry["object_type"], entry["object_id"]) == (
            "token:" + str(await token_id(db, tenant_a, "brand_admin")),
            "console_invitation",
            "wrong@example.com",
        )
        assert entry["before"]["id"] == invitation_id and entry["before"]["role"] == "marketer"
        again = await client.delete(f"/v1/users/invitations/{invitation_id}", headers=admin)
        assert_problem(again, 404, "not-found")  # no longer open
        # The right address, invited afresh, opens an account.
        await invited_user(client, db, tenant_a, "right@example.com", "marketer")

    async def test_only_the_brands_own_admin_revokes_and_an_accepted_invitation_is_a_conflict(
        self,
        client: AsyncTestClient[Any],
        db: psycopg.AsyncConnection[Any],
        tenant_a: Tenant,
        tenant_b: Tenant,
    ) -> None:
        """Another brand's id is as unknown as a made-up one (404, nothing changes); other roles get 403;
        an invitation already accepted cannot be revoked (409: the account exists, disable it)."""
        admin = tenant_a.headers(Role.BRAND_ADMIN)
        invited = await client.post(
            "/v1/users/invitations", json={"email": "kept@example.com", "role": "auditor"}, headers=admin
        )
        url = f"/v1/users/invitations/{invited.json()['id']}"
        assert_problem(await client.delete(url, headers=tenant_b.headers(Role.BRAND_ADMIN)), 404, "not-found")
        missing = await client.delete(f"/v1/users/invitations/{uuid.uuid4()}", headers=admin)
        assert_problem(missing, 404, "not-found")
        for role in (Role.MARKETER, Role.AUDITOR, Role.CUSTOMER_SERVICE):
            assert_problem(await client.delete(url, headers=tenant_a.headers(role)), 403, "forbidden")
        listed = await client.get("/v1/users/invitations", headers=admin)
        assert [i["email"] for i in listed.json()["items"]] == ["kept@example.com"]
        token = await last_mail(db, "kept@example.com")
        accepted = await client.post(
            "/console/invitations/accept", json={"token": token, "password": PASSWORD}
        )
        assert accepted.status_code == 201, accepted.text
        assert_problem(await client.delete(url, headers=admin), 409, "conflict")
        assert_problem(await client.delete(url, headers=tenant_b.headers(Role.BRAND_ADMIN)), 404, "not-found")


async def token_id(db: psycopg.AsyncConnection[Any], tenant: Tenant, name: str) -> uuid.UUID:
    cur = await db.execute(
        "SELECT id FROM api_tokens WHERE brand_id = %s AND name = %s", (tenant.brand_id, name)
    )
    row = await cur.fetchone()
    assert row is not None
    found: uuid.UUID = row[0]
    return found


async def test_two_invitations_at_the_cap_cannot_both_pass_it(settings: Settings, tenant_a: Tenant) -> None:
    """One place left: an invitation not yet committed, and another at the same moment. The second
    waits for the first and is refused (before, both counted the same accounts and both went out)."""
    url = settings.database_url or ""
    async with await psycopg.AsyncConnection.connect(url) as setup:
        await setup.execute(
            "INSERT INTO console_invitations (token_hash, brand_id, email, role, invited_by, expires_at)"
            " SELECT sha256(g::text::bytea), %s, 'bulk' || g || '@example.com', 'auditor', 'test',"
            " now() + interval '1 day' FROM generate_series(1, %s) g",
            (tenant_a.brand_id, users.MAX_ACCOUNTS - 1),
        )

    async def invite(conn: psycopg.AsyncConnection[Any], n: int) -> users.Invitation:
        return await users.invite(
            conn,
            users.DevelopmentNotifier(),
            tenant_a.brand_id,
            users.InvitationIn(email=f"racer{n}@example.com", role="auditor"),
            actor="test",
            console_url="http://console.test",
            now=dt.datetime.now(dt.UTC),
        )

    await assert_last_place_taken_once(url, invite, LimitReached)


async def test_a_link_replaced_while_its_acceptance_is_under_way_opens_no_account(
    settings: Settings, tenant_a: Tenant
) -> None:
    """An acceptance whose transaction began before a re-invite committed must still find the old link
    replaced (a replaced link used to be given an expiry of the re-invite's start, which such an
    acceptance, older still, saw as the future: the old role's account opened)."""
    url = settings.database_url or ""
    token = "replaced-while-accepting"
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as setup:
        await setup.execute(
            "INSERT INTO console_invitations (id, token_hash, brand_id, email, role, invited_by, expires_at)"
            " VALUES (gen_random_uuid(), %s, %s, 'wu@example.com', 'brand_admin', 'test',"
            " now() + interval '1 day')",
            (users.hash_token(token), tenant_a.brand_id),
        )
    async with (
        await psycopg.AsyncConnection.connect(url) as accepting,
        await psycopg.AsyncConnection.connect(url) as inviting,
    ):
        await accepting.execute("SELECT now()")  # its transaction (and its clock) starts here
        await users.invite(
            inviting,
            users.DevelopmentNotifier(),
            tenant_a.brand_id,
            users.InvitationIn(email="wu@example.com", role="auditor"),
            actor="test",
            console_url="http://console.test",
            now=dt.datetime.now(dt.UTC),
        )
        await inviting.commit()
        with pytest.raises(InvalidField, match="unknown, used or expired"):
            await users.accept(accepting, users.AcceptIn(token=token, password=PASSWORD))
