"""A node's IQ capture as a SigMF recording: the archive ``GET /jobs/{id}/iq`` serves.

The archive is SigMF's own (a tar of ``NAME/NAME.sigmf-meta`` and ``NAME/NAME.sigmf-data``,
written by the ``sigmf`` package), so any SigMF reader opens it. The dataset is the capture's
samples as ``cf32_le``; the one capture segment carries the tuned frequency and the node's
clock at the first sample (``core:datetime`` with every digit of the stored fraction); the
recording's place is the node's position (``core:geolocation``). What SigMF's core has no key
for is in the ``drift`` extension, declared in ``core:extensions``:

| key | meaning |
|---|---|
| ``drift:job_id``, ``drift:node_id``, ``drift:node_name`` | whose capture this is |
| ``drift:time_uncertainty_s`` | the node's declared clock uncertainty (1-sigma), seconds |
| ``drift:flowgraph_hash`` | sha256 of the ``.grc`` the node ran |
| ``drift:cal_offset_db`` | the node's calibration offset, when its frames carry one |
| ``drift:complete`` | false when the stored frames stopped being one contiguous stream |
| ``drift:frames``, ``drift:flags`` | frames joined, and the flags any of them carried |
"""

from __future__ import annotations

import datetime as dt
import math
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from drift.orchestrator.captures import IqCapture

#: the ``drift`` SigMF extension as ``core:extensions`` declares it
DRIFT_EXTENSION = {"name": "drift", "version": "1.0.0", "optional": True}
#: a SigMF archive is a plain tar (SigMF registers no media type of its own)
SIGMF_ARCHIVE_MEDIA_TYPE = "application/x-tar"


@dataclass(frozen=True)
class RecordingSite:
    """The node that made a capture, as the coordinator knows it."""

    node_id: str
    name: str
    lat_deg: float
    lon_deg: float
    alt_m: float


def sigmf_datetime(time_s: int, time_frac: float) -> str:
    """RFC 3339 UTC time for ``core:datetime``. SigMF allows any number of fractional digits:
    the fraction is written as the shortest decimal that reads back as the same float64, so
    nothing of the node's time stamp is lost (0.25 s is ``.25``, 1 ns is ``.000000001``)."""
    if not 0.0 <= time_frac < 1.0:
        raise ValueError(f"time_frac must be in [0, 1), got {time_frac!r}")
    stamp = dt.datetime.fromtimestamp(int(time_s), dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    digits = np.format_float_positional(time_frac, unique=True, trim="-").partition(".")[2]
    return f"{stamp}.{digits or '0'}Z"


def archive_name(job_id: str, node_name: str) -> str:
    """``drift-<first 8 characters of the job id>-<node name>``: the archive's file name
    without ``.sigmf``, and the name of the recording inside it. Characters other than
    letters, digits, ``.``, ``_`` and ``-`` in the node's name become ``-``."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", node_name).strip("-.") or "node"
    return f"drift-{job_id.replace('-', '')[:8]}-{safe}"


def sigmf_metadata(capture: IqCapture, site: RecordingSite) -> dict:
    """The ``.sigmf-meta`` document of a capture (without ``core:sha512``, which the sigmf
    package computes from the data)."""
    state = (
        ""
        if capture.complete
        else (
            "; incomplete: the node's frames stop being one contiguous stream after these samples"
        )
    )
    extra = {}
    if capture.meta.get("flowgraph_hash"):
        extra["drift:flowgraph_hash"] = str(capture.meta["flowgraph_hash"])
    cal = capture.meta.get("cal_offset_db")
    if isinstance(cal, (int, float)) and not isinstance(cal, bool) and math.isfinite(cal):
        extra["drift:cal_offset_db"] = float(cal)
    if capture.channels > 1:  # an array's channels, interleaved sample by sample
        extra["core:num_channels"] = capture.channels
    position = [site.lon_deg, site.lat_deg, site.alt_m]
    return {
        "global": {
            "core:datatype": "cf32_le",
            "core:sample_rate": capture.sample_rate_hz,
            "core:description": (
                f"IQ capture of node {site.name} for DRIFT job {capture.job_id}: "
                f"{len(capture.samples)} samples at {capture.sample_rate_hz / 1e6:g} MS/s "
                f"around {capture.center_freq_hz / 1e6:.6f} MHz, time stamped by the node's "
                f"clock{state}"
            ),
            "core:recorder": "DRIFT",
            "core:geolocation": {"type": "Point", "coordinates": position},
            "core:extensions": [dict(DRIFT_EXTENSION)],
            "drift:job_id": capture.job_id,
            "drift:node_id": site.node_id,
            "drift:node_name": site.name,
            "drift:time_uncertainty_s": capture.time_uncertainty_s,
            "drift:complete": capture.complete,
            "drift:frames": capture.frames,
            "drift:flags": capture.flag_names,
            **extra,
        },
        "captures": [
            {
                "core:sample_start": 0,
                "core:frequency": capture.center_freq_hz,
                "core:datetime": sigmf_datetime(capture.time_s, capture.time_frac),
            }
        ],
        "annotations": [],
    }


def write_sigmf_archive(capture: IqCapture, site: RecordingSite, path: Path | str) -> Path:
    """Write the capture as a SigMF archive at `path` (which ends in ``.sigmf``; its stem
    names the recording inside). The metadata is validated against SigMF's schema first."""
    from sigmf import SigMFFile
    from sigmf.archive import SigMFArchive

    path = Path(path)
    if path.suffix != ".sigmf":
        raise ValueError(f"a SigMF archive's name ends in .sigmf, not {path.name!r}")
    work = Path(tempfile.mkdtemp(prefix="drift-sigmf-", dir=path.parent))
    try:
        data = work / (path.stem + ".sigmf-data")
        np.ascontiguousarray(capture.samples, dtype="<c8").tofile(data)
        recording = SigMFFile(metadata=sigmf_metadata(capture, site))
        recording.set_data_file(data_file=data)  # computes core:sha512
        SigMFArchive(recording, name=str(path), overwrite=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return path


def open_sigmf_archive(
    capture: IqCapture, site: RecordingSite, tmp_dir: Path | str | None = None
) -> tuple[BinaryIO, int, str]:
    """The capture's SigMF archive as an open file (at its start, already unlinked, so
    closing it frees the space whatever happens to the reader), its size in bytes and its
    file name (``drift-<job8>-<node name>.sigmf``)."""
    filename = archive_name(capture.job_id, site.name) + ".sigmf"
    work = Path(tempfile.mkdtemp(prefix="drift-iq-", dir=tmp_dir))
    try:
        path = write_sigmf_archive(capture, site, work / filename)
        f = open(path, "rb")  # the caller closes it
    finally:
        shutil.rmtree(work, ignore_errors=True)
    size = f.seek(0, 2)
    f.seek(0)
    return f, size, filename
