"""Alert rules: evaluating them against observed facts (pure) and writing the alerts they raise.

The ingest path, per stored event or suspicious activity:

    rules = await AlertRuleRepository(conn).active_for_camera(camera_id)
    fact = Fact(camera_id=..., observed_at=..., confidence=..., event_type=..., event_id=..., ...)
    firings = RuleEvaluator().evaluate(rules, fact)
    alerts = await write_alerts(conn, firings)      # in the transaction that stored the event
"""

from vigil.control.rules.evaluator import Clause, Firing, RuleEvaluator, deciding_clause, default_severity
from vigil.control.rules.facts import Fact, PersonFacts
from vigil.control.rules.lookups import CameraFacts, camera_facts, person_facts
from vigil.control.rules.writer import AlertWrites, JoinedMatch, write_alerts, write_firings
from vigil.control.schedule import QuietHours, Schedule, ScheduleError

__all__ = [
    "AlertWrites", "CameraFacts", "Clause", "Fact", "Firing", "JoinedMatch", "PersonFacts", "QuietHours",
    "RuleEvaluator", "Schedule", "ScheduleError", "camera_facts", "deciding_clause", "default_severity",
    "person_facts", "write_alerts", "write_firings",
]
