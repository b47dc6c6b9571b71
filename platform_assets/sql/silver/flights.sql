-- Silver flights: typed, cleaned, one row per scheduled flight; partitioned by year and month.
SELECT
    CAST(CONCAT(CAST(year AS VARCHAR), '-', LPAD(CAST(month AS VARCHAR), 2, '0'), '-',
                LPAD(CAST(day AS VARCHAR), 2, '0')) AS DATE) AS flight_date,
    CAST(day AS BIGINT) AS day,
    CAST(dep_time AS BIGINT) AS dep_time,
    CAST(sched_dep_time AS BIGINT) AS sched_dep_time,
    CAST(dep_delay AS DOUBLE) AS dep_delay,
    CAST(arr_time AS BIGINT) AS arr_time,
    CAST(sched_arr_time AS BIGINT) AS sched_arr_time,
    CAST(arr_delay AS DOUBLE) AS arr_delay,
    UPPER(TRIM(carrier)) AS carrier,
    CAST(flight AS BIGINT) AS flight,
    NULLIF(TRIM(tailnum), '') AS tailnum,
    UPPER(TRIM(origin)) AS origin,
    UPPER(TRIM(dest)) AS dest,
    CAST(air_time AS DOUBLE) AS air_time,
    CAST(distance AS DOUBLE) AS distance,
    CAST(hour AS BIGINT) AS sched_hour,
    CAST(minute AS BIGINT) AS sched_minute,
    dep_time IS NULL AS cancelled,
    CAST(year AS BIGINT) AS year,
    CAST(month AS BIGINT) AS month
FROM bronze.flights
WHERE year IS NOT NULL AND month IS NOT NULL AND day IS NOT NULL
  AND carrier IS NOT NULL AND origin IS NOT NULL AND dest IS NOT NULL
