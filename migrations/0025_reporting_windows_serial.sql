-- The windowed reports of reporting_v2 run without parallel workers (issue 11: reporting
-- over 1,000,000 events within 200 ms for a 1-hour window).
--
-- Since 0023 the event log's newest rows are batches that the reports unnest, and the
-- planner estimates a BRIN bitmap scan crudely (it assumes a good share of the table
-- matches). For a dashboard's window it then chose a parallel plan, whose worker start-up
-- alone took 50 to 70 ms on the bench machine, several times the scan itself: with 1,000,000
-- events, throughput_per_minute took 82 to 330 ms in parallel and 13 to 34 ms without,
-- step_latency 85 to 350 ms against 14 to 68 ms. Over the whole history (a window of
-- 8 days) the serial plan took as long as the parallel one there (1.3 s against 1.3 to
-- 1.6 s). Only the plan changes: columns and rows are as they were. The v1 views keep the
-- session's settings, so a long scan of all history can still run in parallel.

ALTER FUNCTION reporting_v2.execution_summary(timestamptz, timestamptz) SET max_parallel_workers_per_gather = 0;
ALTER FUNCTION reporting_v2.step_latency(timestamptz, timestamptz) SET max_parallel_workers_per_gather = 0;
ALTER FUNCTION reporting_v2.throughput_per_minute(timestamptz, timestamptz) SET max_parallel_workers_per_gather = 0;
