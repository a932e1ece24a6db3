"""Row-level security: a non-superuser database login acting for a user of site A cannot read
site B's events, alerts, suspicious activity or media."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo


@pytest.fixture
def two_sites(db):
    """Sites A and B, a camera each with an event, alert, suspicious activity and media file,
    and an operator assigned to site A only."""
    now = datetime.now(UTC)
    tag = uuid.uuid4().hex[:8]
    role_id = db.execute("SELECT id FROM roles WHERE name = 'operator'").fetchone()[0]
    user = db.execute(
        "INSERT INTO users (username, email, password_hash, role_id) VALUES (%s, %s, 'x', %s) RETURNING id",
        (f"op-{tag}", f"op-{tag}@example.test", role_id)).fetchone()[0]
    ids = {}
    for label in ("A", "B"):
        site = db.execute("INSERT INTO sites (name) VALUES (%s) RETURNING id", (f"site {label} {tag}",)).fetchone()[0]
        dvr = db.execute("INSERT INTO dvrs (site_id, name, ip_address) VALUES (%s, 'dvr', '10.1.1.1') RETURNING id",
                         (site,)).fetchone()[0]
        cam = db.execute("INSERT INTO cameras (dvr_id, channel_number, name) VALUES (%s, 1, %s) RETURNING id",
                         (dvr, f"cam {label}")).fetchone()[0]
        event = db.execute(
            "INSERT INTO events (camera_id, event_type, confidence, bounding_box, timestamp)"
            " VALUES (%s, 'human_detected', 0.9, '{}', %s) RETURNING id", (cam, now)).fetchone()[0]
        db.execute("INSERT INTO alerts (event_id, camera_id, alert_type, severity, message)"
                   " VALUES (%s, %s, 'probe', 'low', %s)", (event, cam, f"alert {label}"))
        db.execute("INSERT INTO suspicious_activity_events (camera_id, activity_type, confidence, severity, timestamp)"
                   " VALUES (%s, 'loitering', 0.8, 'low', %s)", (cam, now))
        db.execute("INSERT INTO media_files (file_type, storage_path, file_size, checksum, camera_id, timestamp,"
                   " retention_until) VALUES ('image', %s, 1, %s, %s, %s, %s)",
                   (f"{cam}/probe.jpg", "0" * 64, cam, now, now))
        ids[label] = {"site": site, "camera": cam}
    db.execute("INSERT INTO user_site_assignments (user_id, site_id) VALUES (%s, %s)", (user, ids["A"]["site"]))
    yield user, ids
    for label in ("A", "B"):
        cam = ids[label]["camera"]
        for table in ("alerts", "suspicious_activity_events", "media_files", "events"):
            db.execute(f"DELETE FROM {table} WHERE camera_id = %s", (cam,))
        db.execute("DELETE FROM sites WHERE id = %s", (ids[label]["site"],))
    db.execute("DELETE FROM users WHERE id = %s", (user,))


@pytest.fixture
def app_login(db, endpoints):
    """A real non-superuser login that is a member of vigil_app (the application's role)."""
    name, password = f"rls_probe_{uuid.uuid4().hex[:8]}", secrets.token_urlsafe(16)
    db.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} IN ROLE vigil_app").format(
        sql.Identifier(name), sql.Literal(password)))
    params = conninfo_to_dict(endpoints.database_dsn) | {"user": name, "password": password}
    yield make_conninfo(**params)
    db.execute(sql.SQL("DROP OWNED BY {0}; DROP ROLE {0}").format(sql.Identifier(name)))


def _visible(conn, table: str, cameras: set) -> set:
    rows = conn.execute(f"SELECT DISTINCT camera_id FROM {table}").fetchall()
    return {r[0] for r in rows} & cameras


def test_site_a_user_sees_only_site_a(two_sites, app_login):
    user, ids = two_sites
    cameras = {ids["A"]["camera"], ids["B"]["camera"]}
    with psycopg.connect(app_login) as conn:
        assert not conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0]
        conn.execute("SET ROLE vigil_app")
        conn.execute(
            "SELECT set_config('app.current_user_id', %s, false), set_config('app.user_role', 'operator', false)",
            (str(user),),
        )
        for table in ("events", "alerts", "suspicious_activity_events", "media_files"):
            assert _visible(conn, table, cameras) == {ids["A"]["camera"]}, table
        # and cannot touch site B's rows either
        updated = conn.execute("UPDATE alerts SET message = 'x' WHERE camera_id = %s", (ids["B"]["camera"],))
        assert updated.rowcount == 0
        conn.rollback()


def test_no_user_sees_nothing_and_super_admin_sees_all(two_sites, app_login):
    _, ids = two_sites
    cameras = {ids["A"]["camera"], ids["B"]["camera"]}
    with psycopg.connect(app_login, autocommit=True) as conn:
        conn.execute("SET ROLE vigil_app")
        assert _visible(conn, "events", cameras) == set()  # no user set: nothing, and no cast error
        conn.execute("SELECT set_config('app.user_role', 'super_admin', false)")
        assert _visible(conn, "events", cameras) == cameras
