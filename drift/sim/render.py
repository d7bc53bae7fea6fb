"""`drift sim render`: what one node receives, as a SigMF recording any SDR tool can open."""

from __future__ import annotations

import datetime as dt
import math
import os

from .scenario import Scenario
from .synth import NodeReceiver, full_scale_dbm, received_power_dbm

CHUNK = 1 << 18


def render(
    scn: Scenario,
    node_id: str,
    center_hz: float,
    rate_hz: float,
    start_s: float,
    duration_s: float,
    basename: str,
    progress: bool = False,
) -> int:
    """Write BASENAME.sigmf-data (cf32_le) and .sigmf-meta; returns the number of samples.

    core:datetime is the node's own clock at the first sample (an array node: its channels
    interleaved, core:num_channels, element offsets in drift:element_enu_m); samples are in
    ADC full-scale units, and drift:cal_offset_db (full scale in dBm) turns dBFS into dBm at the antenna.
    """
    import sigmf

    if not duration_s > 0:
        raise ValueError(f"--duration must be > 0 s, got {duration_s:g}")
    rx = NodeReceiver(scn, node_id, rate_hz, center_hz)
    total = int(round(duration_s * rate_hz))
    whole = math.floor(start_s)
    frac = start_s - whole
    for suffix in (".sigmf-meta", ".sigmf-data"):
        if basename.endswith(suffix):
            basename = basename[: -len(suffix)]
    directory = os.path.dirname(os.path.abspath(basename))
    if not os.path.isdir(directory):
        raise ValueError(f"-o: directory {directory} does not exist")
    data_tmp = os.path.join(directory, f".{os.path.basename(basename)}.sigmf-data.part")
    meta_tmp = os.path.join(directory, f".{os.path.basename(basename)}.sigmf-meta.part")
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, unit="S", unit_scale=True, desc="render", leave=False)
    try:
        with open(data_tmp, "wb") as f:
            for start in range(0, total, CHUNK):
                n = min(CHUNK, total - start)
                # an array node: channels interleaved sample by sample (core:num_channels)
                f.write(rx.samples(start, n, whole, frac).T.astype("<c8").tobytes())
                if bar is not None:
                    bar.update(n)
        node = scn.node(node_id)
        meta = sigmf.SigMFFile(
            global_info={
                sigmf.DATATYPE_KEY: "cf32_le",
                sigmf.SAMPLE_RATE_KEY: rate_hz,
                sigmf.HW_KEY: f"simulated {node.model.name}",
                sigmf.RECORDER_KEY: "drift sim render",
                sigmf.DESCRIPTION_KEY: f"DRIFT simulator: node {node_id} of a scenario with "
                f"{len(scn.emitters)} emitter(s)",
                sigmf.EXTENSIONS_KEY: [{"name": "drift", "version": "0.1.0", "optional": True}],
                "drift:cal_offset_db": full_scale_dbm(node, center_hz),
                "drift:node": node_id,
                "drift:seed": scn.seed,
            }
        )
        if rx.channels > 1:
            meta.set_global_field(sigmf.NUM_CHANNELS_KEY, rx.channels)
            meta.set_global_field("drift:element_enu_m", rx.element_enu_m.tolist())
        stamp = dt.datetime.fromtimestamp(whole, dt.UTC) + dt.timedelta(seconds=frac)
        meta.add_capture(
            0,
            metadata={
                sigmf.FREQUENCY_KEY: center_hz,
                sigmf.DATETIME_KEY: stamp.isoformat().replace("+00:00", "Z"),
            },
        )
        for em in scn.emitters:
            if abs(em.frequency_hz - center_hz) < rate_hz / 2:
                meta.add_annotation(
                    0,
                    total,
                    metadata={
                        sigmf.FREQ_LOWER_EDGE_KEY: em.frequency_hz,
                        sigmf.FREQ_UPPER_EDGE_KEY: em.frequency_hz,
                        sigmf.LABEL_KEY: em.id,
                        "drift:power_dbm": received_power_dbm(scn, em, node),
                    },
                )
        with open(meta_tmp, "w") as f:
            meta.dump(f, pretty=True)
        os.replace(data_tmp, basename + ".sigmf-data")
        os.replace(meta_tmp, basename + ".sigmf-meta")
    except BaseException:
        for tmp in (data_tmp, meta_tmp):
            if os.path.exists(tmp):
                os.unlink(tmp)
        raise
    finally:
        if bar is not None:
            bar.close()
    return total


def truth_table(scn: Scenario, node_id: str) -> list[dict]:
    """Each emitter as the node should see it: frequency (with the node's LO error, as the
    node measures it) and power at the antenna."""
    node = scn.node(node_id)
    rows = []
    for em in scn.emitters:
        rows.append(
            {
                "id": em.id,
                "frequency_hz": em.frequency_hz,
                "apparent_frequency_hz": em.frequency_hz / (1 + node.clock.lo_error_ppm * 1e-6),
                "power_dbm": received_power_dbm(scn, em, node),
                "waveform": em.waveform.type,
                "duty_cycle": em.schedule.duty_cycle,
            }
        )
    return rows
