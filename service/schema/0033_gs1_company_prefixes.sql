-- A brand's GS1 company prefixes, recorded by a platform admin once the brand has shown its GS1
-- membership: a GTIN under one of them is that brand's, and no other brand may register it. (Before,
-- whichever brand registered a GTIN first held it, its owner or not.)
ALTER TABLE brands ADD COLUMN gs1_company_prefixes text[] NOT NULL DEFAULT '{}'
    CHECK (array_to_string(gs1_company_prefixes, ',') ~ '^([0-9]{4,12}(,[0-9]{4,12})*)?$');
