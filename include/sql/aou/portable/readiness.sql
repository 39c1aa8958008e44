-- Readiness gate: how many participants today's load holds. The DAG compares the count with
-- its threshold (default 100; the seed waited while the count was <= 100) and waits or fails
-- while the load is missing or partial. Bound parameters: load_start and load_end, the day's
-- bounds as timestamps (the load day is the run's data interval, so backfills check the
-- right day).
SELECT COUNT(*) AS participants
FROM vw_reporting_base AS b
WHERE b."etl_loaded_at_HP" >= :load_start
    AND b."etl_loaded_at_HP" < :load_end
