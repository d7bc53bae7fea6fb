/* -*- c++ -*- */
/*
 * Copyright 2026 DRIFT contributors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#ifndef INCLUDED_DRIFT_TDOA_H
#define INCLUDED_DRIFT_TDOA_H

#include <gnuradio/drift/api.h>
#include <gnuradio/drift/gcc.h>
#include <gnuradio/sync_block.h>
#include <memory>

namespace gr {
namespace drift {

/*!
 * \brief TDOA between two timestamped streams: one PDU per block of n samples.
 * \ingroup drift
 *
 * \details
 * Input 0 is the reference, input 1 the signal. Every n samples of both, the block's
 * gcc_estimator (gcc.h: the algorithm of gnuradio.drift.df.estimate_delay at FFT speed) runs
 * and a PDU is published on "delays": metadata dict {delay_s, delay_samples, std_s,
 * crb_std_s, psr_db, snr_db, rms_bandwidth_hz, n_samples, weighting, offset (first sample's
 * index on input 0), rx_time (its time, when input 0 carries rx_time), start_offset_s},
 * data: an empty f32 vector. When both inputs carry rx_time, the difference of the
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
     * \param weighting GCC_PHAT, GCC_PLAIN or GCC_ML
     * \param max_delay_s largest |delay| searched (<= 0: n - 1 samples)
     */
    static sptr make(double samp_rate, int n, int weighting = GCC_PHAT, double max_delay_s = 0.0);

    //! Estimates published so far.
    virtual uint64_t estimates() const = 0;
};

} // namespace drift
} // namespace gr

#endif /* INCLUDED_DRIFT_TDOA_H */
