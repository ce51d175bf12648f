"""The limits every incoming message is held to, read from the proto descriptors."""

from __future__ import annotations

import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from hangwatch import limits
from hangwatch.errors import Invalid
from hangwatch.messages import to_dict
from hangwatch.printable import escape, first_unprintable
from hangwatch.v1 import admin_service_pb2 as admin_pb
from hangwatch.v1 import agent_service_pb2 as agent_pb
from hangwatch.v1 import types_pb2 as pb


def refusal(message: object) -> Invalid:
    with pytest.raises(Invalid) as caught:
        limits.check_request(message)  # type: ignore[arg-type]
    return caught.value


def batch_with_task(blocked_for: Duration) -> agent_pb.ReportEventsRequest:
    events = [pb.Event(id=f"E{i}") for i in range(4)]
    events[3].evidence.stuck_tasks.add(pid=7, comm="dd", blocked_for=blocked_for)
    return agent_pb.ReportEventsRequest(host_id="h1", events=events)


def test_a_duration_whose_nanos_differ_in_sign_is_refused_by_its_full_path():
    """Duration(seconds=1, nanos=-1) passed the old checks and then failed every JSON
    view of the event (webhooks, `-o json`)."""
    refused = refusal(batch_with_task(Duration(seconds=1, nanos=-1)))
    assert refused.field == "events[3].evidence.stuck_tasks[0].blocked_for.nanos"
    assert "differ in sign" in refused.problem


@pytest.mark.parametrize(
    ("duration", "field"),
    [
        (Duration(seconds=-1, nanos=0), "events[3].evidence.stuck_tasks[0].blocked_for"),
        (Duration(seconds=0, nanos=-5), "events[3].evidence.stuck_tasks[0].blocked_for"),
        (Duration(seconds=0, nanos=10**9), "events[3].evidence.stuck_tasks[0].blocked_for.nanos"),
        (Duration(seconds=10**12), "events[3].evidence.stuck_tasks[0].blocked_for.seconds"),
    ],
)
def test_negative_or_out_of_range_durations_are_refused(duration, field):
    assert refusal(batch_with_task(duration)).field == field


def test_a_duration_in_range_passes_and_prints_as_json():
    request = batch_with_task(Duration(seconds=41, nanos=500_000_000))
    limits.check_request(request)
    assert to_dict(request)["events"][3]["evidence"]["stuck_tasks"][0]["blocked_for"] == "41.500s"


@pytest.mark.parametrize(
    ("timestamp", "suffix"),
    [
        (Timestamp(seconds=100, nanos=-1), "nanos"),
        (Timestamp(seconds=100, nanos=10**9), "nanos"),
        (Timestamp(seconds=-62_135_596_801), "seconds"),
        (Timestamp(seconds=253_402_300_800), "seconds"),
    ],
)
def test_timestamps_outside_the_json_range_are_refused(timestamp, suffix):
    """Negative nanos in occurred_at came back UNKNOWN (a ValueError in the store);
    in a heartbeat's since/sent_at they were stored and broke `hosts -o json`."""
    event = agent_pb.ReportEventsRequest(events=[pb.Event(occurred_at=timestamp)])
    assert refusal(event).field == f"events[0].occurred_at.{suffix}"
    beat = agent_pb.HeartbeatRequest(sent_at=timestamp)
    assert refusal(beat).field == f"sent_at.{suffix}"
    beat = agent_pb.HeartbeatRequest(mounts=[pb.MountHealth(since=timestamp)])
    assert refusal(beat).field == f"mounts[0].since.{suffix}"


def test_unknown_enum_values_are_refused_naming_the_enum():
    refused = refusal(agent_pb.HeartbeatRequest(mounts=[pb.MountHealth(state=99)]))
    assert (refused.field, refused.problem) == (
        "mounts[0].state",
        "99 is not a value of HealthState",
    )


def test_numbers_are_finite_and_fit_the_store():
    plan = admin_pb.UpgradePlan(percent_done=float("nan"))
    with pytest.raises(Invalid, match=r"^percent_done: nan is not a finite number"):
        limits.check(plan)
    with pytest.raises(Invalid, match=r"^ids\[1\]: 9223372036854775808 is above"):
        limits.check(admin_pb.RetryDeadLettersRequest(ids=[1, 2**63]))


@pytest.mark.parametrize(
    ("request_message", "field"),
    [
        (agent_pb.RegisterRequest(host_id="web1\x1b[2J"), "host_id"),
        (agent_pb.RegisterRequest(mounts=[pb.Mount(path="/srv/\x1b[8mmail")]), "mounts[0].path"),
        (agent_pb.HeartbeatRequest(mounts=[pb.MountHealth(mount="/srv\n")]), "mounts[0].mount"),
        (admin_pb.ListEventsRequest(filter=admin_pb.EventFilter(group="a\u202eb")), "filter.group"),
        (
            agent_pb.RegisterRequest(inventory=pb.Inventory(fs_tools={"xfs\x07": "6.1"})),
            "inventory.fs_tools[xfs\\x07]",
        ),
    ],
)
def test_identifiers_and_paths_refuse_unprintable_characters(request_message, field):
    refused = refusal(request_message)
    assert refused.field == field
    assert "printable" in refused.problem
    assert first_unprintable(str(refused)) is None  # the answer itself is safe to print


def test_summaries_and_excerpts_may_hold_anything_printable_or_not():
    limits.check_request(
        agent_pb.ReportEventsRequest(
            events=[
                pb.Event(
                    summary="disk \x1b[31mred\x1b[0m",
                    evidence=pb.Evidence(kernel_lines=["tab\there"], attributes={"k": "\x00"}),
                )
            ]
        )
    )


@pytest.mark.parametrize(
    ("request_message", "field", "limit"),
    [
        (agent_pb.RegisterRequest(host_id="h" * 257), "host_id", 256),
        (
            agent_pb.HeartbeatRequest(mounts=[pb.MountHealth(mount="/" * 4097)]),
            "mounts[0].mount",
            4096,
        ),
        (
            agent_pb.ReportEventsRequest(events=[pb.Event(summary="s" * 1025)]),
            "events[0].summary",
            1024,
        ),
        (
            agent_pb.ReportEventsRequest(
                events=[pb.Event(evidence=pb.Evidence(kernel_lines=["k" * 8193]))]
            ),
            "events[0].evidence.kernel_lines[0]",
            8192,
        ),
        (
            agent_pb.ReportEventsRequest(
                events=[pb.Event(evidence=pb.Evidence(attributes={"k": "v" * 1025}))]
            ),
            "events[0].evidence.attributes[k]",
            1024,
        ),
        (admin_pb.ClearHostRequest(reason="r" * 1025), "reason", 1024),
        (
            admin_pb.AddAdvisoryRequest(advisory=admin_pb.Advisory(url="u" * 4097)),
            "advisory.url",
            4096,
        ),
    ],
)
def test_each_kind_of_text_has_its_length_limit(request_message, field, limit):
    refused = refusal(request_message)
    assert refused.field == field
    assert refused.problem.endswith(f"is {limit}")


def test_lists_and_maps_have_an_entry_limit():
    refused = refusal(agent_pb.RegisterRequest(mounts=[pb.Mount()] * 1001))
    assert (refused.field, refused.problem) == ("mounts", "1001 entries, the limit is 1000")


def test_an_oversized_registration_is_refused_field_or_whole():
    """A 3.8 MB inventory.fs_tools made one host too big for ListHosts."""
    big = pb.Inventory(fs_tools={"xfsprogs": "6" * 3_800_000})
    refused = refusal(agent_pb.RegisterRequest(inventory=big))
    assert refused.field == "inventory.fs_tools[xfsprogs]"
    mounts = [
        pb.Mount(path=f"/srv/{i}/" + "m" * 3000, device="/dev/" + "d" * 3000) for i in range(256)
    ]
    refused = refusal(agent_pb.RegisterRequest(mounts=mounts))
    assert refused.field == "request"
    assert refused.problem.endswith("the limit is 524288")


def test_a_heartbeat_of_many_long_paths_is_refused_whole():
    """256 mounts of 4 KB paths made one heartbeat 1 MB."""
    mounts = [pb.MountHealth(mount=f"/{i:04}" + "p" * 4000, state=1) for i in range(256)]
    refused = refusal(agent_pb.HeartbeatRequest(host_id="h1", boot_id="b", mounts=mounts))
    assert refused.field == "request"
    assert refused.problem.endswith("the limit is 262144")


def test_an_event_has_a_size_budget_wherever_it_is():
    lines = ["x" * 8000] * 20
    request = agent_pb.ReportEventsRequest(
        events=[pb.Event(), pb.Event(evidence=pb.Evidence(kernel_lines=lines))]
    )
    refused = refusal(request)
    assert refused.field == "events[1]"
    assert refused.problem.endswith("the limit is 131072")


def test_any_other_request_has_a_size_budget():
    names = [f"h{i:04}" + "x" * 250 for i in range(1000)]
    plan = admin_pb.CreateUpgradePlanRequest(hosts=names, groups=names[:100])
    refused = refusal(plan)
    assert (refused.field, refused.problem[-19:]) == ("request", "the limit is 262144")


def test_escape_shows_every_unprintable_character_and_keeps_the_rest():
    assert escape("ok é ✓") == "ok é ✓"
    assert escape("a\x1b[2Jb\n\x7f\u202e\U000e0001") == "a\\x1b[2Jb\\x0a\\x7f\\u202e\\U000e0001"
    assert first_unprintable("abc\tdef") == 3
