-- One row per (flight_date, carrier): volume, cancellations and punctuality.
-- cancelled = no departure time; on time = arrival delay under 15 minutes.
SELECT
    f.flight_date,
    f.carrier,
    MAX(a.name) AS carrier_name,
    COUNT(*) AS flights,
    COUNT_IF(f.dep_time IS NULL) AS cancelled,
    COUNT_IF(f.dep_time IS NOT NULL) AS departed,
    COUNT_IF(f.arr_delay < 15) AS on_time_arrivals,
    AVG(f.dep_delay) AS avg_dep_delay_min,
    AVG(f.arr_delay) AS avg_arr_delay_min
FROM silver.flights AS f
LEFT JOIN silver.airlines AS a ON a.carrier = f.carrier
GROUP BY f.flight_date, f.carrier
