/* -*- c++ -*- */
/*
 * Copyright 2026 DRIFT contributors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#ifndef INCLUDED_DRIFT_ALIGN_H
#define INCLUDED_DRIFT_ALIGN_H

#include <gnuradio/block.h>
#include <gnuradio/drift/api.h>
#include <memory>
#include <vector>

namespace gr {
namespace drift {

/*!
 * \brief N timestamped streams cut onto a common time base.
 * \ingroup drift
 *
 * \details
 * Each input must carry rx_time on its first sample (DRIFT sources, drift.time_tagger). The
 * block waits for every input's first rx_time, takes the latest start as the common start,
 * drops from each input the samples before it (to the nearest sample), and from then on
 * passes equal numbers of samples on every output: output k, sample i, is the sample of input
 * k nearest to the common start + i / samp_rate on that input's clock. Each output's first
 * sample gets rx_time (its own input's clock) and align_offset_s: its time minus the common
 * start (at most half a sample; a TDOA correlator adds it back). Tags of the inputs pass on at
 * their new offsets. A later rx_time that breaks an input's count (an overflow) is logged and
 * counted in breaks(): the streams are no longer aligned after it. An input with no rx_time in
 * its first max_wait samples is passed on as it comes (logged). gnuradio.drift.align_reference
 * is the same block in Python (the reference of its QA test).
 */
class DRIFT_API align : virtual public gr::block
{
public:
    typedef std::shared_ptr<align> sptr;

    /*!
     * \param samp_rate of every input, Hz (> 0)
     * \param n_inputs the streams (>= 2)
     * \param max_wait input samples to wait for an input's first rx_time
     */
    static sptr make(double samp_rate, int n_inputs = 2, int max_wait = 1 << 20);

    //! rx_time tags that broke an input's sample count so far.
    virtual uint64_t breaks() const = 0;
    //! Each output's first sample's time minus the common start, s (empty until planned).
    virtual std::vector<double> offsets_s() const = 0;
    //! Samples dropped from each input before the common start (empty until planned).
    virtual std::vector<uint64_t> drops() const = 0;
};

} // namespace drift
} // namespace gr

#endif /* INCLUDED_DRIFT_ALIGN_H */
