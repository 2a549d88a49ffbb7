-- Usage by day: today's counts of every grant, which the gateway reloads on start, and the
-- usage reports over a span of days, without reading every grant's every day.
CREATE INDEX IF NOT EXISTS grant_usage_day ON grant_usage (day, grant_id);
