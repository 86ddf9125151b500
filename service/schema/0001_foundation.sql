-- Foundation: brands (tenants), API tokens and the hash-chained audit log.

CREATE TABLE brands (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    slug        text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{1,62}$'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    -- Carried in short-form code URLs (products without a GTIN): base32 letters and digits.
    short_code  text NOT NULL UNIQUE CHECK (short_code ~ '^[A-Z2-7]{4,8}$'),
    is_loadtest boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_tokens (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    brand_id       uuid REFERENCES brands (id),
    role           text NOT NULL CHECK (role IN ('platform_admin', 'brand_admin', 'marketer', 'operations',
                                                 'customer_service', 'finance', 'distributor', 'auditor')),
    distributor_id uuid,
    name           text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    -- SHA-256 of the secret; the secret itself is shown once and never stored.
    token_hash     bytea NOT NULL UNIQUE,
    created_at     timestamptz NOT NULL DEFAULT now(),
    expires_at     timestamptz NOT NULL,
    revoked_at     timestamptz,
    last_used_at   timestamptz,
    CONSTRAINT api_tokens_platform_has_no_brand CHECK ((role = 'platform_admin') = (brand_id IS NULL)),
    CONSTRAINT api_tokens_distributor_scope CHECK ((role = 'distributor') = (distributor_id IS NOT NULL))
);
CREATE INDEX api_tokens_brand ON api_tokens (brand_id, created_at);

CREATE TABLE audit_log (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    brand_id    uuid,
    actor       text NOT NULL,
    action      text NOT NULL,
    object_type text NOT NULL,
    object_id   text,
    before      jsonb,
    after       jsonb,
    at          timestamptz NOT NULL,
    prev_hash   bytea NOT NULL,
    hash        bytea NOT NULL UNIQUE
);
CREATE INDEX audit_log_brand ON audit_log (brand_id, id);

-- The audit log is append-only: no statement may rewrite history.
CREATE FUNCTION audit_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only' USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER audit_log_no_update BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_is_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_is_append_only();

-- One definition of an entry's hash, used when appending and when verifying the chain.
CREATE FUNCTION audit_entry_hash(
    prev_hash bytea, brand_id uuid, actor text, action text, object_type text, object_id text,
    before jsonb, after jsonb, at timestamptz
) RETURNS bytea LANGUAGE sql IMMUTABLE AS $$
    SELECT sha256(prev_hash || convert_to(jsonb_build_array(
        brand_id::text, actor, action, object_type, object_id, before, after,
        to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
    )::text, 'UTF8'))
$$;
