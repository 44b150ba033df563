-- pgstream catalog, schema version 4: no table changes. Buffer trimming keeps the rows
-- of a consumer's own refresh transaction that it has not consumed yet (the SQL
-- functions are recreated at every upgrade).
SELECT 1;
