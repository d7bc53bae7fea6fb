#
# Copyright 2026 DRIFT contributors.
#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""Bearings and position fixes in SigMF metadata: the `spatial` extension (v1.1.0).

Written (and read back):
  global       core:extensions lists spatial (and drift); spatial:num_elements,
               spatial:channel_index
  captures     spatial:aperture_azimuth (boresight, degrees east of true north) and
               spatial:element_geometry ([{"point": [x, y, z]}] in metres, the spatial CRS:
               x along the boresight, y to its left, z up)
  annotations  a bearing: spatial:signal_bearing {azimuth, az_error} with azimuth relative
               to the aperture's boresight, as the extension defines it; a fix:
               spatial:emitter_location, a GeoJSON Point [lon, lat, alt].
DRIFT's own fields (namespace drift) carry what the extension has no field for:
drift:azimuth_true_deg (the bearing east of true north), drift:error_meaning, drift:ellipse
{semi_major_m, semi_minor_m, orientation_deg, confidence} and drift:covariance_enu_m2.
az_error is one standard deviation (the extension leaves its meaning to the application;
drift:error_meaning says so in every annotation).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass

import numpy as np

SPATIAL_VERSION = "1.1.0"
DRIFT_VERSION = "1.0.0"
ERROR_MEANING = "az_error: one standard deviation (Cramer-Rao bound at the measured SNR)"


def _finite(name, value):
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value}")
    return v


def _extensions(meta):
    g = meta.setdefault("global", {})
    ext = g.setdefault("core:extensions", [])
    names = {e.get("name") for e in ext}
    if "spatial" not in names:
        ext.append({"name": "spatial", "version": SPATIAL_VERSION, "optional": True})
    if "drift" not in names:
        ext.append({"name": "drift", "version": DRIFT_VERSION, "optional": True})
    return g


def add_array(meta, element_enu_m, aperture_azimuth_deg=0.0, channel_index=0, capture=0):
    """The array's geometry: element positions as East-North-Up offsets (m), turned into the
    spatial CRS of an aperture whose boresight points at aperture_azimuth_deg."""
    p = np.asarray(element_enu_m, dtype=float)
    if p.ndim != 2 or p.shape[1] not in (2, 3) or not np.all(np.isfinite(p)):
        raise ValueError(f"element_enu_m must be finite (M, 2|3) metres, got shape {p.shape}")
    if p.shape[1] == 2:
        p = np.column_stack([p, np.zeros(len(p))])
    az = math.radians(_finite("aperture_azimuth_deg", aperture_azimuth_deg))
    fwd = np.array([math.sin(az), math.cos(az)])  # boresight, east/north
    left = np.array([-math.cos(az), math.sin(az)])  # 90 degrees anticlockwise of it
    x = p[:, :2] @ fwd
    y = p[:, :2] @ left
    g = _extensions(meta)
    g["spatial:num_elements"] = int(len(p))
    g["spatial:channel_index"] = int(channel_index)
    caps = meta.setdefault("captures", [])
    while len(caps) <= capture:
        caps.append({"core:sample_start": 0})
    caps[capture]["spatial:aperture_azimuth"] = float(math.degrees(az) % 360)
    caps[capture]["spatial:element_geometry"] = [
        {"point": [float(a), float(b), float(c)]} for a, b, c in zip(x, y, p[:, 2], strict=True)
    ]
    return meta


def add_bearing(
    meta,
    azimuth_deg,
    std_deg,
    sample_start,
    sample_count=None,
    freq_lower_hz=None,
    freq_upper_hz=None,
    aperture_azimuth_deg=None,
    description=None,
    snr_db=None,
):
    """One bearing (degrees east of true north, its 1-sigma std) as an annotation."""
    az = _finite("azimuth_deg", azimuth_deg)
    sd = _finite("std_deg", std_deg)
    if sd < 0:
        raise ValueError(f"std_deg must be >= 0, got {std_deg}")
    if int(sample_start) < 0:
        raise ValueError(f"sample_start must be >= 0, got {sample_start}")
    if aperture_azimuth_deg is None:
        caps = meta.get("captures") or [{}]
        aperture_azimuth_deg = caps[0].get("spatial:aperture_azimuth", 0.0)
    _extensions(meta)
    ann = {"core:sample_start": int(sample_start)}
    if sample_count is not None:
        ann["core:sample_count"] = int(sample_count)
    if freq_lower_hz is not None and freq_upper_hz is not None:
        ann["core:freq_lower_edge"] = float(freq_lower_hz)
        ann["core:freq_upper_edge"] = float(freq_upper_hz)
    if description:
        ann["core:comment"] = str(description)
    ann["spatial:signal_bearing"] = {
        "azimuth": float((az - aperture_azimuth_deg) % 360),
        "az_error": sd,
    }
    ann["drift:azimuth_true_deg"] = float(az % 360)
    ann["drift:error_meaning"] = ERROR_MEANING
    if snr_db is not None:
        ann["drift:snr_db"] = float(snr_db)
    _append_sorted(meta, ann)
    return ann


def add_fix(meta, fix, origin, sample_start=0, sample_count=None, description=None):
    """A position fix (df.PositionFix in the ENU frame of `origin`, a df.GeoOrigin) as an
    annotation: spatial:emitter_location plus its ellipse and covariance."""
    if int(sample_start) < 0:
        raise ValueError(f"sample_start must be >= 0, got {sample_start}")
    p = np.asarray(fix.position_enu_m, dtype=float)
    if not np.all(np.isfinite(p)):
        raise ValueError("the fix's position is not finite")
    lat, lon, alt = origin.to_geodetic(p)
    _extensions(meta)
    ann = {"core:sample_start": int(sample_start)}
    if sample_count is not None:
        ann["core:sample_count"] = int(sample_count)
    if description:
        ann["core:comment"] = str(description)
    ann["spatial:emitter_location"] = {
        "type": "Point",
        "coordinates": [float(lon), float(lat), float(alt)],
    }
    e = fix.ellipse
    ann["drift:ellipse"] = {
        "semi_major_m": float(e.semi_major_m),
        "semi_minor_m": float(e.semi_minor_m),
        "orientation_deg": float(e.orientation_deg),
        "confidence": float(e.confidence),
    }
    ann["drift:covariance_enu_m2"] = np.asarray(fix.covariance_m2, dtype=float).tolist()
    ann["drift:method"] = str(fix.method)
    _append_sorted(meta, ann)
    return ann


def _append_sorted(meta, ann):
    anns = meta.setdefault("annotations", [])
    anns.append(ann)
    anns.sort(key=lambda a: a["core:sample_start"])  # SigMF: ascending sample_start


@dataclass(frozen=True)
class SpatialBearing:
    sample_start: int
    azimuth_deg: float  # east of true north
    std_deg: float


@dataclass(frozen=True)
class SpatialFix:
    sample_start: int
    lat_deg: float
    lon_deg: float
    alt_m: float
    ellipse: dict | None


def read_bearings(meta):
    """The bearings of a metadata dict's annotations (spatial:signal_bearing or
    spatial:signal_azimuth), turned to true north by the first capture's aperture azimuth."""
    caps = meta.get("captures") or [{}]
    boresight = float(caps[0].get("spatial:aperture_azimuth", 0.0))
    out = []
    for a in meta.get("annotations", []):
        b = a.get("spatial:signal_bearing")
        if b is not None and "azimuth" in b:
            az, sd = float(b["azimuth"]), float(b.get("az_error", math.nan))
        elif "spatial:signal_azimuth" in a:
            az, sd = float(a["spatial:signal_azimuth"]), math.nan
        else:
            continue
        out.append(SpatialBearing(int(a.get("core:sample_start", 0)), (az + boresight) % 360, sd))
    return out


def read_fixes(meta):
    """The emitter locations of a metadata dict's annotations."""
    out = []
    for a in meta.get("annotations", []):
        loc = a.get("spatial:emitter_location")
        if not loc:
            continue
        if loc.get("type") != "Point" or len(loc.get("coordinates", [])) < 2:
            raise ValueError(f"spatial:emitter_location must be a GeoJSON Point, got {loc}")
        c = loc["coordinates"]
        out.append(
            SpatialFix(
                int(a.get("core:sample_start", 0)),
                float(c[1]),
                float(c[0]),
                float(c[2]) if len(c) > 2 else 0.0,
                a.get("drift:ellipse"),
            )
        )
    return out


def write_meta(path, meta):
    """Write a .sigmf-meta file atomically (a temporary file renamed over it: never half)."""
    text = json.dumps(meta, indent=2, sort_keys=True)
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".sigmf-meta.", dir=d)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
