-- Silver airports: FAA code, name, location and time zone.
SELECT
    UPPER(TRIM(faa)) AS faa,
    TRIM(name) AS name,
    CAST(lat AS DOUBLE) AS lat,
    CAST(lon AS DOUBLE) AS lon,
    CAST(alt AS BIGINT) AS alt_ft,
    CAST(tz AS DOUBLE) AS utc_offset_h,
    dst,
    tzone
FROM bronze.airports
WHERE faa IS NOT NULL
