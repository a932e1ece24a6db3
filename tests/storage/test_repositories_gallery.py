"""What the person and media APIs need from the repositories: listings by name and by page,
person merges, primary faces after deletes and merges, unknown-face clusters, and media listings."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from tests.storage.builders import make_camera, unique
from vigil.errors import FailedPrecondition, InvalidArgument, NotFound
from vigil.storage.repositories.alerts import AlertRepository, AlertRuleRepository
from vigil.storage.repositories.events import EventRepository
from vigil.storage.repositories.faces import (
    ClusterRepository,
    FaceEmbeddingRepository,
    ModelVersion,
    ModelVersionRepository,
)
from vigil.storage.repositories.media import MediaFileRepository
from vigil.storage.repositories.persons import PersonRepository
from vigil.storage.repositories.watchlists import WatchlistRepository

BOX = {"x": 0.1, "y": 0.1, "width": 0.2, "height": 0.3}


async def model(conn, dim: int = 4) -> ModelVersion:
    return await ModelVersionRepository(conn).register(f"gallery-{uuid.uuid4().hex[:8]}", dim, 0.4)


async def face(conn, person_id, version: ModelVersion, quality: float):
    vector = np.random.default_rng().normal(size=version.embedding_dim)
    return await FaceEmbeddingRepository(conn).insert(person_id, version, vector, f"faces/{uuid.uuid4()}.jpg",
                                                      face_quality=quality, confidence=0.9)


async def all_pages(list_page, **kwargs):
    items, token = [], None
    while True:
        page = await list_page(**kwargs, page_size=2, page_token=token)
        items.extend(page.items)
        token = page.next_page_token
        if token is None:
            return items


async def test_list_by_name_orders_unnamed_last_pages_and_filters(conn, actor_id):
    persons, watchlists = PersonRepository(conn), WatchlistRepository(conn)
    tag = uuid.uuid4().hex[:8]
    bea = await persons.create(name=f"Bea {tag}", status="known", role="guard")
    ann = await persons.create(name=f"Ann {tag}", status="vip", role="driver")
    unnamed = [await persons.create(notes=tag) for _ in range(2)]
    await persons.add_alias(unnamed[0].id, f"nick {tag}")
    await persons.add_label(bea.id, "employee")
    vips = await watchlists.create(unique("vips"), "vip", actor_id)
    await watchlists.add_person(vips.id, ann.id, actor_id)

    ours = {bea.id, ann.id, *(p.id for p in unnamed)}
    listed = [p.id for p in await all_pages(persons.list_by_name) if p.id in ours]
    assert listed == [ann.id, bea.id, *sorted(p.id for p in unnamed)]

    async def ids(**filters):
        return {p.id for p in (await persons.list_by_name(**filters, page_size=1000)).items} & ours

    assert await ids(statuses=["known", "vip"]) == {ann.id, bea.id}
    assert await ids(labels=["employee", "visitor"]) == {bea.id}
    assert await ids(watchlist_ids=[vips.id]) == {ann.id}
    assert await ids(roles=["driver"], statuses=["vip"]) == {ann.id}
    assert await ids(search=f"NICK {tag}") == {unnamed[0].id}
    assert await ids(statuses=[], labels=[]) == ours
    with pytest.raises(InvalidArgument) as bad_token:
        await persons.list_by_name(page_token="WyJtYXliZSIsIiIsIngiXQ")  # ["maybe","","x"]
    assert bad_token.value.field == "page_token"


async def test_details_labels_aliases_and_their_pages(conn):
    persons = PersonRepository(conn)
    person = await persons.create(name="Paged")
    for label in ("vip", "employee", "visitor"):
        await persons.add_label(person.id, label)
    aliases = [await persons.add_alias(person.id, name) for name in ("c", "a", "b")]
    version = await model(conn)
    await face(conn, person.id, version, 0.5)
    bare = await persons.create()

    details = await persons.details([person.id, bare.id])
    assert (details[person.id].labels, details[person.id].aliases, details[person.id].face_count) == \
        (["employee", "visitor", "vip"], ["a", "b", "c"], 1)  # labels in the enum's order
    assert (details[bare.id].labels, details[bare.id].aliases, details[bare.id].face_count) == ([], [], 0)
    assert [e.label for e in await all_pages(persons.labels_page, person_id=person.id)] == \
        ["employee", "visitor", "vip"]
    assert [a.alias_name for a in await all_pages(persons.aliases_page, person_id=person.id)] == ["a", "b", "c"]

    removed = await persons.delete_alias(aliases[0].id)
    assert removed == aliases[0]
    assert [a.alias_name for a in await persons.list_aliases(person.id)] == ["a", "b"]
    with pytest.raises(NotFound):
        await persons.delete_alias(aliases[0].id)


async def test_settle_primaries_promotes_the_best_remaining_face(conn):
    persons, faces = PersonRepository(conn), FaceEmbeddingRepository(conn)
    person = await persons.create(name="Promoted")
    version, other_version = await model(conn), await model(conn)
    weak, best, strong = [await face(conn, person.id, version, q) for q in (0.3, 0.9, 0.7)]
    other = await face(conn, person.id, other_version, 0.5)
    await faces.set_primary(other.id)
    await faces.set_primary(strong.id)

    await faces.delete(strong.id)  # the primary and the person's preferred face
    assert (await persons.get(person.id)).primary_face_embedding_id is None
    await faces.settle_primaries(person.id)
    assert (await faces.get(best.id)).is_primary and not (await faces.get(weak.id)).is_primary
    assert (await faces.get(other.id)).is_primary  # other versions keep theirs
    assert (await persons.get(person.id)).primary_face_embedding_id == best.id  # the best primary face


async def test_merge_moves_everything_to_the_target(conn, actor_id, secret_box):
    persons, faces, watchlists = PersonRepository(conn), FaceEmbeddingRepository(conn), WatchlistRepository(conn)
    camera = await make_camera(conn, secret_box)
    target = await persons.create(name="Target", status="known")
    first, second = await persons.create(name="First"), await persons.create(name="Second")
    version, second_version = await model(conn), await model(conn)

    kept = await face(conn, target.id, version, 0.2)
    await faces.set_primary(kept.id)
    demoted = await face(conn, first.id, version, 0.95)
    await faces.set_primary(demoted.id)
    weaker, stronger = await face(conn, first.id, second_version, 0.4), await face(conn, second.id, second_version, 0.8)
    await faces.set_primary(weaker.id)
    await faces.set_primary(stronger.id)

    await persons.add_label(target.id, "employee")
    await persons.add_label(first.id, "employee")
    await persons.add_label(second.id, "contractor")
    await persons.add_alias(first.id, "Shared")
    await persons.add_alias(second.id, "Shared")
    await persons.add_alias(second.id, "Target")  # the target's own name does not become its alias
    both = await watchlists.create(unique("both"), "custom", actor_id)
    only_second = await watchlists.create(unique("only"), "custom", actor_id)
    await watchlists.add_person(both.id, target.id, actor_id)
    await watchlists.add_person(both.id, first.id, actor_id)
    await watchlists.add_person(only_second.id, first.id, actor_id)
    await watchlists.add_person(only_second.id, second.id, actor_id)
    event = await EventRepository(conn).insert(camera.id, "person_recognized", datetime.now(UTC), 0.9, BOX,
                                               person_id=first.id)
    alert = await AlertRepository(conn).insert(event.id, camera.id, "recognition", "high", "seen",
                                               person_id=second.id)
    rule = await AlertRuleRepository(conn).create("watch second", actor_id, person_id=second.id)

    await persons.merge(target.id, [first.id, second.id])

    for gone in (first.id, second.id):
        with pytest.raises(NotFound):
            await persons.get(gone)
    details = (await persons.details([target.id]))[target.id]
    assert (details.labels, details.face_count) == (["employee", "contractor"], 4)
    assert details.aliases == ["First", "Second", "Shared"]
    primaries = {f.id for f in await faces.list_for_person(target.id) if f.is_primary}
    assert primaries == {kept.id, stronger.id}  # the target's own, else the best of the sources'
    entries = (await watchlists.entries(person_id=target.id, page_size=100)).items
    assert sorted(e.watchlist_id for e in entries) == sorted([both.id, only_second.id])
    assert (await EventRepository(conn).get(event.id)).person_id == target.id
    assert (await AlertRepository(conn).get(alert.id)).person_id == target.id
    assert (await AlertRuleRepository(conn).get(rule.id)).person_id == target.id

    with pytest.raises(InvalidArgument):
        await persons.merge(target.id, [target.id])
    with pytest.raises(NotFound):
        await persons.merge(target.id, [uuid.uuid4()])


async def cluster(conn, label: str, sample_count: int, representative=None, *, status: str = "active",
                  last_seen: datetime | None = None) -> uuid.UUID:
    last_seen = last_seen or datetime.now(UTC)
    cur = await conn.execute(
        "INSERT INTO person_clusters (cluster_label, sample_count, representative_embedding_id, first_seen,"
        " last_seen, status) VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
        (unique(label)[:50], sample_count, representative, last_seen - timedelta(hours=1), last_seen, status))
    return (await cur.fetchone())["id"]


async def test_clusters_list_merge_and_assign(conn, secret_box):
    persons, clusters, events = PersonRepository(conn), ClusterRepository(conn), EventRepository(conn)
    camera = await make_camera(conn, secret_box)
    version = await model(conn)
    holder_a, holder_b = await persons.create(), await persons.create()
    face_a, face_b = await face(conn, holder_a.id, version, 0.4), await face(conn, holder_b.id, version, 0.9)
    now = datetime.now(UTC)
    target = await cluster(conn, "Unknown-a", 3, face_a.id, last_seen=now - timedelta(days=2))
    source = await cluster(conn, "Unknown-b", 2, face_b.id, last_seen=now)
    earlier = await cluster(conn, "Unknown-c", 1, status="merged")
    await conn.execute("UPDATE person_clusters SET merged_into_cluster_id = %s WHERE id = %s", (source, earlier))
    sighting = await events.insert(camera.id, "face_detected", now, 0.8, BOX, cluster_id=source)

    got = await clusters.get(source)
    assert (got.event_count, got.camera_ids, got.representative_person_id) == (1, [camera.id], holder_b.id)
    listed = [c.id for c in (await clusters.list(statuses=["active"], camera_ids=[camera.id])).items]
    assert listed == [source]
    ours = {target, source, earlier}
    by_size = [c.id for c in await all_pages(clusters.list, statuses=["active", "merged"]) if c.id in ours]
    assert by_size == [target, source, earlier]  # largest first
    recent = await clusters.list(statuses=["active"], last_seen_since=now - timedelta(hours=1), page_size=1000)
    assert [c.id for c in recent.items if c.id in ours] == [source]

    merged = await clusters.merge(target, [source])
    assert (merged.sample_count, merged.event_count, merged.representative_embedding_id) == (5, 1, face_b.id)
    assert (merged.first_seen, merged.last_seen) == (now - timedelta(days=2, hours=1), now)
    gone = await clusters.get(source)
    assert (gone.status, gone.merged_into_cluster_id) == ("merged", target)
    assert (await clusters.get(earlier)).merged_into_cluster_id == target
    assert (await events.get(sighting.id)).cluster_id == target
    with pytest.raises(FailedPrecondition):
        await clusters.merge(target, [source])

    named = await persons.create(name="Identified")
    assigned = await clusters.assign_to_person(target, named.id)
    assert assigned.status == "reviewed"
    assert (await events.get(sighting.id)).person_id == named.id
    with pytest.raises(FailedPrecondition):
        await clusters.assign_to_person(target, named.id)
    with pytest.raises(NotFound):
        await clusters.get(uuid.uuid4())


async def test_faces_model_versions_and_media_pages(conn, secret_box):
    persons, faces = PersonRepository(conn), FaceEmbeddingRepository(conn)
    person = await persons.create(name="Pages")
    version, other = await model(conn), await model(conn)
    created = [await face(conn, person.id, version, 0.5) for _ in range(3)] + [await face(conn, person.id, other, 0.5)]
    newest_first = sorted(created, key=lambda f: (f.created_at, f.id), reverse=True)
    assert [f.id for f in await all_pages(faces.page_for_person, person_id=person.id)] == [f.id for f in newest_first]
    only_other = await faces.page_for_person(person.id, model_versions=[other.version_string])
    assert [f.id for f in only_other.items] == [created[3].id]

    versions = [v for v in await all_pages(ModelVersionRepository(conn).list_page) if v.id in (version.id, other.id)]
    assert versions == sorted(versions, key=lambda v: (v.created_at, v.id), reverse=True) and len(versions) == 2

    camera, elsewhere = await make_camera(conn, secret_box), await make_camera(conn, secret_box)
    media = MediaFileRepository(conn)
    now, event_id = datetime.now(UTC), uuid.uuid4()

    async def register(camera_id, name, mime, age_minutes, **kwargs):
        return await media.register(camera_id, name, checksum="0" * 64, file_size=1, mime_type=mime,
                                    timestamp=now - timedelta(minutes=age_minutes),
                                    retention_until=now + timedelta(days=1), **kwargs)

    old = await register(camera.id, "old.jpg", "image/jpeg", 30)
    clip = await register(camera.id, "clip.mp4", "video/mp4", 20, event_id=event_id)
    new = await register(camera.id, "new.jpg", "image/jpeg", 10, event_id=event_id)
    await register(elsewhere.id, "other.jpg", "image/jpeg", 5)
    assert [m.id for m in await all_pages(media.list, camera_ids=[camera.id])] == [new.id, clip.id, old.id]
    assert [m.id for m in (await media.list(event_id=event_id, file_types=["video"])).items] == [clip.id]
    assert [m.id for m in (await media.list(camera_ids=[camera.id], since=now - timedelta(minutes=25),
                                            until=now - timedelta(minutes=10))).items] == [clip.id]
