/* -*- c++ -*- */
/*
 * Copyright 2026 DRIFT contributors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "psd_impl.h"
#include <gnuradio/io_signature.h>
#include <volk/volk.h>
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace gr {
namespace drift {

namespace {
const pmt::pmt_t RX_TIME = pmt::mp("rx_time");
const pmt::pmt_t RX_FREQ = pmt::mp("rx_freq");

int checked_fft_size(int fft_size)
{
    if (fft_size <= 0)
        throw std::invalid_argument("drift.psd: fft_size must be > 0, got " +
                                    std::to_string(fft_size));
    return fft_size;
}

int checked_step(int fft_size, double overlap)
{
    if (!(overlap >= 0.0 && overlap < 1.0))
        throw std::invalid_argument("drift.psd: overlap must be in [0, 1), got " +
                                    std::to_string(overlap));
    // The same rounding as scipy's noverlap=round(overlap*fft_size).
    const int noverlap = int(std::nearbyint(overlap * fft_size));
    return std::max(1, fft_size - noverlap);
}

std::vector<float> build_window(gr::fft::window::win_type type, int n)
{
    const int t = int(type);
    if (t < int(gr::fft::window::WIN_NONE) || t > int(gr::fft::window::WIN_TUKEY))
        throw std::invalid_argument("drift.psd: unknown window type " +
                                    std::to_string(t));
    if (type == gr::fft::window::WIN_NONE)
        return std::vector<float>(n, 1.0f);
    try {
        return gr::fft::window::build(type, n);
    } catch (const std::exception& e) {
        throw std::invalid_argument(std::string("drift.psd: window type ") +
                                    std::to_string(t) + ": " + e.what());
    }
}
} // namespace

psd::sptr psd::make(int fft_size,
                    int n_avg,
                    double samp_rate,
                    double overlap,
                    gr::fft::window::win_type window,
                    bool db,
                    double cal_offset_db)
{
    return gnuradio::make_block_sptr<psd_impl>(
        fft_size, n_avg, samp_rate, overlap, window, db, cal_offset_db);
}

psd_impl::psd_impl(int fft_size,
                   int n_avg,
                   double samp_rate,
                   double overlap,
                   gr::fft::window::win_type window,
                   bool db,
                   double cal_offset_db)
    : gr::block("psd",
                gr::io_signature::make(1, 1, sizeof(gr_complex)),
                gr::io_signature::make(1, 1, sizeof(float) * checked_fft_size(fft_size))),
      d_fft_size(fft_size),
      d_step(checked_step(fft_size, overlap)),
      d_window_type(window),
      d_db(db),
      d_n_avg(n_avg),
      d_samp_rate(samp_rate),
      d_cal_offset_db(cal_offset_db),
      d_fft(fft_size, 1),
      d_window(fft_size),
      d_acc(fft_size, 0.0f),
      d_mag(fft_size),
      d_window_power(0.0),
      d_group_start(0),
      d_next_frame(0),
      d_frames_done(0),
      d_tags_done(0),
      d_have_freq(false),
      d_freq(0.0)
{
    if (n_avg <= 0)
        throw std::invalid_argument("drift.psd: n_avg must be > 0, got " +
                                    std::to_string(n_avg));
    if (!(samp_rate > 0.0))
        throw std::invalid_argument("drift.psd: samp_rate must be > 0, got " +
                                    std::to_string(samp_rate));
    if (!std::isfinite(cal_offset_db))
        throw std::invalid_argument("drift.psd: cal_offset_db must be finite");
    const std::vector<float> taps = build_window(window, fft_size);
    std::copy(taps.begin(), taps.end(), d_window.begin());
    for (float w : taps)
        d_window_power += double(w) * double(w);
    if (!(d_window_power > 0.0))
        throw std::invalid_argument("drift.psd: the window is all zeros");
    // Tags are re-stamped per output vector (rx_time, rx_freq); see emit().
    set_tag_propagation_policy(TPP_DONT);
    // A frame needs fft_size samples at once: GNU Radio sizes the upstream buffer from the
    // decimation this declares (at least two frames), so a large FFT gets the buffer it
    // needs. (Averages span calls, so a whole average never has to fit.)
    set_relative_rate(1, uint64_t(fft_size));
}

std::vector<float> psd_impl::window_taps() const
{
    return std::vector<float>(d_window.begin(), d_window.end());
}

double psd_impl::cal_offset_db() const
{
    std::lock_guard<std::mutex> lock(d_mutex);
    return d_cal_offset_db;
}

void psd_impl::set_cal_offset_db(double cal_offset_db)
{
    if (!std::isfinite(cal_offset_db))
        throw std::invalid_argument("drift.psd: cal_offset_db must be finite");
    std::lock_guard<std::mutex> lock(d_mutex);
    d_cal_offset_db = cal_offset_db;
}

double psd_impl::samp_rate() const
{
    std::lock_guard<std::mutex> lock(d_mutex);
    return d_samp_rate;
}

void psd_impl::set_samp_rate(double samp_rate)
{
    if (!(samp_rate > 0.0))
        throw std::invalid_argument("drift.psd: samp_rate must be > 0");
    std::lock_guard<std::mutex> lock(d_mutex);
    d_samp_rate = samp_rate;
}

int psd_impl::n_avg() const
{
    std::lock_guard<std::mutex> lock(d_mutex);
    return d_n_avg;
}

void psd_impl::set_n_avg(int n_avg)
{
    if (n_avg <= 0)
        throw std::invalid_argument("drift.psd: n_avg must be > 0");
    std::lock_guard<std::mutex> lock(d_mutex);
    d_n_avg = n_avg;
    d_frames_done = 0;
    std::fill(d_acc.begin(), d_acc.end(), 0.0f);
    d_group_start = d_next_frame;
}

void psd_impl::forecast(int noutput_items, gr_vector_int& ninput_items_required)
{
    // One frame is enough to make progress: frames are accumulated across calls,
    // so an average may span any number of upstream buffers.
    ninput_items_required[0] = noutput_items > 0 ? d_fft_size : 0;
}

void psd_impl::restart_at(uint64_t offset)
{
    drop_start_tags_before(offset);
    d_group_start = offset;
    d_next_frame = offset;
    d_frames_done = 0;
    std::fill(d_acc.begin(), d_acc.end(), 0.0f);
}

void psd_impl::drop_start_tags_before(uint64_t offset)
{
    d_start_tags.erase(std::remove_if(d_start_tags.begin(),
                                      d_start_tags.end(),
                                      [offset](const gr::tag_t& t) { return t.offset < offset; }),
                       d_start_tags.end());
}

void psd_impl::handle_tags(const std::vector<gr::tag_t>& tags, uint64_t until)
{
    // Tags arrive sorted by offset; handle each once, up to (excluding) `until`.
    for (const gr::tag_t& tag : tags) {
        if (tag.offset < d_tags_done || tag.offset >= until)
            continue;
        if (pmt::eq(tag.key, RX_FREQ) && pmt::is_real(tag.value)) {
            d_have_freq = true;
            d_freq = pmt::to_double(tag.value);
            if (tag.offset > d_group_start)
                restart_at(tag.offset);
        } else if (pmt::eq(tag.key, RX_TIME) && time_anchor::is_rx_time(tag.value)) {
            const bool jump =
                !d_anchor.from_tag ||
                std::abs(d_anchor.disagreement(tag.offset, tag.value, d_samp_rate)) >
                    0.5 / d_samp_rate;
            if (jump && tag.offset > d_group_start)
                restart_at(tag.offset);
            d_anchor.set(tag.offset, tag.value);
        } else {
            d_start_tags.push_back(tag); // forwarded if it sits on an average's first sample
        }
    }
    d_tags_done = std::max(d_tags_done, until);
}

void psd_impl::accumulate_frame(const gr_complex* frame)
{
    gr_complex* buf = d_fft.get_inbuf();
    volk_32fc_32f_multiply_32fc(buf, frame, d_window.data(), d_fft_size);
    d_fft.execute();
    volk_32fc_magnitude_squared_32f(d_mag.data(), d_fft.get_outbuf(), d_fft_size);
    volk_32f_x2_add_32f(d_acc.data(), d_acc.data(), d_mag.data(), d_fft_size);
}

void psd_impl::emit(float* out, uint64_t out_offset)
{
    const int n = d_fft_size;
    const int shift = n / 2; // numpy.fft.fftshift: out[k] = acc[(k - n/2) mod n]
    const double scale = 1.0 / (double(d_n_avg) * d_samp_rate * d_window_power);
    if (d_db) {
        const double offset = 10.0 * std::log10(scale) + d_cal_offset_db;
        for (int k = 0; k < n; k++) {
            const float p = d_acc[(k - shift + n) % n];
            out[k] = float(10.0 * std::log10(double(p)) + offset);
        }
    } else {
        const double gain = scale * std::pow(10.0, d_cal_offset_db / 10.0);
        for (int k = 0; k < n; k++)
            out[k] = float(double(d_acc[(k - shift + n) % n]) * gain);
    }
    add_item_tag(0, out_offset, RX_TIME, d_anchor.value(d_group_start, d_samp_rate));
    if (d_have_freq)
        add_item_tag(0, out_offset, RX_FREQ, pmt::from_double(d_freq));
    for (const gr::tag_t& tag : d_start_tags) {
        if (tag.offset == d_group_start)
            add_item_tag(0, out_offset, tag.key, tag.value, tag.srcid);
    }
}

int psd_impl::general_work(int noutput_items,
                           gr_vector_int& ninput_items,
                           gr_vector_const_void_star& input_items,
                           gr_vector_void_star& output_items)
{
    std::lock_guard<std::mutex> lock(d_mutex);
    const gr_complex* in = static_cast<const gr_complex*>(input_items[0]);
    float* out = static_cast<float*>(output_items[0]);
    const uint64_t first = nitems_read(0);
    const uint64_t end = first + uint64_t(ninput_items[0]);

    std::vector<gr::tag_t> tags;
    get_tags_in_range(tags, 0, first, end);
    std::sort(tags.begin(), tags.end(), gr::tag_t::offset_compare);

    int produced = 0;
    while (produced < noutput_items) {
        // Tags inside the next frame may move the start of the average.
        const uint64_t frame_start = d_next_frame;
        if (frame_start + d_fft_size > end)
            break;
        handle_tags(tags, frame_start + d_fft_size);
        if (d_next_frame != frame_start)
            continue; // restarted at a retune or time jump inside the frame

        accumulate_frame(in + (d_next_frame - first));
        d_next_frame += d_step;
        if (++d_frames_done == d_n_avg) {
            emit(out + size_t(produced) * d_fft_size, nitems_written(0) + produced);
            produced++;
            // The next average carries on where the frames left off.
            d_group_start = d_next_frame;
            drop_start_tags_before(d_group_start);
            d_frames_done = 0;
            std::fill(d_acc.begin(), d_acc.end(), 0.0f);
        }
    }
    // Keep the samples the next frame still needs (overlap, or a partial frame).
    consume_each(int(std::min(d_next_frame, end) - first));
    return produced;
}

} /* namespace drift */
} /* namespace gr */
