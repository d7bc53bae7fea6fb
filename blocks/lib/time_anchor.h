/* -*- c++ -*- */
/*
 * Copyright 2026 DRIFT contributors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#ifndef INCLUDED_DRIFT_TIME_ANCHOR_H
#define INCLUDED_DRIFT_TIME_ANCHOR_H

#include <gnuradio/tags.h>
#include <pmt/pmt.h>
#include <cmath>
#include <cstdint>

namespace gr {
namespace drift {

/*!
 * Absolute time of a sample stream: the rx_time of one sample (whole and
 * fractional seconds kept apart, so nanoseconds survive at 2^32 s) and the
 * sample count from there at a known rate.
 */
struct time_anchor {
    uint64_t offset = 0;
    uint64_t secs = 0;
    double frac = 0.0;
    bool from_tag = false;

    static bool is_rx_time(const pmt::pmt_t& value)
    {
        if (!pmt::is_tuple(value) || pmt::length(value) != 2)
            return false;
        const pmt::pmt_t s = pmt::tuple_ref(value, 0);
        return (pmt::is_uint64(s) || pmt::is_integer(s)) &&
               pmt::is_real(pmt::tuple_ref(value, 1));
    }

    //! Set from an rx_time tag value at a sample offset.
    void set(uint64_t at, const pmt::pmt_t& value)
    {
        offset = at;
        const pmt::pmt_t s = pmt::tuple_ref(value, 0);
        secs = pmt::is_uint64(s) ? pmt::to_uint64(s) : uint64_t(pmt::to_long(s));
        frac = pmt::to_double(pmt::tuple_ref(value, 1));
        from_tag = true;
    }

    //! Time of sample \p at as (whole seconds, fraction in [0, 1)).
    void at(uint64_t at, double samp_rate, uint64_t& s, double& f) const
    {
        const double delta = (double(int64_t(at - offset))) / samp_rate;
        double whole = std::floor(delta);
        f = frac + (delta - whole);
        int64_t sec = int64_t(secs) + int64_t(whole);
        const double carry = std::floor(f);
        f -= carry;
        sec += int64_t(carry);
        s = uint64_t(sec < 0 ? 0 : sec);
    }

    //! Seconds by which an rx_time tag at \p at differs from the count.
    double disagreement(uint64_t at, const pmt::pmt_t& value, double samp_rate) const
    {
        uint64_t s;
        double f;
        this->at(at, samp_rate, s, f);
        time_anchor other;
        other.set(at, value);
        return double(int64_t(other.secs - s)) + (other.frac - f);
    }

    pmt::pmt_t value(uint64_t at, double samp_rate) const
    {
        uint64_t s;
        double f;
        this->at(at, samp_rate, s, f);
        return pmt::make_tuple(pmt::from_uint64(s), pmt::from_double(f));
    }
};

} // namespace drift
} // namespace gr

#endif /* INCLUDED_DRIFT_TIME_ANCHOR_H */
