"""Builders shared by the repository tests."""

from __future__ import annotations

import uuid

import psycopg

from vigil.storage.crypto import SecretBox
from vigil.storage.repositories.sites import Camera, CameraRepository, DvrRepository, SiteRepository


def unique(name: str) -> str:
    return f"{name} {uuid.uuid4().hex[:8]}"


async def make_camera(conn: psycopg.AsyncConnection, secret_box: SecretBox, *, channel: int = 1,
                      name: str = "entrance") -> Camera:
    """A site with one DVR and one camera."""
    site = await SiteRepository(conn).create(unique("site"))
    dvr = await DvrRepository(conn, secret_box).create(site.id, "dvr", "10.0.0.5")
    return await CameraRepository(conn).create(dvr.id, channel, name)


async def count(conn: psycopg.AsyncConnection, query: str, params=()) -> int:
    cur = await conn.execute(query, params)
    return next(iter((await cur.fetchone()).values()))
