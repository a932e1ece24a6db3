"""PersonService through a real gRPC channel: persons, labels, aliases, faces, unknown clusters and
merges, with their validation, NOT_FOUND answers and audit rows."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import grpc
import numpy as np
import pytest
from google.protobuf import field_mask_pb2

from tests.fixtures.control import database
from tests.storage.builders import make_camera
from vigil.api.v1 import common_pb2, person_pb2_grpc
from vigil.api.v1 import person_pb2 as pb
from vigil.storage.repositories.alerts import AlertRuleRepository
from vigil.storage.repositories.events import EventRepository
from vigil.storage.repositories.faces import FaceEmbeddingRepository, ModelVersionRepository
from vigil.storage.repositories.watchlists import WatchlistRepository

BOX = {"x": 0.1, "y": 0.1, "width": 0.2, "height": 0.3}


@pytest.fixture(scope="module")
def persons(channel):
    return person_pb2_grpc.PersonServiceStub(channel)


async def audit_actions(app, resource_id) -> list[str]:
    async with database(app) as conn:
        cur = await conn.execute("SELECT action FROM audit_logs WHERE resource_id = %s AND action LIKE '%%.%%'"
                                 " ORDER BY timestamp", (uuid.UUID(str(resource_id)),))
        return [row["action"] for row in await cur.fetchall()]


async def add_user(conn) -> uuid.UUID:
    user_id = uuid.uuid4()
    await conn.execute("INSERT INTO users (id, username, email, password_hash, role_id)"
                       " SELECT %s, %s, %s, 'not-a-real-hash', id FROM roles WHERE name = 'admin'",
                       (user_id, f"persons-test-{user_id.hex[:12]}", f"{user_id.hex[:12]}@persons-test.invalid"))
    return user_id


async def add_faces(app, person_id: str, qualities: list[float], model_version: str | None = None):
    """Faces of one model version (registered when not given), in the order of `qualities`."""
    async with database(app) as conn:
        if model_version is None:
            model_version = (await ModelVersionRepository(conn).register(
                f"persons-test-{uuid.uuid4().hex[:8]}", 4, 0.4)).version_string
        faces = FaceEmbeddingRepository(conn)
        return [await faces.insert(person_id, model_version, np.random.default_rng().normal(size=4),
                                   f"faces/{uuid.uuid4()}.jpg", face_quality=q, confidence=0.9) for q in qualities]


async def create(persons, metadata, **fields) -> pb.Person:
    return (await persons.CreatePerson(pb.CreatePersonRequest(person=pb.Person(**fields)), metadata=metadata)).person


async def refused(call, request, metadata) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call(request, metadata=metadata)
    return err.value


async def invalid(call, request, metadata, field: str) -> None:
    err = await refused(call, request, metadata)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    assert err.details().startswith(f"{field}: "), err.details()


def mask(*paths: str) -> field_mask_pb2.FieldMask:
    return field_mask_pb2.FieldMask(paths=list(paths))


# --------------------------------------------------------------------------- persons


async def test_person_crud_round_trip(persons, admin, as_role, app):
    created = await create(persons, admin, name="Ada Lovelace", status=common_pb2.PERSON_STATUS_KNOWN,
                           role="engineer", company="Analytical Engines",
                           labels=[common_pb2.PERSON_LABEL_VIP, common_pb2.PERSON_LABEL_EMPLOYEE,
                                   common_pb2.PERSON_LABEL_VIP],
                           aliases=["Countess", "Ada"])
    assert uuid.UUID(created.id) and created.create_time.seconds > 0
    assert (created.name, created.status, created.role, created.face_count) == \
        ("Ada Lovelace", common_pb2.PERSON_STATUS_KNOWN, "engineer", 0)
    assert list(created.labels) == [common_pb2.PERSON_LABEL_EMPLOYEE, common_pb2.PERSON_LABEL_VIP]
    assert list(created.aliases) == ["Ada", "Countess"]
    got = (await persons.GetPerson(pb.GetPersonRequest(id=created.id), metadata=as_role("viewer"))).person
    assert got == created

    unnamed = await create(persons, admin)
    assert (unnamed.name, unnamed.status) == ("", common_pb2.PERSON_STATUS_UNKNOWN)

    update = pb.Person(id=created.id, name="Augusta Ada King", notes="first programmer", role="ignored")
    updated = (await persons.UpdatePerson(pb.UpdatePersonRequest(person=update, update_mask=mask("name", "notes")),
                                          metadata=admin)).person
    assert (updated.name, updated.notes, updated.role, list(updated.aliases)) == \
        ("Augusta Ada King", "first programmer", "engineer", ["Ada", "Countess"])
    everything = pb.Person(id=created.id, name="A. A. King", status=common_pb2.PERSON_STATUS_VIP)
    replaced = (await persons.UpdatePerson(pb.UpdatePersonRequest(person=everything, update_mask=mask("*")),
                                           metadata=admin)).person
    assert (replaced.name, replaced.status, replaced.role, replaced.notes) == \
        ("A. A. King", common_pb2.PERSON_STATUS_VIP, "", "")

    await persons.DeletePerson(pb.DeletePersonRequest(id=created.id), metadata=as_role("super_admin"))
    err = await refused(persons.GetPerson, pb.GetPersonRequest(id=created.id), admin)
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert await audit_actions(app, created.id) == ["person.create", "person.update", "person.update",
                                                    "person.delete"]


@pytest.mark.parametrize("person, field", [
    (pb.Person(name="x" * 201), "person.name"),
    (pb.Person(role="r" * 101), "person.role"),
    (pb.Person(notes="bad\x00byte"), "person.notes"),
    (pb.Person(status=42), "person.status"),
    (pb.Person(labels=[common_pb2.PERSON_LABEL_VIP, common_pb2.PERSON_LABEL_UNSPECIFIED]), "person.labels[1]"),
    (pb.Person(aliases=["ok", "  "]), "person.aliases[1]"),
    (pb.Person(primary_face_id=str(uuid.uuid4())), "person.primary_face_id"),
    (None, "person"),
])
async def test_create_refuses_bad_input_and_writes_nothing(persons, admin, app, person, field):
    marker = f"never-{uuid.uuid4().hex}"
    if person is not None:
        person.company = marker
    await invalid(persons.CreatePerson, pb.CreatePersonRequest(person=person), admin, field)
    async with database(app) as conn:
        cur = await conn.execute("SELECT count(*) AS n FROM persons WHERE company = %s", (marker,))
        assert (await cur.fetchone())["n"] == 0


async def test_update_mask_and_id_errors(persons, admin):
    person = await create(persons, admin, name="Masked")
    cases = [
        (pb.Person(id=person.id, name="x"), mask(), "update_mask"),
        (pb.Person(id=person.id), mask("labels"), "update_mask"),
        (pb.Person(id=person.id), mask("face_count"), "update_mask"),
        (pb.Person(id=person.id), mask("nickname"), "update_mask"),
        (pb.Person(id=person.id), mask("primary_face_id"), "person.primary_face_id"),
        (pb.Person(id=person.id, primary_face_id=str(uuid.uuid4())), mask("primary_face_id"), "person.primary_face_id"),
        (pb.Person(id=person.id, name="n" * 300), mask("name"), "person.name"),
        (pb.Person(id=person.id, status=common_pb2.PERSON_STATUS_UNSPECIFIED), mask("status"), "person.status"),
        (pb.Person(id="not-a-uuid", name="x"), mask("name"), "person.id"),
        (pb.Person(name="x"), mask("name"), "person.id"),
    ]
    for update, update_mask, field in cases:
        await invalid(persons.UpdatePerson, pb.UpdatePersonRequest(person=update, update_mask=update_mask), admin,
                      field)
    missing = pb.UpdatePersonRequest(person=pb.Person(id=str(uuid.uuid4()), name="x"), update_mask=mask("name"))
    assert (await refused(persons.UpdatePerson, missing, admin)).code() == grpc.StatusCode.NOT_FOUND
    assert (await persons.GetPerson(pb.GetPersonRequest(id=person.id), metadata=admin)).person == person


async def test_list_persons_by_name_with_paging_and_filters(persons, admin):
    tag = uuid.uuid4().hex[:10]
    carol = await create(persons, admin, name=f"{tag} carol", role="guard", status=common_pb2.PERSON_STATUS_KNOWN,
                         labels=[common_pb2.PERSON_LABEL_STAFF])
    alice = await create(persons, admin, name=f"{tag} alice", role="driver", status=common_pb2.PERSON_STATUS_VIP)
    bob = await create(persons, admin, name=f"{tag} bob", role="guard", aliases=[f"{tag} robert"])

    seen, token = [], ""
    while True:
        page = await persons.ListPersons(pb.ListPersonsRequest(query=tag.upper(), page_size=2, page_token=token),
                                         metadata=admin)
        assert len(page.persons) <= 2
        seen.extend(page.persons)
        token = page.next_page_token
        if not token:
            break
    assert [p.id for p in seen] == [alice.id, bob.id, carol.id]

    async def ids(**filters) -> list[str]:
        return [p.id for p in (await persons.ListPersons(pb.ListPersonsRequest(query=tag, **filters),
                                                         metadata=admin)).persons]

    assert await ids(roles=["guard"]) == [bob.id, carol.id]
    assert await ids(statuses=[common_pb2.PERSON_STATUS_KNOWN, common_pb2.PERSON_STATUS_VIP]) == [alice.id, carol.id]
    assert await ids(statuses=[common_pb2.PERSON_STATUS_UNSPECIFIED]) == [alice.id, bob.id, carol.id]
    assert await ids(labels=[common_pb2.PERSON_LABEL_STAFF]) == [carol.id]
    assert await ids(roles=["guard"], statuses=[common_pb2.PERSON_STATUS_UNKNOWN]) == [bob.id]
    assert (await ids(watchlist_ids=[str(uuid.uuid4())])) == []

    for request, field in [(pb.ListPersonsRequest(page_size=-1), "page_size"),
                           (pb.ListPersonsRequest(page_token="not a token"), "page_token"),
                           (pb.ListPersonsRequest(statuses=[77]), "statuses[0]"),
                           (pb.ListPersonsRequest(labels=[0]), "labels[0]"),
                           (pb.ListPersonsRequest(watchlist_ids=["nope"]), "watchlist_ids[0]"),
                           (pb.ListPersonsRequest(roles=["guard", ""]), "roles[1]"),
                           (pb.ListPersonsRequest(query="q" * 201), "query")]:
        await invalid(persons.ListPersons, request, admin, field)


async def test_get_and_delete_answer_not_found_and_invalid_ids(persons, admin, as_role):
    missing = str(uuid.uuid4())
    for call, request in [(persons.GetPerson, pb.GetPersonRequest(id=missing)),
                          (persons.ListPersonLabels, pb.ListPersonLabelsRequest(person_id=missing)),
                          (persons.ListPersonAliases, pb.ListPersonAliasesRequest(person_id=missing)),
                          (persons.ListFaces, pb.ListFacesRequest(person_id=missing)),
                          (persons.RemovePersonAlias, pb.RemovePersonAliasRequest(id=missing)),
                          (persons.DeleteFace, pb.DeleteFaceRequest(id=missing)),
                          (persons.GetUnknownCluster, pb.GetUnknownClusterRequest(id=missing)),
                          (persons.DeletePerson, pb.DeletePersonRequest(id=missing))]:
        err = await refused(call, request, as_role("super_admin"))
        assert err.code() == grpc.StatusCode.NOT_FOUND, (call, err.details())
    await invalid(persons.GetPerson, pb.GetPersonRequest(id="nope"), admin, "id")
    await invalid(persons.GetPerson, pb.GetPersonRequest(), admin, "id")
    await invalid(persons.DeleteFace, pb.DeleteFaceRequest(id="1234"), admin, "id")


async def test_delete_person_refused_while_an_alert_rule_names_them(persons, admin, as_role, app):
    person = await create(persons, admin, name="Watched")
    async with database(app) as conn:
        rule = await AlertRuleRepository(conn).create("watch them", await add_user(conn), person_id=person.id)
    err = await refused(persons.DeletePerson, pb.DeletePersonRequest(id=person.id), as_role("super_admin"))
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION and str(rule.id) in err.details()
    assert (await persons.GetPerson(pb.GetPersonRequest(id=person.id), metadata=admin)).person == person


# --------------------------------------------------------------------------- labels and aliases


async def test_labels_are_added_once_and_removed_quietly(persons, admin, app):
    person = await create(persons, admin, name="Labelled")
    add = pb.AddPersonLabelRequest(person_id=person.id, label=common_pb2.PERSON_LABEL_VISITOR)
    first = (await persons.AddPersonLabel(add, metadata=admin)).label_entry
    again = (await persons.AddPersonLabel(add, metadata=admin)).label_entry
    assert first == again and first.label == common_pb2.PERSON_LABEL_VISITOR and first.person_id == person.id
    await persons.AddPersonLabel(pb.AddPersonLabelRequest(person_id=person.id, label=common_pb2.PERSON_LABEL_EMPLOYEE),
                                 metadata=admin)

    page = await persons.ListPersonLabels(pb.ListPersonLabelsRequest(person_id=person.id, page_size=1), metadata=admin)
    rest = await persons.ListPersonLabels(pb.ListPersonLabelsRequest(person_id=person.id, page_size=1,
                                                                     page_token=page.next_page_token), metadata=admin)
    assert [e.label for e in (*page.label_entries, *rest.label_entries)] == \
        [common_pb2.PERSON_LABEL_EMPLOYEE, common_pb2.PERSON_LABEL_VISITOR]
    assert rest.next_page_token == ""

    remove = pb.RemovePersonLabelRequest(person_id=person.id, label=common_pb2.PERSON_LABEL_VISITOR)
    await persons.RemovePersonLabel(remove, metadata=admin)
    await persons.RemovePersonLabel(remove, metadata=admin)  # already gone: nothing changes
    got = (await persons.GetPerson(pb.GetPersonRequest(id=person.id), metadata=admin)).person
    assert list(got.labels) == [common_pb2.PERSON_LABEL_EMPLOYEE]
    assert await audit_actions(app, person.id) == ["person.create", "person.add_label", "person.add_label",
                                                   "person.remove_label"]

    await invalid(persons.AddPersonLabel, pb.AddPersonLabelRequest(person_id=person.id), admin, "label")
    await invalid(persons.AddPersonLabel, pb.AddPersonLabelRequest(person_id="x", label=1), admin, "person_id")
    err = await refused(persons.RemovePersonLabel, pb.RemovePersonLabelRequest(person_id=str(uuid.uuid4()), label=1),
                        admin)
    assert err.code() == grpc.StatusCode.NOT_FOUND


async def test_aliases_add_list_and_remove(persons, admin, app):
    person = await create(persons, admin, name="Aliased", aliases=["Zed"])
    add = pb.AddPersonAliasRequest(person_id=person.id, alias_name="Ace")
    alias = (await persons.AddPersonAlias(add, metadata=admin)).alias
    assert (await persons.AddPersonAlias(add, metadata=admin)).alias == alias  # returned unchanged
    assert (alias.person_id, alias.alias_name) == (person.id, "Ace")

    page = await persons.ListPersonAliases(pb.ListPersonAliasesRequest(person_id=person.id, page_size=1),
                                           metadata=admin)
    rest = await persons.ListPersonAliases(pb.ListPersonAliasesRequest(person_id=person.id, page_size=1,
                                                                       page_token=page.next_page_token),
                                           metadata=admin)
    assert [a.alias_name for a in (*page.aliases, *rest.aliases)] == ["Ace", "Zed"]

    await persons.RemovePersonAlias(pb.RemovePersonAliasRequest(id=alias.id), metadata=admin)
    err = await refused(persons.RemovePersonAlias, pb.RemovePersonAliasRequest(id=alias.id), admin)
    assert err.code() == grpc.StatusCode.NOT_FOUND
    got = (await persons.GetPerson(pb.GetPersonRequest(id=person.id), metadata=admin)).person
    assert list(got.aliases) == ["Zed"]
    assert await audit_actions(app, person.id) == ["person.create", "person.add_alias", "person.remove_alias"]

    for request, field in [(pb.AddPersonAliasRequest(person_id=person.id), "alias_name"),
                           (pb.AddPersonAliasRequest(person_id=person.id, alias_name="a" * 201), "alias_name"),
                           (pb.AddPersonAliasRequest(alias_name="x"), "person_id")]:
        await invalid(persons.AddPersonAlias, request, admin, field)
    await invalid(persons.RemovePersonAlias, pb.RemovePersonAliasRequest(id="alias"), admin, "id")


# --------------------------------------------------------------------------- faces


async def test_faces_primary_choice_and_delete_promotes_the_next_best(persons, admin, app):
    person = await create(persons, admin, name="Faces")
    low, best, chosen = await add_faces(app, person.id, [0.3, 0.9, 0.6])
    listed = (await persons.ListFaces(pb.ListFacesRequest(person_id=person.id), metadata=admin)).faces
    assert {f.id for f in listed} == {str(low.id), str(best.id), str(chosen.id)}
    assert [(f.created_at, str(f.id)) for f in sorted((low, best, chosen), key=lambda f: (f.created_at, f.id),
                                                       reverse=True)] == \
        [(f.create_time.ToDatetime(tzinfo=UTC), f.id) for f in listed]  # newest first
    assert {f.model_version for f in listed} == {low.model_version} and listed[0].embedding_dim == 4

    choose = pb.UpdatePersonRequest(person=pb.Person(id=person.id, primary_face_id=str(chosen.id)),
                                    update_mask=mask("primary_face_id"))
    assert (await persons.UpdatePerson(choose, metadata=admin)).person.primary_face_id == str(chosen.id)
    others = await add_faces(app, (await create(persons, admin, name="Other")).id, [0.5])
    steal = pb.UpdatePersonRequest(person=pb.Person(id=person.id, primary_face_id=str(others[0].id)),
                                   update_mask=mask("primary_face_id"))
    await invalid(persons.UpdatePerson, steal, admin, "person.primary_face_id")

    await persons.DeleteFace(pb.DeleteFaceRequest(id=str(chosen.id)), metadata=admin)
    after = {f.id: f for f in (await persons.ListFaces(pb.ListFacesRequest(person_id=person.id),
                                                       metadata=admin)).faces}
    assert set(after) == {str(low.id), str(best.id)}
    assert after[str(best.id)].is_primary and not after[str(low.id)].is_primary
    got = (await persons.GetPerson(pb.GetPersonRequest(id=person.id), metadata=admin)).person
    assert (got.primary_face_id, got.face_count) == (str(best.id), 2)
    assert await audit_actions(app, chosen.id) == ["face.delete"]

    filtered = await persons.ListFaces(pb.ListFacesRequest(person_id=person.id, model_versions=["no-such-model"]),
                                       metadata=admin)
    assert list(filtered.faces) == []
    versions = (await persons.ListModelVersions(pb.ListModelVersionsRequest(page_size=1000),
                                                metadata=admin)).model_versions
    registered = next(v for v in versions if v.version_string == low.model_version)
    assert (registered.embedding_dim, round(registered.match_threshold, 4)) == (4, 0.4)
    await invalid(persons.ListModelVersions, pb.ListModelVersionsRequest(page_size=-5), admin, "page_size")


# --------------------------------------------------------------------------- merges


async def test_merge_persons_moves_everything_and_deletes_the_sources(persons, admin, app):
    target = await create(persons, admin, name="Target", labels=[common_pb2.PERSON_LABEL_EMPLOYEE])
    first = await create(persons, admin, name="First", aliases=["Fst"], labels=[common_pb2.PERSON_LABEL_DRIVER])
    second = await create(persons, admin, name="Second")
    await add_faces(app, target.id, [0.5])
    await add_faces(app, first.id, [0.6, 0.7])
    async with database(app) as conn:
        user = await add_user(conn)
        watchlist = await WatchlistRepository(conn).create(f"merge {uuid.uuid4().hex[:8]}", "custom", user)
        await WatchlistRepository(conn).add_person(watchlist.id, second.id, user)
        camera = await make_camera(conn, app.secrets)
        event = await EventRepository(conn).insert(camera.id, "person_recognized", datetime.now(UTC), 0.9,
                                                   BOX, person_id=first.id)

    merge = pb.MergePersonsRequest(target_person_id=target.id, source_person_ids=[first.id, second.id])
    merged = (await persons.MergePersons(merge, metadata=admin)).person
    assert merged.id == target.id and merged.face_count == 3
    assert list(merged.labels) == [common_pb2.PERSON_LABEL_EMPLOYEE, common_pb2.PERSON_LABEL_DRIVER]
    assert list(merged.aliases) == ["First", "Fst", "Second"]
    for source in (first, second):
        err = await refused(persons.GetPerson, pb.GetPersonRequest(id=source.id), admin)
        assert err.code() == grpc.StatusCode.NOT_FOUND
    async with database(app) as conn:
        assert (await EventRepository(conn).get(event.id)).person_id == uuid.UUID(target.id)
        entries = (await WatchlistRepository(conn).entries(watchlist.id)).items
        assert [str(e.person_id) for e in entries] == [target.id]
    assert await audit_actions(app, target.id) == ["person.create", "person.merge"]

    for request, field in [
        (pb.MergePersonsRequest(target_person_id=target.id), "source_person_ids"),
        (pb.MergePersonsRequest(target_person_id=target.id, source_person_ids=[target.id]), "source_person_ids[0]"),
        (pb.MergePersonsRequest(target_person_id=target.id, source_person_ids=["x"]), "source_person_ids[0]"),
        (pb.MergePersonsRequest(source_person_ids=[first.id]), "target_person_id"),
    ]:
        await invalid(persons.MergePersons, request, admin, field)
    spare = await create(persons, admin, name="Spare")
    missing = pb.MergePersonsRequest(target_person_id=target.id, source_person_ids=[spare.id, str(uuid.uuid4())])
    assert (await refused(persons.MergePersons, missing, admin)).code() == grpc.StatusCode.NOT_FOUND
    assert (await persons.GetPerson(pb.GetPersonRequest(id=spare.id), metadata=admin)).person == spare


async def add_cluster(app, sample_count: int, representative_face_id, last_seen: datetime) -> str:
    async with database(app) as conn:
        cur = await conn.execute(
            "INSERT INTO person_clusters (cluster_label, sample_count, representative_embedding_id, first_seen,"
            " last_seen) VALUES (%s, %s, %s, %s, %s) RETURNING id",
            (f"Unknown-{uuid.uuid4().hex[:12]}", sample_count, representative_face_id, last_seen - timedelta(hours=1),
             last_seen))
        return str((await cur.fetchone())["id"])


async def test_merge_clusters_then_assign_to_a_new_person(persons, admin, app):
    holder_a = await create(persons, admin)  # the placeholder persons the pipeline keeps unknown faces under
    holder_b = await create(persons, admin)
    (face_a,) = await add_faces(app, holder_a.id, [0.5])
    (face_b,) = await add_faces(app, holder_b.id, [0.8], model_version=face_a.model_version)
    now = datetime.now(UTC).replace(microsecond=0)
    target = await add_cluster(app, 4, face_a.id, now - timedelta(days=1))
    source = await add_cluster(app, 3, face_b.id, now)
    async with database(app) as conn:
        camera = await make_camera(conn, app.secrets)
        sighting = await EventRepository(conn).insert(camera.id, "face_detected", now, 0.8, BOX, cluster_id=source)

    merge = pb.MergeClustersRequest(target_cluster_id=target, source_cluster_ids=[source])
    merged = (await persons.MergeClusters(merge, metadata=admin)).cluster
    assert (merged.id, merged.status, merged.sample_count, merged.event_count) == \
        (target, pb.CLUSTER_STATUS_ACTIVE, 7, 1)
    assert (merged.representative_face_id, list(merged.camera_ids)) == (str(face_b.id), [str(camera.id)])
    assert merged.last_seen_time.ToDatetime(tzinfo=UTC) == now and merged.person_id == ""
    gone = (await persons.GetUnknownCluster(pb.GetUnknownClusterRequest(id=source), metadata=admin)).cluster
    assert (gone.status, gone.merged_into_cluster_id) == (pb.CLUSTER_STATUS_MERGED, target)
    holder = (await persons.GetPerson(pb.GetPersonRequest(id=holder_a.id), metadata=admin)).person
    assert holder.face_count == 2  # the faces came along
    assert (await refused(persons.GetPerson, pb.GetPersonRequest(id=holder_b.id), admin)).code() == \
        grpc.StatusCode.NOT_FOUND
    assert await audit_actions(app, target) == ["cluster.merge"]

    active = await persons.ListUnknownClusters(pb.ListUnknownClustersRequest(camera_ids=[str(camera.id)]),
                                               metadata=admin)
    assert [c.id for c in active.clusters] == [target]
    merged_ones = await persons.ListUnknownClusters(
        pb.ListUnknownClustersRequest(statuses=[pb.CLUSTER_STATUS_MERGED], min_sample_count=3, page_size=1000),
        metadata=admin)
    assert source in [c.id for c in merged_ones.clusters] and target not in [c.id for c in merged_ones.clusters]
    again = await refused(persons.MergeClusters, merge, admin)
    assert again.code() == grpc.StatusCode.FAILED_PRECONDITION

    assign = pb.AssignClusterToPersonRequest(cluster_id=target, new_person=pb.Person(
        name="Now Known", status=common_pb2.PERSON_STATUS_KNOWN, labels=[common_pb2.PERSON_LABEL_VISITOR]))
    assigned = await persons.AssignClusterToPerson(assign, metadata=admin)
    assert (assigned.person.name, assigned.person.face_count, list(assigned.person.labels)) == \
        ("Now Known", 2, [common_pb2.PERSON_LABEL_VISITOR])
    assert (assigned.cluster.status, assigned.cluster.person_id) == (pb.CLUSTER_STATUS_REVIEWED, assigned.person.id)
    async with database(app) as conn:
        assert (await EventRepository(conn).get(sighting.id)).person_id == uuid.UUID(assigned.person.id)
    assert await audit_actions(app, target) == ["cluster.merge", "cluster.assign"]
    assert await audit_actions(app, assigned.person.id) == ["person.create"]

    for request, field in [
        (pb.AssignClusterToPersonRequest(cluster_id=target), "target"),
        (pb.AssignClusterToPersonRequest(cluster_id=target, new_person=pb.Person(name="n" * 201)), "new_person.name"),
        (pb.AssignClusterToPersonRequest(person_id=holder_a.id), "cluster_id"),
    ]:
        await invalid(persons.AssignClusterToPerson, request, admin, field)
    reviewed = pb.AssignClusterToPersonRequest(cluster_id=target, person_id=assigned.person.id)
    assert (await refused(persons.AssignClusterToPerson, reviewed, admin)).code() == \
        grpc.StatusCode.FAILED_PRECONDITION
    for request, field in [
        (pb.MergeClustersRequest(target_cluster_id=target, source_cluster_ids=[target]), "source_cluster_ids[0]"),
        (pb.MergeClustersRequest(target_cluster_id=target, source_cluster_ids=[source, source]),
         "source_cluster_ids[1]"),
        (pb.MergeClustersRequest(target_cluster_id=target,
                                 source_cluster_ids=[str(uuid.uuid4()) for _ in range(101)]), "source_cluster_ids"),
    ]:
        await invalid(persons.MergeClusters, request, admin, field)
    bad_range = pb.ListUnknownClustersRequest()
    bad_range.last_seen_range.start_time.FromDatetime(now)
    bad_range.last_seen_range.end_time.FromDatetime(now - timedelta(hours=1))
    await invalid(persons.ListUnknownClusters, bad_range, admin, "last_seen_range.end_time")
    await invalid(persons.ListUnknownClusters, pb.ListUnknownClustersRequest(statuses=[9]), admin, "statuses[0]")
