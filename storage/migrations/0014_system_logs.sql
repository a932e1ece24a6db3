-- 0014_system_logs.sql
-- Seed section 13: system_health_logs, device_connectivity_logs (monthly
-- partitioned, 90-day retention via partition_retention) (setup order step 15).
-- Partition names follow <table>_yYYYYmMM / <table>_default (the seed used
-- health_logs_y..., health_default, connectivity_y..., connectivity_default, which
-- fn_create_monthly_partition could not produce). id DEFAULT gen_random_uuid(),
-- timestamp DEFAULT NOW().

-- =============================================================================
-- TABLE: system_health_logs (MONTHLY PARTITIONED BY timestamp, TTL 90 DAYS)
-- =============================================================================

CREATE TABLE IF NOT EXISTS system_health_logs (
    id              UUID NOT NULL DEFAULT gen_random_uuid(),
    component       VARCHAR(50) NOT NULL,       -- detector, recognizer, stream_manager, api, db
    status          device_status_enum NOT NULL,
    metrics         JSONB NOT NULL DEFAULT '{}',
    -- Format varies by component:
    -- detector: {"fps_processed": 25, "inference_time_ms": 15, "gpu_utilization": 0.75}
    -- recognizer: {"faces_detected_per_min": 120, "embedding_time_ms": 8}
    -- stream_manager: {"active_streams": 48, "buffer_health_ms": 45, "dropped_frames": 2}
    -- api: {"requests_per_second": 150, "p99_latency_ms": 45, "error_rate": 0.001}
    -- db: {"connections_active": 25, "query_time_p99_ms": 5, "replication_lag_ms": 0}
    message         TEXT,                       -- Human-readable status message
    timestamp       TIMESTAMPTZ NOT NULL DEFAULT NOW(),

    -- Partition key must be part of the primary key
    PRIMARY KEY (id, timestamp)
) PARTITION BY RANGE (timestamp);

CREATE TABLE IF NOT EXISTS system_health_logs_default PARTITION OF system_health_logs DEFAULT;

-- Indexes
CREATE INDEX IF NOT EXISTS idx_health_logs_component ON system_health_logs (component);
CREATE INDEX IF NOT EXISTS idx_health_logs_timestamp ON system_health_logs (timestamp DESC);
CREATE INDEX IF NOT EXISTS idx_health_logs_status ON system_health_logs (status);

-- Comments
COMMENT ON TABLE system_health_logs IS 'System component health metrics - 90 day TTL';
COMMENT ON COLUMN system_health_logs.metrics IS 'Component-specific performance metrics';

-- =============================================================================
-- TABLE: device_connectivity_logs (MONTHLY PARTITIONED BY timestamp, TTL 90 DAYS)
-- =============================================================================

CREATE TABLE IF NOT EXISTS device_connectivity_logs (
    id              UUID NOT NULL DEFAULT gen_random_uuid(),
    device_type     VARCHAR(20) NOT NULL,       -- dvr, camera, edge
    device_id       UUID NOT NULL,              -- Reference to dvrs.id or cameras.id
    event           connectivity_event_enum NOT NULL,
    details         JSONB NOT NULL DEFAULT '{}',
    -- Format: {"error_code": "ECONNREFUSED", "retry_count": 3,
    --          "previous_event": "connected", "duration_seconds": 1200}
    timestamp       TIMESTAMPTZ NOT NULL DEFAULT NOW(),

    -- Partition key must be part of the primary key
    PRIMARY KEY (id, timestamp)
) PARTITION BY RANGE (timestamp);

CREATE TABLE IF NOT EXISTS device_connectivity_logs_default PARTITION OF device_connectivity_logs DEFAULT;

-- Indexes
CREATE INDEX IF NOT EXISTS idx_connectivity_device_type ON device_connectivity_logs (device_type);
CREATE INDEX IF NOT EXISTS idx_connectivity_device_id ON device_connectivity_logs (device_id);
CREATE INDEX IF NOT EXISTS idx_connectivity_timestamp ON device_connectivity_logs (timestamp DESC);
CREATE INDEX IF NOT EXISTS idx_connectivity_event ON device_connectivity_logs (event);

-- Comments
COMMENT ON TABLE device_connectivity_logs IS 'Device connectivity events - 90 day TTL';

-- Current and next month (UTC)
DO $$
DECLARE
    v_table TEXT;
    v_month DATE;
BEGIN
    FOREACH v_table IN ARRAY ARRAY['system_health_logs', 'device_connectivity_logs'] LOOP
        FOR i IN 0 .. 1 LOOP
            v_month := (date_trunc('month', NOW() AT TIME ZONE 'UTC') + make_interval(months => i))::DATE;
            PERFORM fn_create_monthly_partition(v_table,
                                                EXTRACT(YEAR FROM v_month)::INTEGER,
                                                EXTRACT(MONTH FROM v_month)::INTEGER);
        END LOOP;
    END LOOP;
END $$;
