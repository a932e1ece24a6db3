"""Message templates: the seed's defaults, checks, and rendering that alert text cannot subvert."""

from __future__ import annotations

import dataclasses

import pytest

from vigil.control.notifications import templates
from vigil.errors import InvalidArgument
from vigil.storage.repositories.channel_settings import PLACEHOLDERS, check_template


def test_defaults_are_the_schema_column_defaults(db):
    rows = dict(db.execute(
        "SELECT table_name, column_default FROM information_schema.columns"
        " WHERE column_name = 'message_template' AND table_name IN ('telegram_configs', 'whatsapp_configs')"
    ).fetchall())
    assert rows["telegram_configs"] == f"'{templates.TELEGRAM}'::text"
    assert rows["whatsapp_configs"] == f"'{templates.WHATSAPP}'::text"


def test_every_placeholder_renders(notification):
    rendered = templates.render(" | ".join(f"{{{{{name}}}}}" for name in PLACEHOLDERS), notification)
    assert rendered.split(" | ") == [
        str(notification.alert_id), "person_recognized", notification.message, "high", "2026-03-01 22:15:03 UTC",
        "Entrance cam", "Main entrance", "HQ", "Jane Doe", "87"]


def test_alert_text_is_never_expanded_or_interpreted(notification):
    hostile = dataclasses.replace(notification, message="{{alert_id}} {0} {message} %s %(x)s ${HOME}",
                                  camera_name="{{ site_name }}")
    assert templates.render("{{message}} / {{camera_name}} / {{ site_name }}", hostile) == (
        "{{alert_id}} {0} {message} %s %(x)s ${HOME} / {{ site_name }} / HQ")


def test_missing_values_fall_back(notification):
    bare = dataclasses.replace(notification, location=None, person_name=None, confidence=None)
    assert templates.render("{{location}}|{{person_name}}|{{confidence}}", bare) == "Entrance cam|unknown|"


def test_control_characters_are_dropped_and_long_values_cut(notification):
    noisy = dataclasses.replace(notification, message="line one\nline two\x00\x1b[31m" + "x" * 5000)
    rendered = templates.render("{{message}}", noisy)
    assert rendered.startswith("line one\nline two[31mxxx") and len(rendered) == 1024 and rendered.endswith("…")


def test_telegram_values_are_escaped_but_the_template_markup_is_kept(notification):
    rendered = templates.render("<b>{{message}}</b>", notification, escape=templates.telegram_html)
    assert rendered == "<b>Jane &lt;b&gt;Doe&lt;/b&gt; &amp; co seen at {{site_name}} {0} %s</b>"


def test_unknown_placeholders_and_long_templates_are_refused():
    assert check_template("telegram.message_template", "{{alert_type}} {{ camera_name }}", 100)
    with pytest.raises(InvalidArgument) as unknown:
        check_template("telegram.message_template", "{{alert_type}} {{password}} {{__class__}}", 100)
    assert unknown.value.field == "telegram.message_template"
    assert "__class__, password" in unknown.value.message
    with pytest.raises(InvalidArgument) as long:
        check_template("email.subject_template", "x" * 257, 256)
    assert long.value.field == "email.subject_template"
