"""Persons with labels and aliases, and watchlists with their entries."""

from __future__ import annotations

import uuid

import pytest

from tests.storage.builders import count, unique
from vigil.errors import AlreadyExists, InvalidArgument, NotFound
from vigil.storage.repositories.persons import PersonRepository
from vigil.storage.repositories.watchlists import WatchlistRepository


async def test_person_crud_round_trip(conn, actor_id):
    persons = PersonRepository(conn)
    cur = await conn.execute("SELECT current_user AS role")
    assert (await cur.fetchone())["role"] == "vigil_app"  # row-level security applies to these tests

    person = await persons.create(name="Ada Lovelace", status="known", role="engineer", company="Analytical Ltd",
                                  created_by=actor_id)
    assert (person.status, person.created_by, person.primary_face_embedding_id) == ("known", actor_id, None)
    assert await persons.get(person.id) == person
    updated = await persons.update(person.id, {"status": "vip", "notes": "keynote speaker"})
    assert (updated.status, updated.notes, updated.name) == ("vip", "keynote speaker", "Ada Lovelace")
    assert updated.updated_at >= person.updated_at
    assert await persons.update(person.id, {}) == updated

    with pytest.raises(InvalidArgument) as unknown:
        await persons.update(person.id, {"primary_face_embedding_id": uuid.uuid4()})
    assert unknown.value.field == "primary_face_embedding_id"
    with pytest.raises(InvalidArgument) as bad_status:
        await persons.update(person.id, {"status": "famous"})
    assert bad_status.value.field == "status"
    assert (await persons.get(person.id)).status == "vip"

    await persons.delete(person.id)
    with pytest.raises(NotFound):
        await persons.get(person.id)
    with pytest.raises(NotFound):
        await persons.update(person.id, {"notes": "gone"})


async def test_labels_and_aliases(conn, actor_id):
    persons = PersonRepository(conn)
    person = await persons.create(name="Grace Hopper", status="known")
    label = await persons.add_label(person.id, "employee", created_by=actor_id)
    await persons.add_label(person.id, "vip")
    assert [entry.label for entry in await persons.list_labels(person.id)] == ["employee", "vip"]
    assert label.created_by == actor_id
    with pytest.raises(AlreadyExists) as dup:
        await persons.add_label(person.id, "employee")
    assert (dup.value.resource, dup.value.field) == ("person_label", "label")
    with pytest.raises(InvalidArgument) as bad_label:
        await persons.add_label(person.id, "astronaut")
    assert bad_label.value.field == "label"
    with pytest.raises(NotFound) as no_person:
        await persons.add_label(uuid.uuid4(), "vip")
    assert no_person.value.resource == "person"
    await persons.remove_label(person.id, "vip")
    assert [entry.label for entry in await persons.list_labels(person.id)] == ["employee"]
    with pytest.raises(NotFound):
        await persons.remove_label(person.id, "vip")

    await persons.add_alias(person.id, "Amazing Grace")
    await persons.add_alias(person.id, "Admiral")
    assert [a.alias_name for a in await persons.list_aliases(person.id)] == ["Admiral", "Amazing Grace"]
    with pytest.raises(AlreadyExists) as dup_alias:
        await persons.add_alias(person.id, "Admiral")
    assert dup_alias.value.field == "alias_name"
    await persons.remove_alias(person.id, "Admiral")
    with pytest.raises(NotFound):
        await persons.remove_alias(person.id, "Admiral")
    assert [a.alias_name for a in await persons.list_aliases(person.id)] == ["Amazing Grace"]


async def test_person_list_filters_search_and_pages(conn):
    persons = PersonRepository(conn)
    tag = uuid.uuid4().hex[:6]
    created = [await persons.create(name=f"walker {tag} {n}", status="known" if n % 2 else "unknown")
               for n in range(7)]
    await persons.add_label(created[3].id, "visitor")
    await persons.add_alias(created[4].id, f"runner_{tag}%")

    seen, token = [], None
    while True:
        page = await persons.list(search=f"walker {tag}", page_size=3, page_token=token)
        seen.extend(page.items)
        token = page.next_page_token
        if token is None:
            break
    assert [p.id for p in seen] == [p.id for p in sorted(created, key=lambda p: (p.created_at, p.id), reverse=True)]
    assert len({p.id for p in seen}) == 7

    known = await persons.list(search=f"WALKER {tag}", status="known")
    assert {p.id for p in known.items} == {created[n].id for n in (1, 3, 5)}
    visitors = await persons.list(label="visitor", search=tag)
    assert [p.id for p in visitors.items] == [created[3].id]
    # the search also finds aliases, and takes % and _ literally
    assert [p.id for p in (await persons.list(search=f"runner_{tag}%")).items] == [created[4].id]
    assert (await persons.list(search=f"runner%{tag}")).items == []
    with pytest.raises(InvalidArgument) as bad_label:
        await persons.list(label="martian")
    assert bad_label.value.field == "label"
    with pytest.raises(InvalidArgument) as bad_token:
        await persons.list(page_token="eyJub3QiOiAiYSBsaXN0In0")  # valid base64 JSON, wrong shape
    assert bad_token.value.field == "page_token"


async def test_watchlist_crud_and_entries(conn, actor_id):
    persons = PersonRepository(conn)
    watchlists = WatchlistRepository(conn)
    suspect = await persons.create(name="Suspect", status="blacklisted")
    bystander = await persons.create(name="Bystander")
    banned = await watchlists.create(unique("banned"), "blacklist", actor_id, description="trespassers")
    archived = await watchlists.create(unique("archived"), "suspect", actor_id, is_active=False)
    assert await watchlists.get(banned.id) == banned

    entry = await watchlists.add_person(banned.id, suspect.id, actor_id, notes="seen at gate 3")
    await watchlists.add_person(archived.id, suspect.id, actor_id)
    assert (entry.person_id, entry.added_by, entry.notes) == (suspect.id, actor_id, "seen at gate 3")
    with pytest.raises(AlreadyExists) as dup:
        await watchlists.add_person(banned.id, suspect.id, actor_id)
    assert (dup.value.resource, dup.value.field) == ("watchlist_entry", "person_id")
    with pytest.raises(NotFound) as no_list:
        await watchlists.add_person(uuid.uuid4(), suspect.id, actor_id)
    assert no_list.value.resource == "watchlist"
    with pytest.raises(InvalidArgument) as no_person:
        await watchlists.add_person(banned.id, uuid.uuid4(), actor_id)
    assert no_person.value.field == "person_id"

    assert [w.id for w in await watchlists.active_watchlists_of(suspect.id)] == [banned.id]
    assert await watchlists.active_watchlists_of(bystander.id) == []
    assert [e.person_id for e in (await watchlists.entries(banned.id)).items] == [suspect.id]

    renamed = await watchlists.update(banned.id, {"name": banned.name + "!", "watch_type": "custom"})
    assert (renamed.name, renamed.watch_type) == (banned.name + "!", "custom")
    with pytest.raises(InvalidArgument) as unknown:
        await watchlists.update(banned.id, {"created_by": actor_id})
    assert unknown.value.field == "created_by"
    page = await watchlists.list(watch_types=["custom"], is_active=True, page_size=1000)
    assert renamed in page.items and archived not in page.items

    await watchlists.remove_person(banned.id, suspect.id)
    assert await watchlists.active_watchlists_of(suspect.id) == []
    with pytest.raises(NotFound):
        await watchlists.remove_person(banned.id, suspect.id)
    await watchlists.delete(archived.id)
    assert await count(conn, "SELECT count(*) FROM watchlist_entries WHERE watchlist_id = %s", (archived.id,)) == 0
    with pytest.raises(NotFound):
        await watchlists.get(archived.id)


async def test_watchlist_entries_page(conn, actor_id):
    persons = PersonRepository(conn)
    watchlists = WatchlistRepository(conn)
    watchlist = await watchlists.create(unique("vips"), "vip", actor_id)
    members = [await persons.create(name=f"vip {n}", status="vip") for n in range(5)]
    for person in members:
        await watchlists.add_person(watchlist.id, person.id, actor_id)
    first = await watchlists.entries(watchlist.id, page_size=2)
    second = await watchlists.entries(watchlist.id, page_size=2, page_token=first.next_page_token)
    third = await watchlists.entries(watchlist.id, page_size=2, page_token=second.next_page_token)
    ids = [e.person_id for e in first.items + second.items + third.items]
    assert sorted(ids) == sorted(p.id for p in members) and len(set(ids)) == 5
    assert third.next_page_token is None
