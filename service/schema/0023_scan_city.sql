-- The Chinese city (GB/T 2260, `CN-330100`) a scan happened in, when its location or the IP database
-- placed it (antifraud.divisions): distributors' territories may name cities, and their diversion
-- reports show where in a province the goods turned up. Null elsewhere and when unknown.
ALTER TABLE scans ADD COLUMN city text;
