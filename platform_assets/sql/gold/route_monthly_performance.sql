-- One row per (month, origin, dest, carrier): volume, cancellations, arrival delay, distance.
SELECT
    CAST(DATE_TRUNC('month', flight_date) AS DATE) AS month,
    origin,
    dest,
    carrier,
    COUNT(*) AS flights,
    COUNT_IF(dep_time IS NULL) AS cancelled,
    AVG(arr_delay) AS avg_arr_delay_min,
    AVG(distance) AS distance_miles
FROM silver.flights
GROUP BY CAST(DATE_TRUNC('month', flight_date) AS DATE), origin, dest, carrier
