"""From what the ingest path stored to alerts: the hook IngestPipeline runs inside each batch's
transaction (see control/ingest/pipeline.py).

  events of the batch ─────────────────────────────┐
  observations → analytics → suspicious activities ─┴→ facts → rules → alerts (cooldown,
                                                         notifications queued) → the feed

Everything is written in the batch's transaction, so a replayed batch (duplicate key) raises
nothing twice and a failure rolls back the alerts with the batch's hook savepoint.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from uuid import UUID

from vigil.control.analytics.engine import AnalyticsConfig as EngineConfig
from vigil.control.analytics.engine import AnalyticsEngine
from vigil.control.analytics.model import (
    ActivityType,
    Detection,
    Severity,
    TrackObservation,
    ZoneGeometry,
    ZoneThresholds,
    ZoneType,
)
from vigil.control.ingest import feed
from vigil.control.ingest.events import RecordedEvent
from vigil.control.rules import Fact, RuleEvaluator, camera_facts, person_facts, write_firings
from vigil.control.rules.alert_api import match_update
from vigil.logs import get_logger
from vigil.storage.repositories.alerts import (
    Alert,
    AlertRepository,
    AlertRuleRepository,
    AnalyticsConfigRepository,
)
from vigil.storage.repositories.camera_context import CameraContextRepository
from vigil.storage.repositories.clips import ClipRepository
from vigil.storage.repositories.events import SuspiciousActivity, SuspiciousActivityRepository
from vigil.storage.repositories.sites import ZoneRepository

if TYPE_CHECKING:
    from vigil.control.app import Transaction

log = get_logger("vigil.control.alerting")

CONFIG_TTL_S = 30.0  # analytics configs are re-read this often per camera (replicas stay in step)


def _feet(obs: TrackObservation) -> tuple[float, float]:
    return obs.box.feet


class AlertingHook:
    """Callable as an IngestPipeline on_events hook: hook(tx, recorded_events, observations)."""

    def __init__(self, engine: AnalyticsEngine | None = None, *,
                 clip_window: tuple[timedelta, timedelta] | None = None):
        self.engine = engine or AnalyticsEngine()
        self.clip_window = clip_window  # (before, after) the alert's capture time; None: no clips
        self.evaluator = RuleEvaluator()
        self._configured_at: dict[str, float] = {}

    async def __call__(self, tx: Transaction, recorded: Sequence[RecordedEvent],
                      observations: Sequence[TrackObservation]) -> None:
        camera_id = self._camera_of(recorded, observations)
        if camera_id is None:
            return
        conn = tx.conn
        zones = await self._zones(conn, camera_id)
        activities = await self._activities(conn, camera_id, zones, observations)
        rules = await AlertRuleRepository(conn).active_for_camera(camera_id)
        alerts: list[Alert] = []
        firings = []
        joined = []
        if rules:
            facts = await self._facts(conn, camera_id, zones, recorded, observations, activities)
            firings = [f for fact in facts for f in self.evaluator.evaluate(rules, fact)]
            written = await write_firings(conn, firings)
            alerts, joined = written.created, written.joined
        # as in the seed, every suspicious activity is an alert: those no rule claimed get one of
        # their own (the analytics fire once per episode, so this does not flood)
        claimed = {f.fact.suspicious_activity_id for f in firings}
        alerts += [await self._activity_alert(conn, a) for a in activities if a.id not in claimed]
        if alerts and self.clip_window is not None:
            await self._request_clips(conn, camera_id, alerts, activities)
        items = [feed.FeedItem.of_suspicious_activity(a) for a in activities]
        items += [feed.FeedItem.of_alert(a) for a in alerts]
        items += [feed.FeedItem.of_alert_update(j.alert, match_update(j.alert, j.previous_severity, j.match))
                  for j in joined]
        if items:
            await feed.record(conn, items)

    async def _request_clips(self, conn, camera_id: UUID, alerts: list[Alert],
                             activities: Sequence[SuspiciousActivity]) -> None:
        """A clip around each alert's capture time, cut by the node running the camera once the
        time after it has passed (storage/repositories/clips.py), unless the camera records nothing."""
        if not await CameraContextRepository(conn).records(camera_id):
            return
        before, after = self.clip_window
        activity_times = {a.id: a.timestamp for a in activities}
        clips = ClipRepository(conn)
        for alert in alerts:
            captured = (alert.trigger_evidence or {}).get("capture_time")
            at = datetime.fromisoformat(captured) if captured else activity_times.get(alert.suspicious_activity_id)
            if at is not None:
                await clips.create(camera_id, at - before, at + after, event_id=alert.event_id, alert_id=alert.id)

    @staticmethod
    async def _activity_alert(conn, a: SuspiciousActivity) -> Alert:
        zone = a.details.get("zone_name")
        where = f' in zone "{zone}"' if zone else ""
        message = (f"{a.activity_type.replace('_', ' ')} detected{where} at {a.timestamp.isoformat()} "
                   f"(confidence {a.confidence:.0%}, severity {a.severity})")
        person_ids = a.details.get("person_ids") or [None]
        return await AlertRepository(conn).insert(
            None, a.camera_id, f"suspicious_activity_{a.activity_type}", a.severity, message,
            person_id=person_ids[0], suspicious_activity_id=a.id,
            track_id=(a.details.get("track_ids") or [None])[0], trigger_evidence=a.details)

    @staticmethod
    def _camera_of(recorded, observations) -> UUID | None:
        if observations:
            return UUID(str(observations[0].camera_id))
        return recorded[0].event.camera_id if recorded else None

    # ------------------------------------------------------------------ geometry and analytics

    @staticmethod
    async def _zones(conn, camera_id: UUID) -> dict[str, ZoneGeometry]:
        zones = {}
        for zone in await ZoneRepository(conn).list_for_camera(camera_id, active_only=True):
            try:
                zones[str(zone.id)] = ZoneGeometry(str(zone.id), zone.name, ZoneType(zone.zone_type), zone.polygon,
                                                   ZoneThresholds(zone.dwell_threshold_seconds,
                                                                  zone.loiter_threshold_seconds, zone.crowd_threshold))
            except ValueError as exc:  # a zone stored before validation existed: skip it, loudly
                log.warning("zone skipped", zone_id=str(zone.id), error=str(exc))
        return zones

    async def _configure(self, conn, camera_id: UUID, zones: dict[str, ZoneGeometry]) -> None:
        key = str(camera_id)
        if time.monotonic() - self._configured_at.get(key, -CONFIG_TTL_S) < CONFIG_TTL_S:
            return
        page = await AnalyticsConfigRepository(conn).list(camera_ids=[camera_id], page_size=1000)
        site_timezone = (await camera_facts(conn, camera_id)).site_timezone
        configs = [
            EngineConfig(str(c.id), ActivityType(c.activity_type),
                         zone=zones.get(str(c.zone_id)) if c.zone_id else None,
                         severity=Severity(c.severity), parameters=c.parameters, site_timezone=site_timezone,
                         analytic=c.analytic)
            for c in page.items if c.is_active and (c.zone_id is None or str(c.zone_id) in zones)
        ]
        self.engine.configure_camera(key, configs)
        self._configured_at[key] = time.monotonic()

    async def _activities(self, conn, camera_id: UUID, zones, observations) -> list[SuspiciousActivity]:
        if not observations:
            return []
        await self._configure(conn, camera_id, zones)
        detections = self.engine.observe_batch(str(camera_id), observations)
        return [await self._store(conn, d) for d in detections]

    @staticmethod
    async def _store(conn, d: Detection) -> SuspiciousActivity:
        return await SuspiciousActivityRepository(conn).record(
            UUID(d.camera_id), d.activity_type.value, UUID(d.zone_id) if d.zone_id else None,
            round(min(max(d.confidence, 0.0), 1.0), 3), d.severity.value, d.details(), d.detected_at)

    # ------------------------------------------------------------------ facts for the rules

    async def _facts(self, conn, camera_id: UUID, zones: dict[str, ZoneGeometry],
                     recorded: Sequence[RecordedEvent], observations: Sequence[TrackObservation],
                     activities: Sequence[SuspiciousActivity]) -> list[Fact]:
        camera = await camera_facts(conn, camera_id)
        where = {}  # track → zones its feet are in, at its latest observation of the batch
        for obs in observations:
            where[obs.track_id] = frozenset(UUID(z.id) for z in zones.values() if z.contains(_feet(obs)))
        person_ids = {r.event.person_id for r in recorded if r.event.person_id}
        for a in activities:
            person_ids |= {UUID(p) for p in a.details.get("person_ids", [])}
        persons = await person_facts(conn, person_ids)
        common = dict(camera_id=camera_id, site_timezone=camera.site_timezone, camera_name=camera.name,
                      zone_names=camera.zone_names)
        facts = []
        for r in recorded:
            e = r.event
            facts.append(Fact(
                observed_at=e.timestamp, confidence=e.confidence, track_id=r.track_id, event_type=e.event_type,
                event_id=e.id, zone_ids=where.get(r.track_id, frozenset()),
                persons=(persons[e.person_id],) if e.person_id in persons else (), cluster_id=e.cluster_id,
                similarity=e.metadata.get("similarity"), frame_number=e.frame_number,
                object_class=e.metadata.get("object_class"), object_label=e.metadata.get("object_label"), **common))
        for a in activities:
            involved = tuple(persons[UUID(p)] for p in a.details.get("person_ids", []) if UUID(p) in persons)
            track_ids = a.details.get("track_ids") or [""]
            facts.append(Fact(
                observed_at=a.timestamp, confidence=a.confidence, track_id=track_ids[0],
                activity_type=a.activity_type, suspicious_activity_id=a.id, activity_severity=a.severity,
                zone_ids=frozenset({a.zone_id}) if a.zone_id else frozenset(), persons=involved,
                cluster_id=UUID(a.details["cluster_id"]) if a.details.get("cluster_id") else None,
                object_class=a.details.get("object_class", "person"), object_label=a.details.get("object_label"),
                **common))
        return facts
