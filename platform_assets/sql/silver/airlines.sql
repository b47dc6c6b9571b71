-- Silver airlines: carrier code -> name.
SELECT UPPER(TRIM(carrier)) AS carrier, TRIM(name) AS name
FROM bronze.airlines
WHERE carrier IS NOT NULL
