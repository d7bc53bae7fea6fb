/* -*- c++ -*- */
/*
 * Copyright 2026 DRIFT contributors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#ifndef INCLUDED_DRIFT_GCC_H
#define INCLUDED_DRIFT_GCC_H

#include <gnuradio/drift/api.h>
#include <complex>
#include <memory>

namespace gr {
namespace drift {

//! GCC weightings of the delay estimator.
enum gcc_weighting { GCC_PHAT = 0, GCC_PLAIN = 1, GCC_ML = 2 };

//! One delay estimate (signal relative to reference; > 0: the signal arrives later).
struct DRIFT_API gcc_result {
    double delay_samples = 0.0;
    double std_samples = 0.0;     //!< predicted std at the measured spectra (first order)
    double crb_std_samples = 0.0; //!< square root of the CRB at the measured spectra
    double psr_db = 0.0;          //!< peak over the highest sidelobe outside the main lobe
    double snr_db = 0.0;          //!< per-sample SNR over the capture band
    double rms_bandwidth = 0.0;   //!< of the signal spectrum about its centroid, cycles/sample
    int n_samples = 0;
};

class gcc_estimator;

/*!
 * \brief One input's transform for gcc_estimator::estimate(spectrum, spectrum): the 2 nf-point
 * DFT of n samples scaled to unit power, its gain and the running sums of its auto-spectrum.
 *
 * \details
 * Made by gcc_estimator::transform (its buffers on first use, then reused); it serves every
 * pair the input is in, so M inputs take M forward transforms however many pairs are
 * estimated. Any estimator of the same n and smoothing may use it.
 */
class DRIFT_API gcc_spectrum
{
public:
    gcc_spectrum();
    ~gcc_spectrum();
    gcc_spectrum(gcc_spectrum&&) noexcept;
    gcc_spectrum& operator=(gcc_spectrum&&) noexcept;
    gcc_spectrum(const gcc_spectrum&) = delete;
    gcc_spectrum& operator=(const gcc_spectrum&) = delete;

    bool valid() const; //!< made by gcc_estimator::transform
    int n() const;      //!< samples transformed
    double gain() const; //!< the scale that made the input unit power

private:
    friend class gcc_estimator;
    struct impl;
    std::unique_ptr<impl> d_impl;
};

/*!
 * \brief Generalized cross-correlation delay estimator for blocks of n samples.
 *
 * \details
 * The algorithm of gnuradio.drift.df.estimate_delay (its numpy code is the reference) at the
 * speed of its FFTs:
 * - each input scaled to unit power (the estimate does not depend on the scale; it keeps
 *   every intermediate inside float's range), its 2 nf-point DFT (nf = the smallest
 *   2,3,5,7,11-smooth length >= n; zero padding makes the correlation linear) as two nf-point
 *   FFTs of the even and the odd bins (FFTW plans made once per length, FFTW_MEASURE with GNU
 *   Radio's wisdom up to 2^17 points, FFTW_ESTIMATE above, shared by every estimator);
 * - the weighted cross-spectrum (PHAT, plain, or ML: Hannan-Thomson weights from the measured
 *   coherence, after a plain pass), its inverse as two nf-point FFTs, the |peak| within
 *   +-max_lag, and the peak-to-sidelobe ratio;
 * - sub-sample refinement: Newton steps on |c(D)|^2, c the exact band-limited interpolation of
 *   the 2 nf-point correlation, as the reference does, but evaluated from the lags: the
 *   2 W + 1 lags about the peak exactly (W = 16), the others through three correlation sums
 *   taken once (the interpolation kernel of a lag m away is sin(pi x) (cot(pi x / M) - i),
 *   and cot of a far lag is a short Taylor series in the sub-sample offset), so an
 *   iteration costs 33 terms instead of a pass over every bin;
 * - the signal and noise spectra (VOLK, running sums), SNR, RMS bandwidth, the CRB and the
 *   estimator's own first-order variance for its weighting, in one pass over the bins.
 * The results equal the reference's to float rounding (the FFTs are single precision; the
 * sums double).
 *
 * An estimator holds its buffers: use one per thread. Estimators of the same length share
 * their FFT plans and tables.
 */
class DRIFT_API gcc_estimator
{
public:
    /*!
     * \param n samples per estimate (16 .. 2^24)
     * \param weighting GCC_PHAT, GCC_PLAIN or GCC_ML
     * \param max_lag largest |lag| searched in samples (< 0 or > n - 1: n - 1)
     * \param smooth_bins spectrum smoothing (<= 0: sqrt(nf)/2 clipped to 4..64; at most nf)
     * \param real_input the inputs are real signals (imaginary parts 0): half the degrees of
     *        freedom, frequencies about 0 (the carrier phase is known)
     */
    gcc_estimator(int n,
                  gcc_weighting weighting = GCC_PHAT,
                  int max_lag = -1,
                  int smooth_bins = 0,
                  bool real_input = false);
    ~gcc_estimator();
    gcc_estimator(const gcc_estimator&) = delete;
    gcc_estimator& operator=(const gcc_estimator&) = delete;

    //! Delay of \p signal against \p reference, n samples each.
    gcc_result estimate(const std::complex<float>* reference,
                        const std::complex<float>* signal);

    /*!
     * \brief The first half of estimate(): \p input's transform (n samples) into \p spectrum.
     *
     * estimate(a, b) is transform(a, sa), transform(b, sb), estimate(sa, sb), with the same
     * result to the bit.
     */
    void transform(const std::complex<float>* input, gcc_spectrum& spectrum);

    //! The second half: the delay of \p signal's input against \p reference's.
    gcc_result estimate(const gcc_spectrum& reference, const gcc_spectrum& signal);

    int n() const;
    int fft_length() const; //!< nf: the FFTs are nf points (2 nf with the zero padding)
    int max_lag() const;
    gcc_weighting weighting() const;

private:
    struct impl;
    std::unique_ptr<impl> d_impl;
};

/*!
 * \brief gcc_estimator for one call (the estimator is kept per thread for the next call of
 * the same length and settings).
 *
 * \param max_lag largest |lag| searched in samples (< 0: n - 1)
 * \param smooth_bins spectrum smoothing (<= 0: sqrt(nf)/2 clipped to 4..64)
 */
DRIFT_API gcc_result gcc_delay(const std::complex<float>* reference,
                               const std::complex<float>* signal,
                               int n,
                               gcc_weighting weighting = GCC_PHAT,
                               int max_lag = -1,
                               int smooth_bins = 0,
                               bool real_input = false);

/*!
 * \brief For benchmarks: the best time (seconds) of one complex single-precision forward
 * FFTW transform of n points, out of place, planned as the estimator plans its own (the
 * same flags and wisdom), over \p repeat rounds of at least 20 ms.
 */
DRIFT_API double fftw_seconds(int n, int repeat = 5);

/*!
 * \brief For benchmarks: the best time (seconds) of one gcc_estimator::estimate call on
 * these inputs, over \p repeat rounds of at least 20 ms.
 */
DRIFT_API double gcc_seconds(gcc_estimator& estimator,
                             const std::complex<float>* reference,
                             const std::complex<float>* signal,
                             int repeat = 5);

} // namespace drift
} // namespace gr

#endif /* INCLUDED_DRIFT_GCC_H */
