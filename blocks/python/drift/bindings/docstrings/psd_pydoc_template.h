/*
 * Copyright 2026 DRIFT contributors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */
#include "pydoc_macros.h"
#define D(...) DOC(gr, drift, __VA_ARGS__)

static const char* __doc_gr_drift_psd = R"doc(Calibrated power spectral density by Welch's method.

Complex samples in, one float vector of fft_size bins out per n_avg FFT frames:
window, FFT, |X|^2, mean over n_avg frames (consecutive frames fft_size*(1-overlap)
apart), fftshifted, scaled as a density (V^2/Hz, scipy.signal.welch
scaling='density'), in dB when db, plus cal_offset_db (dBm/Hz when calibrated).
Each output vector carries rx_time (time of its first input sample) and rx_freq
tags; an average never spans an rx_freq tag (retune) or an rx_time jump.)doc";

static const char* __doc_gr_drift_psd_psd = R"doc()doc";

static const char* __doc_gr_drift_psd_make = R"doc(psd(fft_size, n_avg, samp_rate, overlap=0.0, window=fft.window.WIN_BLACKMAN_HARRIS, db=True, cal_offset_db=0.0)

fft_size: bins per output vector (> 0); n_avg: frames averaged (> 0);
samp_rate: Hz (> 0); overlap: in [0, 1); window: gnuradio.fft.window type;
db: dB output (else linear density); cal_offset_db: added in dB.
Raises ValueError on an invalid parameter.)doc";

static const char* __doc_gr_drift_psd_window_taps = R"doc(The window taps in use.)doc";
static const char* __doc_gr_drift_psd_step = R"doc(Samples between consecutive frame starts.)doc";
static const char* __doc_gr_drift_psd_cal_offset_db = R"doc(Calibration offset in dB.)doc";
static const char* __doc_gr_drift_psd_set_cal_offset_db = R"doc(Set the calibration offset in dB.)doc";
static const char* __doc_gr_drift_psd_samp_rate = R"doc(Sample rate in Hz.)doc";
static const char* __doc_gr_drift_psd_set_samp_rate = R"doc(Set the sample rate in Hz.)doc";
static const char* __doc_gr_drift_psd_n_avg = R"doc(Frames averaged per output vector.)doc";
static const char* __doc_gr_drift_psd_set_n_avg = R"doc(Set the frames averaged per output vector (restarts the average).)doc";
