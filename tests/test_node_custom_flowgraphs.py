"""What a node agent runs of an uploaded flowgraph (real coordinator and node processes): a
node configured ``custom_flowgraphs: refuse`` runs none and reports why; a node that runs
approved ones runs only the approved bytes, whatever the coordinator's database later says
the template's content is."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest
import yaml

from drift.localnet import LocalNetwork, wait_for

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = Path(__file__).parent / "data" / "network.yaml"
CAPTURE = (
    (ROOT / "flowgraphs" / "iq_capture.grc")
    .read_text()
    .replace("id: iq_capture", "id: node_side_capture")
    .replace("title: DRIFT IQ capture", "title: Node side")
)


def _job(template_id: str, node_id: str) -> dict:
    return {
        "type": "custom_flowgraph",
        "template_id": template_id,
        "parameters": {"center_freq_hz": 431.92e6, "samp_rate_hz": 1e6, "n_samples": 20000},
        "start_freq_hz": 431e6,
        "stop_freq_hz": 433e6,
        "duration_s": 5,
        "node_ids": [node_id],
    }


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    """Nodes a (custom_flowgraphs: refuse) and c (the default: approved ones); a job fails
    at its first refusal."""
    env = {"DRIFT_ASSIGNMENT_MAX_ATTEMPTS": "1"}
    with LocalNetwork(
        tmp_path_factory.mktemp("nodeside") / "net", SCENARIO, ["a", "c"], env=env
    ) as net:
        # node a, as its operator would: custom_flowgraphs: refuse in its node.yaml, restarted
        net.nodes["a"].terminate()
        net.nodes["a"].wait(20)
        cfg = net.node_config("a")
        cfg.write_text(
            yaml.safe_dump({**yaml.safe_load(cfg.read_text()), "custom_flowgraphs": "refuse"})
        )
        net.start_node("a")
        net.wait_nodes_online()
        yield net


def _approved(net: LocalNetwork, name: str, content: str) -> dict:
    up = net.api("POST", "/flowgraphs", json={"name": name, "content": content})
    net.api("POST", f"/flowgraphs/{up['id']}/approve")
    return up


def test_a_node_that_refuses_custom_flowgraphs_reports_why(net):
    up = _approved(net, "capture", CAPTURE)
    done = net.wait_job(net.submit(_job(up["id"], net.node_uuid["a"])), timeout_s=120)
    assert done["status"] == "failed", done
    [a] = done["assignments"]
    assert "refuses custom flowgraphs" in a["last_error"] and "node.yaml" in a["last_error"]
    # it never compiled nor ran anything
    assert not (net.workdir / "node-a" / "jobs" / a["id"] / "command.json").exists()
    assert "refuses custom flowgraphs" in net.log_text("node-a")
    # the same job on a node that runs approved flowgraphs completes
    done = net.wait_job(net.submit(_job(up["id"], net.node_uuid["c"])), timeout_s=120)
    assert done["status"] == "completed", done


def test_a_node_runs_only_the_approved_bytes(net):
    """A job is accepted for the approved content; the template's row is then swapped for
    other content, with its hash to match, before the node fetches it: the node compares
    what it got with the hash the job was accepted with, and refuses it."""
    approved = CAPTURE.replace("title: Node side", "title: Approved")
    up = _approved(net, "approved", approved)
    # node c away, so the job waits for it
    net.kill_node("c")
    wait_for(
        lambda: net.api("GET", f"/nodes/{net.node_uuid['c']}")["status"] == "offline",
        60,
        "node c to be offline",
    )
    job_id = net.submit(_job(up["id"], net.node_uuid["c"]))
    assert net.job(job_id)["parameters"]["template_sha256"] == up["sha256"]
    swapped = approved.replace("title: Approved", "title: Swapped")
    db = sqlite3.connect(net.workdir / "coordinator" / "coordinator.db")
    with db:
        db.execute(
            "UPDATE flowgraph_templates SET content = ?, sha256 = ? WHERE id = ?",
            (swapped, hashlib.sha256(swapped.encode()).hexdigest(), up["id"].replace("-", "")),
        )
        assert db.total_changes == 1
    db.close()
    net.start_node("c")
    done = net.wait_job(job_id, timeout_s=120)
    assert done["status"] == "failed", done
    [a] = done["assignments"]
    assert "not the approved content" in a["last_error"] and up["sha256"] in a["last_error"]
    assert not (net.workdir / "node-c" / "jobs" / a["id"] / "command.json").exists()
