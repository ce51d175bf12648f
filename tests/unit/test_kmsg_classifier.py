"""The pipeline: records to signals, with grouping, mount mapping, rate limits, overruns."""

from agent.kmsg.classifier import KmsgClassifier
from agent.kmsg.record import Malformed, parse_kmsg, parse_line
from agent.kmsg.rules import load_rules, parse_rules
from agent.signals import Kind, Severity

RULES = load_rules()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def classify(lines, **kwargs):
    classifier = KmsgClassifier(RULES, clock=Clock(), **kwargs)
    found = []
    for number, line in enumerate(lines, start=1):
        found += classifier.feed(parse_line(line), origin=number)
    return found + classifier.flush(), classifier


def test_line_signal_maps_device_to_mount():
    mounts = {"dm-0": "/srv/mail"}
    found, _ = classify(
        ["[  12.000000] XFS (dm-0): Filesystem has been shut down due to log error (0x2)."],
        device_to_mount=mounts.get,
    )
    (detection,) = found
    signal = detection.signal
    assert (signal.source, signal.kind, signal.severity) == (
        "kmsg",
        Kind.XFS_SHUTDOWN,
        Severity.CRITICAL,
    )
    assert (signal.device, signal.mount, signal.permanent) == ("dm-0", "/srv/mail", True)
    assert signal.attributes["rule"] == "xfs_shutdown"
    assert detection.origin == 1
    assert signal.at == 1000.0


def test_device_found_in_text_without_device_group():
    found, _ = classify(["JBD2: Detected IO errors while flushing file data on sdc1-8"])
    assert found[0].signal.device == "sdc1"


def test_hung_task_report_is_one_signal_mapped_by_pid():
    lines = [
        "INFO: task dovecot:4242 blocked for more than 122 seconds.",
        "nfs: server other not responding, still trying",  # another CPU, in between
        "task:dovecot         state:D stack:0     pid:4242  tgid:4242  ppid:1      flags:0x0",
        "Call Trace:",
        " <TASK>",
        " __schedule+0x4cb/0x1a70",
        " xfs_ilock+0x5c/0x2a0 [xfs]",
        " xfs_do_force_shutdown+0x4c/0x90 [xfs]",
        " </TASK>",
    ]
    found, _ = classify(lines, pid_to_mount={4242: "/srv/mail"}.get)
    kinds = [(d.signal.kind, d.origin) for d in found]
    assert kinds == [(Kind.NFS_NOT_RESPONDING, 2), (Kind.HUNG_TASK, 1)]  # no XFS_SHUTDOWN
    hung = found[1].signal
    assert hung.mount == "/srv/mail"
    assert hung.attributes["filesystem"] == "xfs"
    assert hung.stuck_tasks[0].stack == ("__schedule", "xfs_ilock", "xfs_do_force_shutdown")
    assert len(hung.lines) == 8


def test_hung_task_mapped_through_task_device():
    lines = [
        "INFO: task jbd2/sdb1-8:412 blocked for more than 120 seconds.",
        "jbd2/sdb1-8     D ffff9d6fbe7b4100     0   412      2 0x00000000",
    ]
    found, _ = classify(lines, device_to_mount={"sdb1": "/srv/data"}.get)
    (detection,) = found
    assert (detection.signal.device, detection.signal.mount) == ("sdb1", "/srv/data")


def test_frames_outside_reports_are_never_matched():
    found, _ = classify([" xfs_do_force_shutdown+0x4c/0x90 [xfs]", "? end_request+0x1/0x2"])
    assert found == []


def test_userspace_records_are_ignored_unless_asked():
    injected = parse_kmsg(b"12,1,1,-;INFO: task sh:1 blocked for more than 5 seconds.\n")
    classifier = KmsgClassifier(RULES, clock=Clock())
    assert classifier.feed(injected) + classifier.flush() == []
    permissive = KmsgClassifier(RULES, clock=Clock(), kernel_only=False)
    assert len(permissive.feed(injected) + permissive.flush()) == 1


def test_rate_limit_uses_record_time():
    rules = parse_rules(
        """
[[rule]]
name = "io"
pattern = 'I/O error, dev (?P<device>\\w+)'
kind = "BLOCK_IO_ERROR"
severity = "error"
type = "temporary"
rate_limit = { count = 2, seconds = 10 }
""",
        "t.toml",
    )
    from agent.kmsg.rules import RuleSet

    classifier = KmsgClassifier(RuleSet(rules), clock=Clock())
    fired = []
    for stamp in (1, 2, 3, 4, 11.5, 12.5):
        fired += [stamp] * len(
            classifier.feed(parse_line(f"[{stamp:.6f}] I/O error, dev sda, sector 1"))
        )
    assert fired == [1, 2, 11.5, 12.5]


def test_clears_attribute():
    found, _ = classify(["nfs: server filer OK"])
    assert found[0].signal.attributes["clears"] == Kind.NFS_NOT_RESPONDING
    assert found[0].signal.device == "filer"


def test_malformed_records_are_counted():
    classifier = KmsgClassifier(RULES, clock=Clock())
    assert classifier.feed(Malformed("bad", "b''")) == []
    assert classifier.feed(parse_kmsg(b"garbage")) == []
    assert classifier.malformed == 2


def test_overrun_signal():
    signal = KmsgClassifier(RULES, clock=Clock()).overrun(17)
    assert (signal.kind, signal.severity, signal.attributes["lost"]) == (
        Kind.KMSG_OVERRUN,
        Severity.WARNING,
        "17",
    )


def test_tick_flushes_a_report_past_its_time_budget():
    clock = Clock()
    classifier = KmsgClassifier(RULES, clock=clock, time_budget=2.0)
    classifier.feed(parse_line("INFO: task a:1 blocked for more than 5 seconds."))
    assert classifier.tick() == []
    clock.now += 3
    assert [d.signal.kind for d in classifier.tick()] == [Kind.HUNG_TASK]
