-- One row per (flight_date, origin): departures and delays next to that day's weather there.
-- Weather is daily: total precipitation, mean visibility and mean wind speed.
WITH daily_weather AS (
    SELECT
        origin,
        obs_date,
        SUM(precip_in) AS precip_in,
        AVG(visibility_mi) AS visibility_mi,
        AVG(wind_speed_mph) AS wind_speed_mph
    FROM silver.weather
    GROUP BY origin, obs_date
)
SELECT
    f.flight_date,
    f.origin,
    COUNT(*) AS flights,
    COUNT_IF(f.dep_time IS NULL) AS cancelled,
    AVG(f.dep_delay) AS avg_dep_delay_min,
    MAX(w.precip_in) AS precip_in,
    MAX(w.visibility_mi) AS visibility_mi,
    MAX(w.wind_speed_mph) AS wind_speed_mph
FROM silver.flights AS f
LEFT JOIN daily_weather AS w ON w.origin = f.origin AND w.obs_date = f.flight_date
GROUP BY f.flight_date, f.origin
