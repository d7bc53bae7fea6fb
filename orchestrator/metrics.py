"""Prometheus metrics of the coordinator and the collector, in one place.

Names follow the technical overview (`drift_jobs_total`, `drift_job_duration_seconds`,
`drift_active_nodes`, `drift_spectrum_data_points_total`) plus the data plane's own counters.
Every metric lives in :data:`REGISTRY`, which ``/metrics`` serves; tests read values from it with
``REGISTRY.get_sample_value(name, labels)``.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

jobs_total = Counter(
    "drift_jobs_total",
    "Jobs that reached a final state, by status and type",
    ["status", "type"],
    registry=REGISTRY,
)
jobs_by_status = Gauge(
    "drift_jobs_current",
    "Jobs currently in each status, by type",
    ["status", "type"],
    registry=REGISTRY,
)
job_duration = Histogram(
    "drift_job_duration_seconds",
    "Time from a job's start to its final state",
    ["type"],
    buckets=(1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600),
    registry=REGISTRY,
)
active_nodes = Gauge("drift_active_nodes", "Nodes currently online", registry=REGISTRY)
allocation_failures = Counter(
    "drift_allocation_failures_total",
    "Jobs the allocator could not place (once per job and reason; the reason is in the API)",
    ["type"],
    registry=REGISTRY,
)

frames_received = Counter(
    "drift_frames_received_total",
    "Wire-format frames the collector took (decoded, within its limits, from a node that may "
    "send them), replays included",
    ["type"],
    registry=REGISTRY,
)
frames_stored = Counter(
    "drift_frames_stored_total",
    "Frames written to the time-series store",
    ["type"],
    registry=REGISTRY,
)
frames_lost = Counter(
    "drift_frames_lost_total",
    "Frames missing from sequence numbers (sent but never received)",
    registry=REGISTRY,
)
frames_duplicate = Counter(
    "drift_frames_duplicate_total", "Replayed frames dropped by sequence number", registry=REGISTRY
)
frames_malformed = Counter(
    "drift_frames_malformed_total",
    "Frames that failed to decode and were dropped",
    registry=REGISTRY,
)
frames_spooled = Counter(
    "drift_frames_spooled_total",
    "Frames written to the disk spool while the store was down",
    registry=REGISTRY,
)
spool_depth = Gauge(
    "drift_spool_frames", "Frames waiting in the collector's disk spool", registry=REGISTRY
)
spectrum_points = Counter("drift_spectrum_data_points_total", "PSD bins stored", registry=REGISTRY)
frames_refused = Counter(
    "drift_frames_refused_total",
    "Frames the collector refused before storage, by reason: too_large, too_many_bins, "
    "bad_ids, the wire format's reasons for malformed frames (parts, header, magic, version, "
    "frame_type, time, metadata, payload), and who may send what (unknown_sender, wrong_node, "
    "unknown_job, not_assigned, job_over; gate_unavailable while the database cannot say)",
    ["reason"],
    registry=REGISTRY,
)
data_plane_handshakes = Counter(
    "drift_data_plane_handshakes_total",
    "Curve handshakes the collector's ZAP handler answered, by result (accepted: the key "
    "belongs to an enrolled node; unknown_key: refused)",
    ["result"],
    registry=REGISTRY,
)
data_plane_connection_events = Counter(
    "drift_data_plane_connection_events_total",
    "Connection events on the collector's socket: handshake_succeeded, handshake_failed_auth "
    "(a key no node holds), handshake_failed_protocol (e.g. a plaintext peer on a Curve "
    "collector), handshake_failed (the peer hung up mid-handshake: also a plaintext peer that "
    "saw the mismatch first), disconnected (also what a peer that sends a part over "
    "the frame size limit gets)",
    ["event"],
    registry=REGISTRY,
)
sequence_streams = Gauge(
    "drift_sequence_streams",
    "(job, node, frame type) streams whose sequence numbers the collector tracks",
    registry=REGISTRY,
)
sequence_streams_evicted = Counter(
    "drift_sequence_streams_evicted_total",
    "Streams the sequence tracker forgot (least recently used) to stay within its bound",
    registry=REGISTRY,
)

#: per device of every online node, from its latest heartbeat (read from the database at scrape
#: time). Labels: node (its id) and device (driver, and serial when it has one): a node reports
#: the devices it enrolled only, so the series are bounded by enrollment (at most 32 a node)
DEVICE_LABELS = ["node", "device"]
device_temperature = Gauge(
    "drift_device_temperature_celsius",
    "Device board temperature from its sensor",
    DEVICE_LABELS,
    registry=REGISTRY,
)
device_sample_rate = Gauge(
    "drift_device_sample_rate_hz",
    "Sample rate of the device's running capture (absent while it is idle)",
    DEVICE_LABELS,
    registry=REGISTRY,
)
device_dropped_samples = Gauge(
    "drift_device_dropped_samples",
    "Samples the device lost since its node's agent started (from gaps in its time stamps)",
    DEVICE_LABELS,
    registry=REGISTRY,
)
device_overflows = Gauge(
    "drift_device_overflows",
    "Overflows the device's driver reported since its node's agent started",
    DEVICE_LABELS,
    registry=REGISTRY,
)
device_sync_uncertainty = Gauge(
    "drift_device_sync_uncertainty_seconds",
    "1-sigma uncertainty of the device's clock, as its sync sensor says",
    DEVICE_LABELS,
    registry=REGISTRY,
)
device_calibration_age = Gauge(
    "drift_device_calibration_age_seconds",
    "Time since the device's calibration record was made (absent: never calibrated)",
    DEVICE_LABELS,
    registry=REGISTRY,
)
#: (gauge, the DeviceMetrics field it shows)
DEVICE_GAUGES = (
    (device_temperature, "temperature_c"),
    (device_sample_rate, "sample_rate_hz"),
    (device_dropped_samples, "dropped_samples"),
    (device_overflows, "overflows"),
    (device_sync_uncertainty, "sync_uncertainty_s"),
)
