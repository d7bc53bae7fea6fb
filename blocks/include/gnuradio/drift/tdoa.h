/* -*- c++ -*- */
/*
 * Copyright 2026 DRIFT contributors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#ifndef INCLUDED_DRIFT_TDOA_H
#define INCLUDED_DRIFT_TDOA_H

#include <gnuradio/drift/api.h>
#include <gnuradio/sync_block.h>
#include <complex>
#include <memory>
#include <string>

namespace gr {
namespace drift {

//! GCC weightings of the C++ delay estimator.
enum gcc_weighting { GCC_PHAT = 0, GCC_PLAIN = 1 };

//! One delay estimate (signal relative to reference; > 0: the signal arrives later).
struct DRIFT_API gcc_result {
    double delay_samples = 0.0;
    double std_samples = 0.0;   //!< predicted std at the measured spectra (first order)
    double psr_db = 0.0;        //!< peak over the highest sidelobe outside the main lobe
    double snr_db = 0.0;        //!< per-sample SNR over the capture band
    double rms_bandwidth = 0.0; //!< of the signal spectrum about its centroid, cycles/sample
    int n_samples = 0;
};

/*!
 * \brief Generalized cross-correlation delay of \p signal against \p reference.
 *
 * \details
 * The algorithm of gnuradio.drift.df.estimate_delay (its PHAT and plain weightings):
 * zero-padded FFT correlation, |peak| within +-max_lag, Newton refinement on |c(D)|^2 of
 * the band-limited interpolated correlation, peak-to-sidelobe ratio, signal and noise
 * spectra from the delay-compensated cross-spectrum, the first-order variance of the
 * weighting used. The same numbers as the Python one to rounding.
 *
 * \param max_lag largest |lag| searched in samples (< 0: n - 1)
 * \param smooth_bins spectrum smoothing (<= 0: sqrt(n)/2 clipped to 4..64)
 */
DRIFT_API gcc_result gcc_delay(const std::complex<float>* reference,
                               const std::complex<float>* signal,
                               int n,
                               gcc_weighting weighting = GCC_PHAT,
                               int max_lag = -1,
                               int smooth_bins = 0);

/*!
 * \brief TDOA between two timestamped streams: one PDU per block of n samples.
 * \ingroup drift
 *
 * \details
 * Input 0 is the reference, input 1 the signal. Every n samples of both, gcc_delay is run
 * and a PDU published on "delays": metadata dict {delay_s, delay_samples, std_s, psr_db,
 * snr_db, rms_bandwidth_hz, n_samples, weighting, offset (first sample's index on input 0),
 * rx_time (its time, when input 0 carries rx_time), start_offset_s}, data: an empty f32
 * vector. When both inputs carry rx_time, the difference of the
 * two block starts' times (start_offset_s, node clocks) is added to delay_s, so delay_s is
 * the arrival time at input 1 minus at input 0 whatever the streams' alignment.
 */
class DRIFT_API tdoa : virtual public gr::sync_block
{
public:
    typedef std::shared_ptr<tdoa> sptr;

    /*!
     * \param samp_rate sample rate of both inputs, Hz (> 0)
     * \param n samples per estimate (>= 16)
     * \param weighting GCC_PHAT or GCC_PLAIN
     * \param max_delay_s largest |delay| searched (<= 0: n - 1 samples)
     */
    static sptr make(double samp_rate, int n, int weighting = GCC_PHAT, double max_delay_s = 0.0);

    //! Estimates published so far.
    virtual uint64_t estimates() const = 0;
};

} // namespace drift
} // namespace gr

#endif /* INCLUDED_DRIFT_TDOA_H */
