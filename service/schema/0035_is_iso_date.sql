-- A calendar date written YYYY-MM-DD (what a member attribute of type `date` holds), false for anything
-- else, 2024-02-30 included: the retype check (attribute_values_misfit) asks it of stored values.
CREATE FUNCTION is_iso_date(value text) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE STRICT AS $$
BEGIN
    RETURN value ~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$' AND value::date IS NOT NULL;
EXCEPTION WHEN datetime_field_overflow OR invalid_datetime_format THEN
    RETURN false;
END
$$;
