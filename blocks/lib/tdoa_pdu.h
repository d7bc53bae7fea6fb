/* -*- c++ -*- */
/*
 * Copyright 2026 DRIFT contributors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#ifndef INCLUDED_DRIFT_TDOA_PDU_H
#define INCLUDED_DRIFT_TDOA_PDU_H

#include "time_anchor.h"
#include <gnuradio/drift/gcc.h>
#include <pmt/pmt.h>
#include <cstdint>
#include <vector>

namespace gr {
namespace drift {

inline const char* tdoa_weighting_name(gcc_weighting w)
{
    return w == GCC_PHAT ? "phat" : w == GCC_PLAIN ? "plain" : "ml";
}

/*!
 * The PDU of one delay estimate, as drift.tdoa and drift.tdoa_multi publish it: metadata
 * {rx_time (of the block start on the reference, when it carries rx_time), delay_s (the
 * sample delay plus start_offset_s, the difference of the two streams' times at the block
 * start), delay_samples, std_s, crb_std_s, psr_db, snr_db, rms_bandwidth_hz, n_samples,
 * weighting, offset, start_offset_s}, data an empty f32 vector.
 */
inline pmt::pmt_t tdoa_pdu(const gcc_result& r,
                           double samp_rate,
                           int n,
                           gcc_weighting weighting,
                           uint64_t block_start,
                           const time_anchor& ref,
                           const time_anchor& sig)
{
    double start_offset = 0.0;
    pmt::pmt_t meta = pmt::make_dict();
    if (ref.from_tag) {
        meta = pmt::dict_add(meta, pmt::mp("rx_time"), ref.value(block_start, samp_rate));
        if (sig.from_tag) {
            uint64_t s0, s1;
            double f0, f1;
            ref.at(block_start, samp_rate, s0, f0);
            sig.at(block_start, samp_rate, s1, f1);
            start_offset = double(int64_t(s1 - s0)) + (f1 - f0);
        }
    }
    const double delay_s = r.delay_samples / samp_rate + start_offset;
    meta = pmt::dict_add(meta, pmt::mp("delay_s"), pmt::from_double(delay_s));
    meta = pmt::dict_add(meta, pmt::mp("delay_samples"), pmt::from_double(r.delay_samples));
    meta = pmt::dict_add(meta, pmt::mp("std_s"), pmt::from_double(r.std_samples / samp_rate));
    meta = pmt::dict_add(
        meta, pmt::mp("crb_std_s"), pmt::from_double(r.crb_std_samples / samp_rate));
    meta = pmt::dict_add(meta, pmt::mp("psr_db"), pmt::from_double(r.psr_db));
    meta = pmt::dict_add(meta, pmt::mp("snr_db"), pmt::from_double(r.snr_db));
    meta = pmt::dict_add(
        meta, pmt::mp("rms_bandwidth_hz"), pmt::from_double(r.rms_bandwidth * samp_rate));
    meta = pmt::dict_add(meta, pmt::mp("n_samples"), pmt::from_long(n));
    meta = pmt::dict_add(meta, pmt::mp("weighting"), pmt::mp(tdoa_weighting_name(weighting)));
    meta = pmt::dict_add(meta, pmt::mp("offset"), pmt::from_uint64(block_start));
    meta = pmt::dict_add(meta, pmt::mp("start_offset_s"), pmt::from_double(start_offset));
    const std::vector<float> none;
    return pmt::cons(meta, pmt::init_f32vector(0, none));
}

} // namespace drift
} // namespace gr

#endif /* INCLUDED_DRIFT_TDOA_PDU_H */
