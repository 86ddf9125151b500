-- Chongqing is one city (CN-500100), its counties included: territories that named its counties'
-- pseudo-city CN-500200 (accepted until now) name the city instead. Scans logged before keep the code
-- they were logged with; its name is Chongqing's (antifraud/divisions.py).
UPDATE distributors SET regions = array_replace(regions, 'CN-500200', 'CN-500100')
WHERE 'CN-500200' = ANY(regions) AND NOT 'CN-500100' = ANY(regions);
UPDATE distributors SET regions = array_remove(regions, 'CN-500200')
WHERE 'CN-500200' = ANY(regions);
