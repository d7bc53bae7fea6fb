/* -*- c++ -*- */
/*
 * Copyright 2026 DRIFT contributors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#ifndef INCLUDED_DRIFT_PSD_H
#define INCLUDED_DRIFT_PSD_H

#include <gnuradio/block.h>
#include <gnuradio/drift/api.h>
#include <gnuradio/fft/window.h>

namespace gr {
namespace drift {

/*!
 * \brief Calibrated power spectral density by Welch's method.
 * \ingroup drift
 *
 * \details
 * Complex samples in, one float vector of \p fft_size bins out for every
 * \p n_avg FFT frames. Each frame of \p fft_size samples is multiplied by the
 * window, transformed (FFTW through gr::fft), and |X|^2 is averaged over the
 * \p n_avg frames. Consecutive frames start \p fft_size * (1 - \p overlap)
 * samples apart, also across output vectors, so the output is a streaming
 * Welch estimate.
 *
 * The result is fftshifted (DC in the middle bin) and scaled as a density:
 * 1 / (samp_rate * sum(w^2)), i.e. V^2/Hz for input in volts, which is what
 * scipy.signal.welch(scaling='density', return_onesided=False) returns. With
 * \p db it is 10 log10 of that, plus \p cal_offset_db, so that a calibrated
 * device reads dBm/Hz at the antenna. Without \p db the calibration offset is
 * applied as a linear factor.
 *
 * Time: every output vector carries an \c rx_time tag (uint64 seconds, double
 * fractional seconds) with the absolute time of its first input sample,
 * derived from the latest upstream \c rx_time tag and the sample count, and an
 * \c rx_freq tag with the latest upstream centre frequency, if one was seen.
 * Without any upstream \c rx_time tag, time counts from 0 at the first sample.
 * Any other tag on the first sample of an average is copied to its vector
 * (e.g. a sweeper's hop index).
 *
 * Retunes and gaps: an average never spans a retune or a time discontinuity.
 * An \c rx_freq tag, or an \c rx_time tag that disagrees with the sample count
 * by more than half a sample (an overflow), discards the frames collected so
 * far and starts a new average at the tagged sample.
 */
class DRIFT_API psd : virtual public gr::block
{
public:
    typedef std::shared_ptr<psd> sptr;

    /*!
     * \param fft_size bins per output vector (> 0)
     * \param n_avg FFT frames averaged per output vector (> 0)
     * \param samp_rate sample rate in Hz (> 0), for the density scaling and time
     * \param overlap fraction of a frame shared with the next one, in [0, 1)
     * \param window window type (gr::fft::window::win_type)
     * \param db output 10 log10 of the density (true) or the linear density
     * \param cal_offset_db calibration offset added to the dB output
     */
    static sptr make(int fft_size,
                     int n_avg,
                     double samp_rate,
                     double overlap = 0.0,
                     gr::fft::window::win_type window =
                         gr::fft::window::WIN_BLACKMAN_HARRIS,
                     bool db = true,
                     double cal_offset_db = 0.0);

    //! Window taps in use.
    virtual std::vector<float> window_taps() const = 0;
    //! Samples between the starts of consecutive frames.
    virtual int step() const = 0;
    //! Calibration offset in dB.
    virtual double cal_offset_db() const = 0;
    //! Change the calibration offset in dB (takes effect on the next vector).
    virtual void set_cal_offset_db(double cal_offset_db) = 0;
    //! Sample rate in Hz.
    virtual double samp_rate() const = 0;
    //! Change the sample rate in Hz (density scale and time base).
    virtual void set_samp_rate(double samp_rate) = 0;
    //! Number of averages per output vector.
    virtual int n_avg() const = 0;
    //! Change the number of averages (starts a new average).
    virtual void set_n_avg(int n_avg) = 0;
};

} // namespace drift
} // namespace gr

#endif /* INCLUDED_DRIFT_PSD_H */
