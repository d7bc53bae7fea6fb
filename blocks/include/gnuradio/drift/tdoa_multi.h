/* -*- c++ -*- */
/*
 * Copyright 2026 DRIFT contributors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#ifndef INCLUDED_DRIFT_TDOA_MULTI_H
#define INCLUDED_DRIFT_TDOA_MULTI_H

#include <gnuradio/drift/api.h>
#include <gnuradio/drift/gcc.h>
#include <gnuradio/sync_block.h>
#include <memory>
#include <vector>

namespace gr {
namespace drift {

/*!
 * \brief TDOA of every chosen pair of M timestamped streams, one forward transform per input.
 * \ingroup drift
 *
 * \details
 * What one drift.tdoa per pair computes, with each input's transform made once per block of
 * n samples and shared by its pairs (gcc_estimator::transform, then estimate(spectrum,
 * spectrum)): M transforms a block instead of two per pair. Pair k (pairs[k] = [ref, sig])
 * publishes on message port "pair<k>" the PDU drift.tdoa would publish for ref on its input 0
 * and sig on its input 1, to the bit (tdoa.h: delay_s, delay_samples, std_s, crb_std_s,
 * psr_db, snr_db, rms_bandwidth_hz, n_samples, weighting, offset, rx_time, start_offset_s),
 * so drift.tdoa_locate's port pair<k> takes it as it is.
 *
 * Up to n = 2^18 the block asks the scheduler for whole blocks (output multiple n: the
 * upstream buffers hold at least 2 n samples, and each block is transformed where it lies);
 * longer blocks, or a smaller output multiple set after construction, are gathered in the
 * block's own buffers.
 */
class DRIFT_API tdoa_multi : virtual public gr::sync_block
{
public:
    typedef std::shared_ptr<tdoa_multi> sptr;

    /*!
     * \param samp_rate sample rate of every input, Hz (> 0)
     * \param n samples per estimate (>= 16)
     * \param n_inputs the streams (>= 2)
     * \param weighting GCC_PHAT, GCC_PLAIN or GCC_ML
     * \param max_delay_s largest |delay| searched (<= 0: n - 1 samples)
     * \param pairs [ref, sig] input indexes, one per output port pair<k> (empty: every pair
     *        i < j in order: [0, 1], [0, 2], ..., [1, 2], ...)
     */
    static sptr make(double samp_rate,
                     int n,
                     int n_inputs,
                     int weighting = GCC_PHAT,
                     double max_delay_s = 0.0,
                     const std::vector<std::vector<int>>& pairs = {});

    //! Blocks of n samples estimated so far (each gives one PDU per pair).
    virtual uint64_t estimates() const = 0;
    //! The pairs, one per port pair<k>.
    virtual std::vector<std::vector<int>> pairs() const = 0;
};

} // namespace drift
} // namespace gr

#endif /* INCLUDED_DRIFT_TDOA_MULTI_H */
