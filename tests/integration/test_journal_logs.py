"""Under systemd, stderr is the journal: every line a daemon writes starts with the
syslog priority journald reads (`<N>`), so `journalctl -p err` finds the errors."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

from clusterkit import FAST_AGENT

from lab.localcluster import LocalCluster, wait_for

PREFIXED = re.compile(r"<([0-7])>(.*)")
PRIORITY = {"critical": 2, "error": 3, "warning": 4, "info": 6, "debug": 7}


def test_an_agent_whose_stderr_is_the_journal_prefixes_every_line(
    cluster: LocalCluster, tmp_path: Path
) -> None:
    cluster.start_controller()
    watched = tmp_path / "watched"
    watched.mkdir()
    # A port already taken: the agent says at error level that it serves no metrics.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # stderr is this file (LocalCluster appends to it): systemd would name the
        # journal stream's device and inode the same way.
        log_path = cluster.workdir / "agent-j1.log"
        log_path.touch()
        st = log_path.stat()
        agent = cluster.start_agent(
            "j1",
            [watched],
            {**FAST_AGENT, "metrics": {"listen": f"127.0.0.1:{port}"}, "log": {"format": "json"}},
            env={"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"},
        )
        wait_for(
            lambda: "registered with the controller" in agent.log_text(),
            30,
            "the agent to register",
        )
    entries = []
    for line in agent.log_text().splitlines():
        match = PREFIXED.fullmatch(line)
        assert match, f"a line without a priority prefix: {line!r}"
        entry = json.loads(match[2])
        assert int(match[1]) == PRIORITY[entry["level"]], line
        entries.append((int(match[1]), entry))

    def find(text: str) -> tuple[int, dict[str, object]]:
        found = [e for e in entries if text in str(e[1]["msg"])]
        assert found, f"no line says {text!r}"
        return found[0]

    priority, _ = find("metrics NOT served")
    assert priority == 3
    priority, entry = find("is not a mount point")
    assert (priority, entry["mount"]) == (4, str(watched))
    priority, _ = find("registered with the controller")
    assert priority == 6


def test_without_the_journal_lines_carry_no_prefix(cluster: LocalCluster, tmp_path: Path) -> None:
    cluster.start_controller()
    # A stream that is not this process's stderr: a journal stream of someone else.
    agent = cluster.start_agent("j2", [tmp_path], FAST_AGENT, env={"JOURNAL_STREAM": "1:1"})
    wait_for(
        lambda: "registered with the controller" in agent.log_text(),
        30,
        "the agent to register",
    )
    lines = agent.log_text().splitlines()
    assert lines and not any(PREFIXED.match(line) for line in lines), lines[:3]
