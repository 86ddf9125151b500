-- get_member --
SELECT id, brand_id, phone_last4, merged_into, created_at, enrolled_at,
       consent_marketing_at, consent_location_at
FROM members WHERE id = %(member_id)s AND brand_id = %(brand_id)s;

-- find_by_phone --
-- `phone_indexes`: the phone's index under each configured master key, the current one first (after a
-- rotation, until `onecode keys reseal` re-indexed them, members may hold an old key's index).
SELECT id, brand_id, phone_last4, merged_into, created_at, enrolled_at,
       consent_marketing_at, consent_location_at
FROM members WHERE brand_id = %(brand_id)s AND phone_index = ANY(%(phone_indexes)s::bytea[])
ORDER BY array_position(%(phone_indexes)s::bytea[], phone_index), created_at
LIMIT 1;

-- enroll_member --
-- Attach a phone to a member (its first enrolment); consents are stamped when given.
UPDATE members SET
    phone_sealed = %(phone_sealed)s, phone_index = %(phone_index)s, phone_last4 = %(phone_last4)s,
    profile_sealed = coalesce(%(profile_sealed)s, profile_sealed),
    consent_marketing_at = CASE WHEN %(consent_marketing)s THEN coalesce(consent_marketing_at, now()) END,
    consent_location_at = CASE WHEN %(consent_location)s THEN coalesce(consent_location_at, now()) END,
    enrolled_at = coalesce(enrolled_at, now())
WHERE id = %(member_id)s AND brand_id = %(brand_id)s
RETURNING id, brand_id, phone_last4, merged_into, created_at, enrolled_at,
          consent_marketing_at, consent_location_at;

-- update_consents --
UPDATE members SET
    profile_sealed = coalesce(%(profile_sealed)s, profile_sealed),
    consent_marketing_at = CASE WHEN %(consent_marketing)s THEN coalesce(consent_marketing_at, now()) END,
    consent_location_at = CASE WHEN %(consent_location)s THEN coalesce(consent_location_at, now()) END
WHERE id = %(member_id)s AND brand_id = %(brand_id)s
RETURNING id, brand_id, phone_last4, merged_into, created_at, enrolled_at,
          consent_marketing_at, consent_location_at;

-- merge_member --
-- The anonymous member's devices move to the phone's member; the anonymous id remains as a pointer.
WITH moved AS (
    UPDATE member_devices SET member_id = %(target_id)s
    WHERE brand_id = %(brand_id)s AND member_id = %(source_id)s
)
UPDATE members SET merged_into = %(target_id)s
WHERE id = %(source_id)s AND brand_id = %(brand_id)s AND id <> %(target_id)s;

-- create_member --
-- The member a token names may not be written yet if its first scan failed; make sure it exists.
INSERT INTO members (id, brand_id) VALUES (%(member_id)s, %(brand_id)s) ON CONFLICT DO NOTHING;

-- record_sms --
INSERT INTO sms_outbox (brand_id, phone_index, body) VALUES (%(brand_id)s, %(phone_index)s, %(body)s);

-- latest_sms --
SELECT body FROM sms_outbox WHERE brand_id = %(brand_id)s AND phone_index = %(phone_index)s
ORDER BY id DESC LIMIT 1;

-- get_consents --
-- The consents a member token speaks for: those of the member it was merged into, if it was.
SELECT m.id, m.erased_at, m.enrolled_at IS NOT NULL AS enrolled, m.consent_marketing_at, m.consent_location_at
FROM members t
JOIN members m ON m.brand_id = t.brand_id AND m.id = coalesce(t.merged_into, t.id)
WHERE t.id = %(member_id)s AND t.brand_id = %(brand_id)s;

-- lock_consents --
-- The same, locked until the change commits: two changes at once apply one after the other.
SELECT m.id, m.erased_at, m.enrolled_at IS NOT NULL AS enrolled, m.consent_marketing_at, m.consent_location_at
FROM members t
JOIN members m ON m.brand_id = t.brand_id AND m.id = coalesce(t.merged_into, t.id)
WHERE t.id = %(member_id)s AND t.brand_id = %(brand_id)s
FOR UPDATE OF m;

-- set_consents --
-- The member's own choice: true stamps now unless already given (the first grant's time stays), false
-- clears it, null leaves it as it is.
UPDATE members SET
    consent_marketing_at = CASE WHEN %(marketing)s::boolean IS NULL THEN consent_marketing_at
                                WHEN %(marketing)s::boolean THEN coalesce(consent_marketing_at, now()) END,
    consent_location_at = CASE WHEN %(location)s::boolean IS NULL THEN consent_location_at
                               WHEN %(location)s::boolean THEN coalesce(consent_location_at, now()) END,
    location_withdrawn_at = CASE WHEN %(location)s::boolean IS NULL THEN location_withdrawn_at
                                 WHEN NOT %(location)s::boolean THEN coalesce(location_withdrawn_at, now()) END,
    location_consent_changed_at = CASE WHEN %(location)s::boolean IS NULL THEN location_consent_changed_at
                                       ELSE now() END,
    updated_at = now()
WHERE id = %(member_id)s AND brand_id = %(brand_id)s
RETURNING id, erased_at, enrolled_at IS NOT NULL AS enrolled, consent_marketing_at, consent_location_at;

-- location_withdrawn --
-- The members who withdrew location consent, and those merged into one of them (old tokens name those).
SELECT id, true AS withdrawn FROM members WHERE location_withdrawn_at IS NOT NULL
UNION ALL
SELECT m.id, true FROM members w JOIN members m ON m.merged_into = w.id
WHERE w.location_withdrawn_at IS NOT NULL;

-- location_consent_changes --
-- The same for the members whose location consent changed since `since`, withdrawn or given again.
SELECT id, location_withdrawn_at IS NOT NULL AS withdrawn FROM members
WHERE location_consent_changed_at > %(since)s
UNION ALL
SELECT m.id, w.location_withdrawn_at IS NOT NULL FROM members w JOIN members m ON m.merged_into = w.id
WHERE w.location_consent_changed_at > %(since)s;

-- database_now --
SELECT now();
