#
# Copyright 2026 DRIFT contributors.
#
# SPDX-License-Identifier: GPL-3.0-or-later
#
"""Direction finding and localization algorithms (numpy / scipy), callable without a flowgraph.

tdoa    estimate_delay (GCC PHAT / plain / ML, sub-sample refinement, predicted std, PSR, SNR;
        C++ where the compiled module is present, estimate_delay_reference in numpy),
        clock_offsets / sync_to_reference (reference-transmitter clock sync)
locate  locate_tdoa (Chan / spherical intersection + Gauss-Newton, Fisher covariance, ellipse),
        tdoa_likelihood_grid / likelihood_geojson / likelihood_png, locate_rss,
        triangulate_bearings, locate_hybrid (TDOAs and bearings in one fit)
aoa     ula_positions, uca_positions, steering_vectors, spatial_covariance, bartlett / mvdr /
        music spectra, root_music, estimate_bearings, estimate_n_sources
calibration  ArrayCalibration (per-channel gains and delays, removed linearly; JSON files),
        calibrate_array (narrowband), calibrate_wideband (delays then gains; a known emitter
        or a common noise source), aperture_delays_s, fractional_delay_taps
crb     delay and bearing Cramer-Rao bounds
geo     WGS84 <-> ENU (pymap3d), SPEED_OF_LIGHT_M_S
capture Capture (samples + rx_time + position + clock std), align_captures, band_select,
        tdoa_from_captures, reference_offsets, sync_captures, locate_captures (timestamped
        captures -> fix)
sigmf_spatial  bearings and fixes as SigMF `spatial` extension fields (write and read)
"""

from . import sigmf_spatial  # noqa: F401
from .aoa import (
    METHODS,
    Bearing,
    BearingResult,
    bartlett_spectrum,
    estimate_bearings,
    estimate_n_sources,
    music_spectrum,
    mvdr_spectrum,
    root_music,
    spatial_covariance,
    steering_vectors,
    uca_positions,
    ula_positions,
)
from .calibration import (
    ArrayCalibration,
    aperture_delays_s,
    calibrate_array,
    calibrate_wideband,
    fractional_delay_taps,
)
from .capture import (
    AlignedCaptures,
    Capture,
    CaptureTdoa,
    align_captures,
    band_select,
    locate_captures,
    reference_offsets,
    shift_capture,
    sync_captures,
    tdoa_covariance,
    tdoa_from_captures,
)
from .crb import (
    bearing_crb,
    bearing_crb_std_deg,
    delay_crb_bandlimited,
    delay_crb_flat,
    delay_crb_from_spectra,
)
from .geo import SPEED_OF_LIGHT_M_S, GeoOrigin, enu_to_geodetic, geodetic_to_enu
from .locate import (
    ConfidenceEllipse,
    LikelihoodGrid,
    PositionFix,
    RssFix,
    chan_tdoa,
    confidence_ellipse,
    likelihood_geojson,
    likelihood_png,
    locate_hybrid,
    locate_rss,
    locate_tdoa,
    spherical_intersection,
    tdoa_likelihood_grid,
    triangulate_bearings,
)
from .tdoa import (
    WEIGHTINGS,
    ClockOffsets,
    DelayEstimate,
    clock_offsets,
    estimate_delay,
    estimate_delay_reference,
    sync_to_reference,
)

__all__ = [
    "METHODS",
    "WEIGHTINGS",
    "SPEED_OF_LIGHT_M_S",
    "AlignedCaptures",
    "Capture",
    "CaptureTdoa",
    "align_captures",
    "band_select",
    "locate_captures",
    "reference_offsets",
    "shift_capture",
    "sync_captures",
    "tdoa_covariance",
    "tdoa_from_captures",
    "ArrayCalibration",
    "aperture_delays_s",
    "fractional_delay_taps",
    "Bearing",
    "BearingResult",
    "ClockOffsets",
    "ConfidenceEllipse",
    "DelayEstimate",
    "GeoOrigin",
    "LikelihoodGrid",
    "PositionFix",
    "RssFix",
    "bartlett_spectrum",
    "bearing_crb",
    "bearing_crb_std_deg",
    "calibrate_array",
    "calibrate_wideband",
    "chan_tdoa",
    "clock_offsets",
    "confidence_ellipse",
    "delay_crb_bandlimited",
    "delay_crb_flat",
    "delay_crb_from_spectra",
    "enu_to_geodetic",
    "estimate_bearings",
    "estimate_delay",
    "estimate_delay_reference",
    "estimate_n_sources",
    "geodetic_to_enu",
    "likelihood_geojson",
    "likelihood_png",
    "locate_hybrid",
    "locate_rss",
    "locate_tdoa",
    "music_spectrum",
    "mvdr_spectrum",
    "root_music",
    "spatial_covariance",
    "spherical_intersection",
    "steering_vectors",
    "sync_to_reference",
    "tdoa_likelihood_grid",
    "triangulate_bearings",
    "uca_positions",
    "ula_positions",
]
