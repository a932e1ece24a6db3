"""After hours: a person is present in the zone (or the frame) outside the allowed weekly hours."""

from __future__ import annotations

from vigil.control.analytics.base import rounded_point
from vigil.control.analytics.model import ActivityType, Detection, TrackObservation
from vigil.control.analytics.parameters import MAX_GAP, ParameterSpec, ParameterType
from vigil.control.analytics.presence import INSIDE_STEPS, PresenceAnalytic, Step, Visit


class AfterHours(PresenceAnalytic):
    name = "after_hours"
    version = "1"
    activity_types = (ActivityType.AFTER_HOURS,)
    summary = ("A person is in the zone (or the frame) at a time outside allowed_hours. Fires at "
               "the first such observation of a stay, so a stay that began in hours fires when "
               "the window closes; once per stay.")
    parameters = (
        ParameterSpec("allowed_hours", ParameterType.SCHEDULE,
                      description='When presence is normal: {"days": [0..6, 0 = Sunday; empty = '
                                  'every day], "start_time": "HH:MM", "end_time": "HH:MM" (exclusive; '
                                  'earlier than start crosses midnight, equal = whole day), "timezone": '
                                  'IANA name; the site\'s when absent}.'),
        MAX_GAP,
    )
    zone_required = False

    def on_step(self, obs: TrackObservation, step: Step, visit: Visit | None) -> list[Detection]:
        schedule = self.params["allowed_hours"]
        if step not in INSIDE_STEPS or visit.handled or schedule.contains(obs.capture_time):
            return []
        visit.handled = True
        weekday, local_time = schedule.local_day_and_time(obs.capture_time)
        return [self.track_detection(ActivityType.AFTER_HOURS, obs, started_at=obs.capture_time, evidence={
            "local_time": local_time,
            "local_weekday": weekday,
            "allowed_hours": schedule.to_json(),
            "entered_at": visit.entered_at.isoformat(),
            "location": rounded_point(obs.box.feet),
        })]
