-- People, not tokens: console user accounts with the API's roles, sessions, invitations, password resets.

CREATE TABLE console_users (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    brand_id            uuid NOT NULL REFERENCES brands (id),
    -- One account per address across brands: the login form asks for nothing else.
    email               text NOT NULL UNIQUE CHECK (email = lower(email) AND length(email) BETWEEN 3 AND 254),
    role                text NOT NULL CHECK (role IN ('brand_admin', 'marketer', 'operations', 'customer_service',
                                                      'finance', 'distributor', 'auditor', 'point_of_sale')),
    distributor_id      uuid REFERENCES distributors (id),
    -- argon2id, with its parameters and salt (the library's encoded form).
    password_hash       text NOT NULL,
    -- The TOTP secret, sealed under the master key; `totp_enabled_at` once the user proved a code.
    totp_secret_sealed  bytea,
    totp_enabled_at     timestamptz,
    failed_logins       integer NOT NULL DEFAULT 0,
    locked_until        timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    last_login_at       timestamptz,
    disabled_at         timestamptz,
    CHECK ((role = 'distributor') = (distributor_id IS NOT NULL)),
    CHECK (totp_enabled_at IS NULL OR totp_secret_sealed IS NOT NULL)
);
CREATE INDEX console_users_brand ON console_users (brand_id, email);

-- A session cookie holds a random id; only its hash is stored. The CSRF token travels in a header.
CREATE TABLE console_sessions (
    id_hash       bytea PRIMARY KEY,
    user_id       uuid NOT NULL REFERENCES console_users (id) ON DELETE CASCADE,
    csrf_token    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL
);
CREATE INDEX console_sessions_user ON console_sessions (user_id);
CREATE INDEX console_sessions_expiry ON console_sessions (expires_at);

CREATE TABLE console_invitations (
    token_hash      bytea PRIMARY KEY,
    brand_id        uuid NOT NULL REFERENCES brands (id),
    email           text NOT NULL CHECK (email = lower(email)),
    role            text NOT NULL,
    distributor_id  uuid REFERENCES distributors (id),
    invited_by      text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    accepted_at     timestamptz
);

CREATE TABLE console_password_resets (
    token_hash  bytea PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES console_users (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);

-- The development notification adapter's mailbox: invitations and password resets, not sent.
CREATE TABLE notification_outbox (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    channel     text NOT NULL CHECK (channel IN ('email')),
    recipient   text NOT NULL,
    subject     text NOT NULL,
    body        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
