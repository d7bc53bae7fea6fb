#
# Copyright 2026 DRIFT contributors.
#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""Coordinates for localization: WGS84 geodetic <-> local East-North-Up (ENU), through pymap3d.

All solvers in gnuradio.drift.df work in a local ENU frame in metres around an origin (a
sensor, or the centroid of the network); this module converts to and from latitude /
longitude / height above the WGS84 ellipsoid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pymap3d

SPEED_OF_LIGHT_M_S = 299_792_458.0


def geodetic_to_enu(lat_deg, lon_deg, alt_m, origin_lat_deg, origin_lon_deg, origin_alt_m=0.0):
    """WGS84 (degrees, metres) -> ENU metres about an origin; returns an array (..., 3)."""
    e, n, u = pymap3d.geodetic2enu(
        np.asarray(lat_deg, dtype=float),
        np.asarray(lon_deg, dtype=float),
        np.asarray(alt_m, dtype=float),
        origin_lat_deg,
        origin_lon_deg,
        origin_alt_m,
        deg=True,
    )
    return np.stack(np.broadcast_arrays(e, n, u), axis=-1)


def enu_to_geodetic(enu_m, origin_lat_deg, origin_lon_deg, origin_alt_m=0.0):
    """ENU metres (..., 2 or 3; a missing up is 0) -> (lat_deg, lon_deg, alt_m) arrays."""
    enu = np.asarray(enu_m, dtype=float)
    if enu.shape[-1] not in (2, 3):
        raise ValueError(f"ENU points need 2 or 3 coordinates, got shape {enu.shape}")
    up = enu[..., 2] if enu.shape[-1] == 3 else np.zeros(enu.shape[:-1])
    lat, lon, alt = pymap3d.enu2geodetic(
        enu[..., 0], enu[..., 1], up, origin_lat_deg, origin_lon_deg, origin_alt_m, deg=True
    )
    return np.asarray(lat), np.asarray(lon), np.asarray(alt)


@dataclass(frozen=True)
class GeoOrigin:
    """The origin of a local ENU frame (WGS84 latitude, longitude in degrees, height in m)."""

    lat_deg: float
    lon_deg: float
    alt_m: float = 0.0

    def to_enu(self, lat_deg, lon_deg, alt_m=0.0):
        """Geodetic -> ENU metres, array (..., 3)."""
        return geodetic_to_enu(lat_deg, lon_deg, alt_m, self.lat_deg, self.lon_deg, self.alt_m)

    def to_geodetic(self, enu_m):
        """ENU metres (..., 2 or 3) -> (lat_deg, lon_deg, alt_m)."""
        return enu_to_geodetic(enu_m, self.lat_deg, self.lon_deg, self.alt_m)

    @classmethod
    def centroid_of(cls, lat_deg, lon_deg, alt_m=0.0):
        """An origin at the mean of some points (adequate for a network tens of km across)."""
        lat = np.asarray(lat_deg, dtype=float)
        lon = np.asarray(lon_deg, dtype=float)
        alt = np.broadcast_to(np.asarray(alt_m, dtype=float), lat.shape)
        return cls(float(lat.mean()), float(lon.mean()), float(alt.mean()))
