"""The agent worker protocol codec: every message both ways, the official worker's own frames (built the way
livekit-agents builds them), the limits and the typed errors."""

from __future__ import annotations

from typing import Any

import pytest
from livekit.protocol import agent as pa
from livekit.protocol import models as pm

from greenroom.codecs import agent_protocol as ap
from greenroom.codecs.errors import CodecError, LocalProtocolError
from greenroom.codecs.models import ParticipantPermission, ServerInfo

JOB = ap.JobDescription(
    id="AJ_1",
    room_name="r1",
    room_sid="RM_1",
    agent_name="echo",
    dispatch_id="AD_1",
    type=ap.JobType.PUBLISHER,
    metadata="m",
    participant_identity="alice",
    attributes=(("a", "1"),),
)

WORKER_MESSAGES: list[Any] = [
    ap.Register("echo", "1.0", ap.JobType.ROOM, "ns", "dep", ParticipantPermission(agent=True)),
    ap.Register(),
    ap.Availability("AJ_1", True, False, "agent-AJ_1", "echo", "md", (("lk.agent.name", "echo"),)),
    ap.Availability("AJ_2", False, terminate=True),
    ap.UpdateWorker(ap.WorkerStatus.FULL, 0.5, 3, draining=True),
    ap.UpdateJob("AJ_1", ap.JobStatusCode.FAILED, "ValueError: boom"),
    ap.WorkerPing(123),
    ap.MigrateJob(("AJ_1",), (JOB,)),
]
SERVER_MESSAGES: list[Any] = [
    ap.Registered("AW_1", ServerInfo(version="1.9.0", agent_protocol=1)),
    ap.Registered("AW_2"),
    ap.AvailabilityRequest(JOB, resuming=True),
    ap.Assignment(JOB, "jwt", "ws://h:7880"),
    ap.Assignment(ap.JobDescription("AJ_2", "r2"), "jwt"),
    ap.Termination("AJ_1"),
    ap.Pong(1, 2),
]


@pytest.mark.parametrize("msg", WORKER_MESSAGES, ids=lambda m: type(m).__name__)
def test_worker_messages_round_trip(msg: Any) -> None:
    assert ap.decode_worker_message(ap.encode_worker_message(msg)) == msg


@pytest.mark.parametrize("msg", SERVER_MESSAGES, ids=lambda m: type(m).__name__)
def test_server_messages_round_trip(msg: Any) -> None:
    assert ap.decode_server_message(ap.encode_server_message(msg)) == msg


def test_the_official_workers_register_frame_decodes() -> None:
    # what livekit-agents' worker.py sends first (no ping_interval, agent permission set)
    req = pa.WorkerMessage()
    req.register.type = pa.JT_ROOM
    req.register.allowed_permissions.CopyFrom(
        pm.ParticipantPermission(can_publish=True, can_subscribe=True, can_publish_data=True, agent=True)
    )
    req.register.agent_name = ""
    req.register.version = "1.8.9"
    msg = ap.decode_worker_message(req.SerializeToString())
    assert isinstance(msg, ap.Register)
    assert msg.version == "1.8.9"
    assert msg.permissions is not None
    assert msg.permissions.agent


def test_an_assignment_with_an_empty_url_and_no_state_decodes_for_the_official_shape() -> None:
    pb = pa.ServerMessage(
        assignment=pa.JobAssignment(job=pa.Job(id="AJ_9", room=pm.Room(name="x")), token="t")
    )
    msg = ap.decode_server_message(pb.SerializeToString())
    assert msg == ap.Assignment(ap.JobDescription("AJ_9", "x"), "t", "")
    assert not pb.assignment.HasField("url")  # an empty url is left out, as the official server does


def test_open_enums_decode_to_a_safe_default() -> None:
    frame = pa.WorkerMessage(update_worker=pa.UpdateWorkerStatus(status=7)).SerializeToString()  # type: ignore[arg-type]
    assert ap.decode_worker_message(frame) == ap.UpdateWorker(ap.WorkerStatus.FULL)  # never dispatch to it
    frame = pa.WorkerMessage(update_job=pa.UpdateJobStatus(job_id="j", status=9)).SerializeToString()  # type: ignore[arg-type]
    assert ap.decode_worker_message(frame) == ap.UpdateJob("j", ap.JobStatusCode.UNKNOWN)
    job = pa.Job(id="j", type=5)  # type: ignore[arg-type]
    frame = pa.ServerMessage(
        termination=None, availability=pa.AvailabilityRequest(job=job)
    ).SerializeToString()
    decoded = ap.decode_server_message(frame)
    assert isinstance(decoded, ap.AvailabilityRequest)
    assert decoded.job.type is ap.JobType.ROOM


def test_members_not_modelled_are_unhandled() -> None:
    frame = pa.WorkerMessage(simulate_job=pa.SimulateJobRequest()).SerializeToString()
    assert ap.decode_worker_message(frame) == ap.Unhandled("simulate_job")
    frame = pa.ServerMessage(go_away=pa.AgentHttp.GoAway()).SerializeToString()
    assert ap.decode_server_message(frame) == ap.Unhandled("go_away")


@pytest.mark.parametrize(
    ("data", "text"),
    [
        ("text", "binary"),
        (b"\xff\xff\xff", "not a WorkerMessage"),
        (b"", "carries no message"),
        (b"\x00" * (ap.MAX_FRAME + 1), "limit"),
    ],
)
def test_bad_worker_frames_are_codec_errors(data: Any, text: str) -> None:
    with pytest.raises(CodecError, match=text):
        ap.decode_worker_message(data)


def test_names_past_the_limit_are_refused() -> None:
    long = "x" * (ap.MAX_NAME + 1)
    frame = pa.WorkerMessage(register=pa.RegisterWorkerRequest(agent_name=long)).SerializeToString()
    with pytest.raises(CodecError, match="agent name is 2049 characters long"):
        ap.decode_worker_message(frame)


def test_a_migrate_job_naming_too_many_jobs_is_refused() -> None:
    ids = [f"AJ_{n}" for n in range(ap.MAX_MIGRATED_JOBS + 1)]
    frame = pa.WorkerMessage(migrate_job=pa.MigrateJobRequest(job_ids=ids)).SerializeToString()
    with pytest.raises(CodecError, match="more than 10000 jobs"):
        ap.decode_worker_message(frame)
    jobs = [pa.Job(id="j")] * (ap.MAX_MIGRATED_JOBS + 1)
    frame = pa.WorkerMessage(migrate_job=pa.MigrateJobRequest(jobs=jobs)).SerializeToString()
    with pytest.raises(CodecError):
        ap.decode_worker_message(frame)


def test_encoding_refuses_the_wrong_direction_and_bad_values() -> None:
    with pytest.raises(LocalProtocolError, match="Registered cannot be sent as a WorkerMessage"):
        ap.encode_worker_message(ap.Registered("AW_1"))  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError, match="cannot be sent as a ServerMessage"):
        ap.encode_server_message(ap.Register())  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError, match="cannot encode UpdateWorker"):
        ap.encode_worker_message(ap.UpdateWorker(ap.WorkerStatus.AVAILABLE, job_count=-1))
    with pytest.raises(LocalProtocolError, match="UNKNOWN"):
        ap.encode_worker_message(ap.UpdateJob("j", ap.JobStatusCode.UNKNOWN))
