-- 0017_views.sql
-- Seed section 14 (setup order step 17): the five views.
--
-- Deviations (storage/SCHEMA.md):
--   * all views are WITH (security_invoker = true) (PostgreSQL 15+): otherwise a view
--     reads its tables with the view OWNER's rights and row-level security of the
--     caller (vigil_app + app.current_user_id) would not apply;
--   * vw_person_recognition_summary: the seed joined events AND person_labels AND
--     face_embeddings to persons in one GROUP BY, so every count was multiplied by the
--     number of labels / primary embeddings, and it grouped by the vector value.
--     Events are now aggregated in a LATERAL subquery, labels in a scalar subquery,
--     and has_embedding is an EXISTS over the person's primary embeddings (one per
--     model version now). Output columns and types are unchanged.

-- =============================================================================
-- VIEW: vw_dashboard_stats
-- Purpose: Real-time dashboard metrics
-- =============================================================================

CREATE OR REPLACE VIEW vw_dashboard_stats
WITH (security_invoker = true) AS
WITH
    camera_stats AS (
        SELECT
            COUNT(*) AS total_cameras,
            COUNT(*) FILTER (WHERE status = 'online') AS online_cameras,
            COUNT(*) FILTER (WHERE status = 'offline') AS offline_cameras
        FROM cameras
        WHERE is_active = TRUE
    ),
    event_stats_today AS (
        SELECT
            COUNT(*) AS events_today,
            COUNT(*) FILTER (WHERE event_type = 'person_recognized') AS recognized_today,
            COUNT(*) FILTER (WHERE event_type = 'face_detected') AS faces_today,
            COUNT(*) FILTER (WHERE event_type = 'human_detected') AS humans_today,
            COUNT(*) FILTER (WHERE reviewed = FALSE) AS unreviewed_events
        FROM events
        WHERE timestamp >= DATE_TRUNC('day', NOW())
    ),
    alert_stats AS (
        SELECT
            COUNT(*) FILTER (WHERE status = 'pending') AS pending_alerts,
            COUNT(*) FILTER (WHERE status = 'acknowledged') AS acknowledged_alerts,
            COUNT(*) FILTER (WHERE severity = 'critical' AND status IN ('pending', 'sent')) AS critical_alerts
        FROM alerts
        WHERE created_at >= DATE_TRUNC('day', NOW())
    ),
    person_stats AS (
        SELECT
            COUNT(*) AS total_persons,
            COUNT(*) FILTER (WHERE status = 'known') AS known_persons,
            COUNT(*) FILTER (WHERE status = 'unknown') AS unknown_persons,
            COUNT(*) FILTER (WHERE status = 'blacklisted') AS blacklisted_persons,
            COUNT(*) FILTER (WHERE status = 'vip') AS vip_persons
        FROM persons
    ),
    suspicious_stats AS (
        SELECT
            COUNT(*) AS suspicious_today,
            COUNT(*) FILTER (WHERE severity = 'critical') AS critical_suspicious
        FROM suspicious_activity_events
        WHERE timestamp >= DATE_TRUNC('day', NOW())
    )
SELECT
    cs.total_cameras,
    cs.online_cameras,
    cs.offline_cameras,
    ROUND(100.0 * cs.online_cameras / NULLIF(cs.total_cameras, 0), 1) AS camera_uptime_pct,
    es.events_today,
    es.recognized_today,
    es.faces_today,
    es.humans_today,
    es.unreviewed_events,
    als.pending_alerts,
    als.acknowledged_alerts,
    als.critical_alerts,
    ps.total_persons,
    ps.known_persons,
    ps.unknown_persons,
    ps.blacklisted_persons,
    ps.vip_persons,
    ss.suspicious_today,
    ss.critical_suspicious
FROM camera_stats cs
CROSS JOIN event_stats_today es
CROSS JOIN alert_stats als
CROSS JOIN person_stats ps
CROSS JOIN suspicious_stats ss;

COMMENT ON VIEW vw_dashboard_stats IS 'Real-time dashboard statistics snapshot';

-- =============================================================================
-- VIEW: vw_recent_events
-- Purpose: Recent detection events with enriched camera and person information
-- =============================================================================

CREATE OR REPLACE VIEW vw_recent_events
WITH (security_invoker = true) AS
SELECT
    e.id AS event_id,
    e.event_type,
    e.confidence,
    e.bounding_box,
    e.image_path,
    e.timestamp AS event_timestamp,
    e.reviewed,
    e.review_action,
    e.metadata,
    c.id AS camera_id,
    c.name AS camera_name,
    c.location AS camera_location,
    c.resolution,
    d.name AS dvr_name,
    s.name AS site_name,
    p.id AS person_id,
    p.name AS person_name,
    p.status AS person_status,
    p.role AS person_role,
    cl.cluster_label AS cluster_label
FROM events e
LEFT JOIN cameras c ON e.camera_id = c.id
LEFT JOIN dvrs d ON c.dvr_id = d.id
LEFT JOIN sites s ON d.site_id = s.id
LEFT JOIN persons p ON e.person_id = p.id
LEFT JOIN person_clusters cl ON e.cluster_id = cl.id
WHERE e.timestamp >= NOW() - INTERVAL '24 hours'
ORDER BY e.timestamp DESC;

COMMENT ON VIEW vw_recent_events IS 'Last 24 hours of events with camera, site, and person details';

-- =============================================================================
-- VIEW: vw_active_alerts
-- Purpose: Pending and acknowledged alerts with full context
-- =============================================================================

CREATE OR REPLACE VIEW vw_active_alerts
WITH (security_invoker = true) AS
SELECT
    a.id AS alert_id,
    a.alert_type,
    a.severity,
    a.message,
    a.status,
    a.created_at,
    a.sent_at,
    a.acknowledged_at,
    a.resolved_at,
    ack.username AS acknowledged_by_user,
    res.username AS resolved_by_user,
    c.name AS camera_name,
    c.location AS camera_location,
    s.name AS site_name,
    p.name AS person_name,
    p.status AS person_status,
    ar.name AS rule_name,
    ar.confidence_threshold AS rule_threshold
FROM alerts a
LEFT JOIN cameras c ON a.camera_id = c.id
LEFT JOIN dvrs d ON c.dvr_id = d.id
LEFT JOIN sites s ON d.site_id = s.id
LEFT JOIN persons p ON a.person_id = p.id
LEFT JOIN alert_rules ar ON a.alert_rule_id = ar.id
LEFT JOIN users ack ON a.acknowledged_by = ack.id
LEFT JOIN users res ON a.resolved_by = res.id
WHERE a.status IN ('pending', 'sent', 'acknowledged')
ORDER BY
    CASE a.severity
        WHEN 'critical' THEN 1
        WHEN 'high' THEN 2
        WHEN 'medium' THEN 3
        WHEN 'low' THEN 4
    END,
    a.created_at DESC;

COMMENT ON VIEW vw_active_alerts IS 'All non-resolved alerts with full context for operators';

-- =============================================================================
-- VIEW: vw_person_recognition_summary
-- Purpose: Recognition frequency and confidence statistics per person
-- =============================================================================

CREATE OR REPLACE VIEW vw_person_recognition_summary
WITH (security_invoker = true) AS
SELECT
    p.id AS person_id,
    p.name,
    p.status,
    p.role,
    p.company,
    es.total_detections,
    es.detections_last_7d,
    es.detections_last_24h,
    es.avg_confidence,
    es.first_seen,
    es.last_seen,
    es.cameras_seen_on,
    (SELECT ARRAY_AGG(DISTINCT l.label)
       FROM person_labels l
      WHERE l.person_id = p.id) AS labels,
    EXISTS (SELECT 1
              FROM face_embeddings fe
             WHERE fe.person_id = p.id AND fe.is_primary = TRUE) AS has_embedding
FROM persons p
CROSS JOIN LATERAL (
    SELECT
        COUNT(e.id) AS total_detections,
        COUNT(e.id) FILTER (WHERE e.timestamp >= NOW() - INTERVAL '7 days') AS detections_last_7d,
        COUNT(e.id) FILTER (WHERE e.timestamp >= NOW() - INTERVAL '24 hours') AS detections_last_24h,
        ROUND(AVG(e.confidence)::NUMERIC, 3) AS avg_confidence,
        MIN(e.timestamp) AS first_seen,
        MAX(e.timestamp) AS last_seen,
        COUNT(DISTINCT e.camera_id) AS cameras_seen_on
    FROM events e
    WHERE e.person_id = p.id
      AND e.event_type = 'person_recognized'
) es
ORDER BY es.last_seen DESC NULLS LAST;

COMMENT ON VIEW vw_person_recognition_summary IS 'Recognition statistics per person for review and reporting';

-- =============================================================================
-- VIEW: vw_unknown_clusters_for_review
-- Purpose: Unknown person clusters pending operator review
-- =============================================================================

CREATE OR REPLACE VIEW vw_unknown_clusters_for_review
WITH (security_invoker = true) AS
SELECT
    pc.id AS cluster_id,
    pc.cluster_label,
    pc.sample_count,
    pc.first_seen,
    pc.last_seen,
    EXTRACT(EPOCH FROM (pc.last_seen - pc.first_seen)) / 3600 AS span_hours,
    pc.status,
    fe.source_image_path AS representative_face,
    fe.face_quality AS representative_quality,
    COUNT(e.id) AS total_events,
    ARRAY_AGG(DISTINCT c.name) FILTER (WHERE c.name IS NOT NULL) AS seen_on_cameras,
    ARRAY_AGG(DISTINCT s.name) FILTER (WHERE s.name IS NOT NULL) AS seen_at_sites
FROM person_clusters pc
LEFT JOIN face_embeddings fe ON pc.representative_embedding_id = fe.id
LEFT JOIN events e ON pc.id = e.cluster_id
LEFT JOIN cameras c ON e.camera_id = c.id
LEFT JOIN dvrs d ON c.dvr_id = d.id
LEFT JOIN sites s ON d.site_id = s.id
WHERE pc.status = 'active'
GROUP BY pc.id, pc.cluster_label, pc.sample_count, pc.first_seen, pc.last_seen,
         pc.status, fe.source_image_path, fe.face_quality
ORDER BY pc.sample_count DESC, pc.last_seen DESC;

COMMENT ON VIEW vw_unknown_clusters_for_review IS 'Unknown person clusters pending operator identification';
