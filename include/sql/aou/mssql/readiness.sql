-- Readiness gate: how many participants a load made on or after the run's day holds. The DAG
-- compares the count with its threshold (default 100; the seed waited while the count was
-- <= 100) and waits, then fails, while the load is missing or partial. Bound parameter:
-- load_start, the start of the run's day. The source keeps only its latest load, so a
-- backfill of a missed day is ready once any later load is complete (it syncs the current
-- state, which is what the day would have synced had it run).
SELECT COUNT(*) AS participants
FROM dbo.vw_reporting_base AS b
WHERE b.[etl_loaded_at_HP] >= :load_start
