"""A node agent compiles an assignment on a thread of its own, once, and a timed one ahead of
its start; it launches it on the heartbeat round that reaches the start. Heartbeats go on
while it compiles (opening the device and grcc take seconds on a busy machine), the rounds
in between do not compile again, and what was compiled is dropped when the assignment is
cancelled or moved."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from drift.node.agent import NodeAgent
from drift.node.config import AgentConfig
from drift.orchestrator import compiler
from drift.orchestrator.jobs import SpectrumScanJob


@pytest.fixture
def agent(tmp_path: Path):
    cfg = AgentConfig(coordinator="http://127.0.0.1:9", device="testsig", state_dir=tmp_path / "n")
    a = NodeAgent(cfg)
    a.node_id = "node-1"
    yield a
    a._compiler.shutdown(wait=True, cancel_futures=True)
    for run in a.running.values():
        run.proc.kill()
        run.proc.wait(10)
    a.http.close()


def _assignment(start: float | None, attempts: int = 0) -> dict:
    job = SpectrumScanJob(start_freq_hz=100e6, stop_freq_hz=101e6, bin_hz=10e3, duration_s=2.0)
    return {
        "id": "asg-1",
        "job_id": "job-1",
        "job_type": "spectrum_scan",
        "parameters": job.model_dump(mode="json", exclude={"type", "priority"}),
        "start_time": start,
        "attempts": attempts,
        "role": "receiver",
    }


def _settle(agent: NodeAgent, assignments: list[dict]) -> None:
    """One heartbeat round, then the round after its compile is done."""
    agent._apply_assignments(assignments)
    for fut, _ in list(agent._compiling.values()):
        fut.result(timeout=60)
    agent._apply_assignments(assignments)


@pytest.fixture
def compiles(monkeypatch):
    """The real compiler, its calls counted; a test may hold it with the `gate` event."""
    calls: list[str] = []
    gate = threading.Event()
    gate.set()
    real = compiler.compile_job

    def counting(*args, **kw):
        calls.append(args[0])
        gate.wait(60)
        return real(*args, **kw)

    monkeypatch.setattr(compiler, "compile_job", counting)
    return calls, gate


def test_a_timed_assignment_is_compiled_once_and_launched_at_its_start(agent, compiles):
    calls, _ = compiles
    start = time.time() + 3600
    for _ in range(3):  # three heartbeat rounds before the start
        _settle(agent, [_assignment(start)])
    assert calls == ["spectrum_scan"] and not agent.running
    assert list(agent._prepared) == [("asg-1", 0, start)]

    # moved to another start (a new attempt): compiled anew, the old one dropped
    _settle(agent, [_assignment(start + 60, attempts=1)])
    assert len(calls) == 2 and list(agent._prepared) == [("asg-1", 1, start + 60)]

    # cancelled before its start: nothing kept
    agent._apply_assignments([])
    assert agent._prepared == {} and agent._compiling == {} and not agent.running

    # its start reached: launched from the compiled command, and no longer kept
    soon = time.time() + agent.cfg.capture_prestart_s + 0.2
    _settle(agent, [_assignment(soon, attempts=2)])
    assert len(calls) == 3 and "asg-1" in agent.running and agent._prepared == {}


def test_the_heartbeat_round_does_not_wait_for_a_compile(agent, compiles):
    """A compile that takes long (held here) leaves the round free: the assignment is not
    started, and the next round after the compile launches it."""
    calls, gate = compiles
    gate.clear()
    try:
        agent._apply_assignments([_assignment(None)])
        # the round returned while the compile is still held
        assert calls == ["spectrum_scan"] and not gate.is_set()
        assert len(agent._compiling) == 1 and not agent.running
        agent._apply_assignments([_assignment(None)])  # another round: still compiling
        assert len(calls) == 1 and not agent.running
    finally:
        gate.set()
    _settle(agent, [_assignment(None)])
    assert len(calls) == 1 and "asg-1" in agent.running
