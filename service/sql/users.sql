-- invite --
-- A new invitation to an address replaces the brand's open ones (a corrected role, a lost mail): only
-- the latest link opens an account. Replaced links are revoked, not expired: an acceptance whose
-- transaction began before this one would read an expiry of now() as still ahead.
WITH superseded AS (
    UPDATE console_invitations SET revoked_at = now()
    WHERE brand_id = %(brand_id)s AND email = %(email)s AND accepted_at IS NULL AND expires_at > now()
      AND revoked_at IS NULL
)
INSERT INTO console_invitations (id, token_hash, brand_id, email, role, distributor_id, invited_by, expires_at)
VALUES (%(id)s, %(token_hash)s, %(brand_id)s, %(email)s, %(role)s, %(distributor_id)s, %(actor)s, %(expires_at)s)
RETURNING email, role, distributor_id, created_at, expires_at, id;

-- take_invitation --
-- An invitation is used once, before it expires, unless revoked.
UPDATE console_invitations SET accepted_at = now()
WHERE token_hash = %(token_hash)s AND accepted_at IS NULL AND expires_at > now() AND revoked_at IS NULL
RETURNING brand_id, email, role, distributor_id;

-- count_accounts --
-- A brand's console accounts and the invitations still open (each may become one).
SELECT (SELECT count(*) FROM console_users WHERE brand_id = %(brand_id)s)
     + (SELECT count(*) FROM console_invitations
        WHERE brand_id = %(brand_id)s AND accepted_at IS NULL AND expires_at > now() AND revoked_at IS NULL)
       AS accounts;

-- pending_invitations --
-- The brand's open invitations (neither accepted, expired, replaced nor revoked), newest first (ids are
-- time-ordered), keyset by id; who sent each is named: a console user's email, an API token's name.
SELECT i.id, i.email, i.role, i.distributor_id, coalesce(u.email, t.name, i.invited_by) AS invited_by,
       i.created_at, i.expires_at
FROM console_invitations i
LEFT JOIN console_users u ON i.invited_by = 'user:' || u.id::text AND u.brand_id = i.brand_id
LEFT JOIN api_tokens t ON i.invited_by = 'token:' || t.id::text AND t.brand_id = i.brand_id
WHERE i.brand_id = %(brand_id)s AND i.accepted_at IS NULL AND i.expires_at > now() AND i.revoked_at IS NULL
  AND (%(after)s::uuid IS NULL OR i.id < %(after)s::uuid)
ORDER BY i.id DESC
LIMIT %(limit)s;

-- revoke_invitation --
-- Only the brand's own open invitation; its link stops working at once (see take_invitation). Answers the
-- invitation as the list showed it.
WITH revoked AS (
    UPDATE console_invitations SET revoked_at = now()
    WHERE id = %(id)s AND brand_id = %(brand_id)s AND accepted_at IS NULL AND expires_at > now()
      AND revoked_at IS NULL
    RETURNING id, brand_id, email, role, distributor_id, invited_by, created_at, expires_at
)
SELECT r.id, r.email, r.role, r.distributor_id, coalesce(u.email, t.name, r.invited_by) AS invited_by,
       r.created_at, r.expires_at
FROM revoked r
LEFT JOIN console_users u ON r.invited_by = 'user:' || u.id::text AND u.brand_id = r.brand_id
LEFT JOIN api_tokens t ON r.invited_by = 'token:' || t.id::text AND t.brand_id = r.brand_id;

-- invitation_accepted --
-- Why a brand's invitation could not be revoked: already accepted (else it is no longer open).
SELECT accepted_at IS NOT NULL AS taken FROM console_invitations
WHERE id = %(id)s AND brand_id = %(brand_id)s;

-- distributor_of_brand --
SELECT id FROM distributors WHERE id = %(distributor_id)s AND brand_id = %(brand_id)s;

-- email_taken --
SELECT EXISTS (SELECT 1 FROM console_users WHERE email = %(email)s) AS taken;

-- create_user --
INSERT INTO console_users (brand_id, email, role, distributor_id, password_hash)
VALUES (%(brand_id)s, %(email)s, %(role)s, %(distributor_id)s, %(password_hash)s)
ON CONFLICT (email) DO NOTHING
RETURNING id, brand_id, email, role, distributor_id, totp_enabled_at, created_at, last_login_at;

-- user_for_login --
-- Locked for the attempt: failure counts and lockouts of concurrent logins add up.
SELECT id, brand_id, email, role, distributor_id, password_hash, totp_secret_sealed, totp_enabled_at,
       failed_logins, locked_until, disabled_at
FROM console_users WHERE email = %(email)s
FOR UPDATE;

-- login_failed --
UPDATE console_users SET
    failed_logins = failed_logins + 1,
    locked_until = CASE WHEN failed_logins + 1 >= %(max_failures)s THEN %(locked_until)s ELSE locked_until END
WHERE id = %(user_id)s
RETURNING failed_logins, locked_until;

-- login_succeeded --
UPDATE console_users SET failed_logins = 0, locked_until = NULL, last_login_at = now(),
                         password_hash = coalesce(%(rehash)s, password_hash)
WHERE id = %(user_id)s;

-- create_session --
INSERT INTO console_sessions (id_hash, user_id, csrf_token, expires_at)
VALUES (%(id_hash)s, %(user_id)s, %(csrf_token)s, %(expires_at)s);

-- session_principal --
-- The session's user as a caller; the expiry slides, written at most once a minute.
WITH found AS (
    SELECT s.id_hash, s.csrf_token, s.last_seen_at, u.id AS user_id, u.brand_id, u.role, u.distributor_id
    FROM console_sessions s JOIN console_users u ON u.id = s.user_id
    WHERE s.id_hash = %(id_hash)s AND s.expires_at > now() AND u.disabled_at IS NULL
), touched AS (
    UPDATE console_sessions s SET last_seen_at = now(), expires_at = now() + %(idle)s
    FROM found WHERE s.id_hash = found.id_hash AND found.last_seen_at < now() - interval '1 minute'
)
SELECT user_id, brand_id, role, distributor_id, csrf_token FROM found;

-- delete_session --
DELETE FROM console_sessions WHERE id_hash = %(id_hash)s;

-- delete_user_sessions --
DELETE FROM console_sessions WHERE user_id = %(user_id)s;

-- get_user --
SELECT id, brand_id, email, role, distributor_id, totp_enabled_at, created_at, last_login_at, disabled_at
FROM console_users WHERE id = %(user_id)s;

-- list_users --
-- The brand's accounts by email (one account per address), keyset by email: `after` is the last email of
-- the previous page (accounts are disabled, never deleted, but a cursor needs no row to still exist).
SELECT id, brand_id, email, role, distributor_id, totp_enabled_at, created_at, last_login_at, disabled_at
FROM console_users
WHERE brand_id = %(brand_id)s AND (%(after)s::text IS NULL OR email > %(after)s::text)
ORDER BY email LIMIT %(limit)s;

-- set_user_disabled --
UPDATE console_users SET disabled_at = CASE WHEN %(disabled)s THEN coalesce(disabled_at, %(now)s) END
WHERE id = %(user_id)s AND brand_id = %(brand_id)s
RETURNING id AS user_id;

-- set_totp_secret --
UPDATE console_users SET totp_secret_sealed = %(sealed)s, totp_enabled_at = NULL
WHERE id = %(user_id)s AND totp_enabled_at IS NULL;

-- totp_secret --
SELECT totp_secret_sealed FROM console_users WHERE id = %(user_id)s;

-- use_totp_step --
-- Taken once: a second use of the same (or an older) step finds no row, also when two requests race.
UPDATE console_users SET totp_last_step = %(step)s
WHERE id = %(user_id)s AND (totp_last_step IS NULL OR totp_last_step < %(step)s)
RETURNING id AS user_id;

-- enable_totp --
UPDATE console_users SET totp_enabled_at = now() WHERE id = %(user_id)s AND totp_secret_sealed IS NOT NULL;

-- create_reset --
INSERT INTO console_password_resets (token_hash, user_id, expires_at)
SELECT %(token_hash)s, id, %(expires_at)s FROM console_users WHERE email = %(email)s AND disabled_at IS NULL
RETURNING user_id;

-- take_reset --
UPDATE console_password_resets SET used_at = now()
WHERE token_hash = %(token_hash)s AND used_at IS NULL AND expires_at > now()
RETURNING user_id;

-- set_password --
UPDATE console_users SET password_hash = %(password_hash)s, failed_logins = 0, locked_until = NULL
WHERE id = %(user_id)s;

-- notify --
INSERT INTO notification_outbox (channel, recipient, subject, body)
VALUES ('email', %(recipient)s, %(subject)s, %(body)s);
