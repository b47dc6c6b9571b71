-- Silver planes: one row per tail number.
SELECT
    UPPER(TRIM(tailnum)) AS tailnum,
    CAST(year AS BIGINT) AS year_built,
    type AS plane_type,
    manufacturer,
    model,
    CAST(engines AS BIGINT) AS engines,
    CAST(seats AS BIGINT) AS seats,
    engine
FROM bronze.planes
WHERE tailnum IS NOT NULL
