"""The air a scenario's simulated nodes share: what their transmitters put on it.

A simulated node that transmits (a flowgraph's DRIFT Device Sink on ``sim=FILE,node=ID``)
becomes an emitter of the scenario at its node's position, seen by every other simulated node
of the scenario through the scenario's propagation model, for as long as it really transmits.
The processes simulating the nodes share one directory beside the scenario file
(``FILE.air/``): one small JSON file a transmission, which the transmitting sink writes when
it starts, renews while its flowgraph streams (a lease) and closes when it stops. A receiver
(:class:`Air`) takes a transmission's end from the file: its stop time, or, when the sink
stopped renewing it (its process killed or hung), the lease's end.

Receivers paced to the wall clock (``realtime=1``) see the air as it is while they make each
sample; a receiver that runs ahead of the clock sees only what was on the air when it made
its samples.
"""

from __future__ import annotations

import json
import math
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from gnuradio import gr

from .scenario import Cw, Emitter, Psk, Scenario, Schedule

#: a transmission not renewed for this long has ended (its sink stopped streaming)
LEASE_S = 0.5
#: how often a streaming sink renews its transmission
RENEW_S = 0.1
#: a transmission's on-air window is one period of a schedule this long
_WINDOW_PERIOD_S = float(1 << 24)
#: a transmission that ended longer ago than this is no longer looked at
FORGET_AFTER_S = 60.0
#: PN chips are shaped with this roll-off (root-raised cosine)
PN_ROLLOFF = 0.35


def air_dir(scenario_path: str | os.PathLike) -> Path:
    """The directory of a scenario file's shared air."""
    return Path(os.path.abspath(os.fspath(scenario_path)) + ".air")


@dataclass(frozen=True)
class Transmission:
    id: str
    node: str
    center_hz: float
    #: EIRP at magnitude-1 samples times the samples' mean power: what leaves the antenna
    eirp_dbm: float
    #: "cw" or "pn:CHIP_RATE_HZ"
    waveform: str
    start: float
    ended: float | None
    alive_until: float

    def end(self, now: float) -> float | None:
        """When it ended as seen at ``now``; None while it is on the air."""
        if self.ended is not None:
            return self.ended
        if self.alive_until < now:
            return self.alive_until
        return None


def read(directory: Path) -> list[Transmission]:
    out = []
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return out
    for name in names:
        if not name.endswith(".json"):
            continue
        try:
            doc = json.loads((directory / name).read_text())
            out.append(Transmission(**doc))
        except (OSError, ValueError, TypeError):
            continue  # being replaced, or not one of ours
    return out


def emitter(scn: Scenario, tx: Transmission, end: float | None) -> Emitter:
    """The scenario emitter a transmission is: at its node's position, at its EIRP, with its
    waveform, on the air from its start to its end (open while it lasts)."""
    node = scn.node(tx.node)
    if tx.waveform.startswith("pn:"):
        waveform = Psk(
            type="psk", order=2, symbol_rate_hz=float(tx.waveform[3:]), rolloff=PN_ROLLOFF
        )
    else:
        waveform = Cw(type="cw")
    stop = tx.start + _WINDOW_PERIOD_S / 2 if end is None else max(end, tx.start + 1e-9)
    return Emitter(
        id=f"node:{tx.node}",
        position=node.position,
        frequency_hz=tx.center_hz,
        eirp_dbm=tx.eirp_dbm,
        waveform=waveform,
        schedule=Schedule(
            period_s=_WINDOW_PERIOD_S,
            duty_cycle=(stop - tx.start) / _WINDOW_PERIOD_S,
            offset_s=tx.start,
        ),
    )


class Air:
    """A receiving node's view of the air: the scenario with the other nodes' transmissions
    added as emitters. :meth:`changed` says when that scenario is different."""

    def __init__(self, directory: Path, scn: Scenario, node_id: str):
        self.directory = Path(directory)
        self.scn = scn
        self.node_id = node_id
        self._seen: tuple = ()
        self._checked = 0.0

    def changed(self, now: float | None = None) -> Scenario | None:
        """The scenario as the air now makes it, when that differs from the last one given
        (None: unchanged). Looks at the directory at most every RENEW_S."""
        now = time.time() if now is None else now
        if now - self._checked < RENEW_S:
            return None
        self._checked = now
        state = tuple(
            (tx.id, tx.node, tx.center_hz, tx.eirp_dbm, tx.waveform, tx.start, tx.end(now))
            for tx in read(self.directory)
            if tx.node != self.node_id
            and tx.node in {n.id for n in self.scn.nodes}
            and (tx.end(now) is None or tx.end(now) > now - FORGET_AFTER_S)
        )
        if state == self._seen:
            return None
        self._seen = state
        by_id = {tx.id: tx for tx in read(self.directory)}
        extra = [emitter(self.scn, by_id[s[0]], s[6]) if s[0] in by_id else None for s in state]
        emitters = [*self.scn.emitters, *(e for e in extra if e is not None)]
        return self.scn.model_copy(update={"emitters": emitters})


class sim_sink(gr.sync_block):
    """A simulated node's transmitter: consumes complex samples at the sample rate (from
    ``start_time`` on, UNIX s; 0: at once) and puts them on the scenario's air as an emitter
    at the node's position, ``power_dbm`` for samples of magnitude 1 (the EIRP adds the
    node's antenna gain). The samples' waveform is declared (``cw``, ``pn:CHIP_RATE_HZ``): the
    air carries it as the scenario's waveform of that kind, at the power the samples have."""

    def __init__(
        self,
        scn: Scenario,
        directory: Path,
        node_id: str,
        samp_rate_hz: float,
        center_hz: float,
        power_dbm: float,
        start_time: float = 0.0,
        waveform: str = "cw",
        hang: bool = False,
    ):
        gr.sync_block.__init__(self, "drift_sim_sink", [np.complex64], [])
        #: fault injection (device option tx_hang=1): once on the air, the transmitter never
        #: returns to its flowgraph and never stops by itself, as a hung driver keeps a
        #: transmitter keyed; only killing its process takes it off the air
        self.hang = bool(hang)
        node = scn.node(node_id)
        if not node.model.has_tx:
            raise ValueError(f"node {node_id!r}: a {node.model.name} cannot transmit")
        if not (waveform == "cw" or waveform.startswith("pn:")):
            raise ValueError(f"waveform {waveform!r}: give cw or pn:CHIP_RATE_HZ")
        if waveform.startswith("pn:"):
            try:
                chip = float(waveform[3:])
            except ValueError:
                raise ValueError(f"waveform {waveform!r}: pn:CHIP_RATE_HZ needs a number") from None
            if not 0 < chip <= samp_rate_hz:
                raise ValueError(
                    f"waveform {waveform!r}: the chip rate must be within 0-{samp_rate_hz:g} Hz"
                )
        node.model.check_tuning(center_hz, samp_rate_hz)
        self.directory = Path(directory)
        self.node_id = node_id
        self.rate = float(samp_rate_hz)
        self.center_hz = float(center_hz)
        self.eirp_dbm = float(power_dbm) + node.antenna_gain_dbi
        self.waveform = waveform
        self.start_time = float(start_time)
        self.id = f"{node_id}-{uuid.uuid4().hex[:12]}"
        self._consumed = 0
        self._doc: dict | None = None
        self._renewed = 0.0
        self._measured = False

    @property
    def path(self) -> Path:
        return self.directory / f"{self.id}.json"

    def _write(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.directory / f".{self.id}.tmp"
        tmp.write_text(json.dumps(self._doc))
        os.replace(tmp, self.path)

    def start(self) -> bool:
        now = time.time()
        self.start_time = max(self.start_time, now)  # late: from now on, never catching up
        self._doc = {
            "id": self.id,
            "node": self.node_id,
            "center_hz": self.center_hz,
            "eirp_dbm": self.eirp_dbm,
            "waveform": self.waveform,
            "start": self.start_time,
            "ended": None,
            "alive_until": max(self.start_time, now) + LEASE_S,
        }
        self._write()
        self._renewed = now
        self._measured = False
        return True

    def work(self, input_items, output_items):
        x = input_items[0]
        # paced as a device's DAC takes samples: from the start on, never ahead of the clock
        while True:
            now = time.time()
            allowed = int((now - self.start_time) * self.rate) - self._consumed
            if allowed > 0:
                break
            time.sleep(min(max(-allowed / self.rate, 1e-3), RENEW_S))
        n = min(len(x), allowed)
        if not self._measured:
            # the power the samples really have (magnitude 1 is power_dbm)
            power = float(np.mean(np.abs(x[:n].astype(np.complex128)) ** 2))
            self._doc["eirp_dbm"] = self.eirp_dbm + 10 * math.log10(max(power, 1e-30))
            self._measured = True
            self._doc["alive_until"] = now + LEASE_S
            self._write()
            self._renewed = now
        elif now - self._renewed >= RENEW_S:
            self._doc["alive_until"] = now + LEASE_S
            self._write()
            self._renewed = now
        while self.hang:
            time.sleep(RENEW_S)
            self._doc["alive_until"] = time.time() + LEASE_S
            self._write()
        self._consumed += n
        return n

    def stop(self) -> bool:
        if self._doc is not None and self._doc["ended"] is None:
            self._doc["ended"] = min(time.time(), self.start_time + self._consumed / self.rate)
            self._write()
        return True
