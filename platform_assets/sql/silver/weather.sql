-- Silver weather: hourly observations at the NYC airports, typed; partitioned by year and month.
SELECT
    UPPER(TRIM(origin)) AS origin,
    CAST(CONCAT(CAST(year AS VARCHAR), '-', LPAD(CAST(month AS VARCHAR), 2, '0'), '-',
                LPAD(CAST(day AS VARCHAR), 2, '0')) AS DATE) AS obs_date,
    CAST(hour AS BIGINT) AS obs_hour,
    CAST(temp AS DOUBLE) AS temp_f,
    CAST(dewp AS DOUBLE) AS dewpoint_f,
    CAST(humid AS DOUBLE) AS humidity_pct,
    CAST(wind_dir AS DOUBLE) AS wind_dir_deg,
    CAST(wind_speed AS DOUBLE) AS wind_speed_mph,
    CAST(wind_gust AS DOUBLE) AS wind_gust_mph,
    CAST(precip AS DOUBLE) AS precip_in,
    CAST(pressure AS DOUBLE) AS pressure_mb,
    CAST(visib AS DOUBLE) AS visibility_mi,
    CAST(year AS BIGINT) AS year,
    CAST(month AS BIGINT) AS month
FROM bronze.weather
WHERE origin IS NOT NULL AND year IS NOT NULL AND month IS NOT NULL AND day IS NOT NULL
