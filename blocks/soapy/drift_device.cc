/* -*- c++ -*- */
/*
 * Copyright 2026 DRIFT contributors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "drift_device.h"

#include <SoapySDR/Errors.hpp>
#include <SoapySDR/Formats.hpp>
#include <SoapySDR/Logger.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <thread>

namespace drift_soapy {

namespace {

constexpr size_t MTU = 65536;
constexpr double MIN_RATE = 1e3;
constexpr double UNSYNCED_NS = 1e9; // a time nobody disciplines: a second

// the rates (and filter bandwidths) listed, those up to the model's maximum
const double COMMON_RATES[] = { 250e3, 1e6,  1.024e6, 2.048e6, 2.4e6, 3.2e6,
                                5e6,   8e6, 10e6,    20e6,    40e6,  56e6 };

std::string fmt_g(double x)
{
    char text[64];
    std::snprintf(text, sizeof text, "%g", x);
    return text;
}

uint64_t count_arg(const SoapySDR::Kwargs& args, const std::string& key)
{
    auto it = args.find(key);
    if (it == args.end() || it->second.empty())
        return 0;
    try {
        size_t used = 0;
        const long long v = std::stoll(it->second, &used);
        if (used != it->second.size() || v < 0)
            throw std::runtime_error(key);
        return uint64_t(v);
    } catch (const std::logic_error&) {
        throw std::runtime_error("driver=drift: " + key + "=" + it->second +
                                    " is not a sample count (0, 1, 2, ...)");
    }
}

bool flag_arg(const SoapySDR::Kwargs& args, const std::string& key)
{
    auto it = args.find(key);
    if (it == args.end())
        return false;
    const std::string& v = it->second;
    return !(v == "0" || v.empty() || v == "false" || v == "no");
}


} // namespace

struct DriftDevice::Stream {
    std::string format;
    std::vector<size_t> channels;
    bool active = false;
    std::vector<std::complex<float>> tmp;
};

DriftDevice::DriftDevice(const SoapySDR::Kwargs& args) : d_made(clock::now())
{
    auto need = [&](const char* key) {
        auto it = args.find(key);
        if (it == args.end() || it->second.empty())
            throw std::runtime_error(
                std::string("driver=drift needs scenario=FILE,node=ID (missing ") + key + ")");
        return it->second;
    };
    d_info.scenario = need("scenario");
    d_info.node = need("node");
    d_helper = std::make_unique<ScenarioHelper>();
    for (const auto& row : d_helper->request({ "open", d_info.scenario, d_info.node })) {
        const std::string& k = row[0];
        if (k == "model") {
            d_info.model_id = row.at(1);
            d_info.model_name = row.at(2);
        } else if (k == "freq_range") {
            d_info.freq_min = unhex(row.at(1));
            d_info.freq_max = unhex(row.at(2));
        } else if (k == "max_bandwidth") {
            d_info.max_bandwidth = unhex(row.at(1));
        } else if (k == "adc_bits") {
            d_info.adc_bits = std::stoi(row.at(1));
        } else if (k == "has_tx") {
            d_info.has_tx = row.at(1) == "1";
        } else if (k == "gain_range") {
            d_info.gain_min = unhex(row.at(1));
            d_info.gain_max = unhex(row.at(2));
        } else if (k == "gain_default") {
            d_info.gain_default = unhex(row.at(1));
        } else if (k == "full_scale_dbm") {
            d_info.full_scale_dbm = unhex(row.at(1));
        } else if (k == "channels") {
            d_info.channels = std::stoul(row.at(1));
        } else if (k == "clock") {
            d_info.clock_source = row.at(1);
            d_info.clock_uncertainty_s = unhex(row.at(2));
        } else if (k == "position") {
            d_info.lat = unhex(row.at(1));
            d_info.lon = unhex(row.at(2));
            d_info.alt = unhex(row.at(3));
        }
    }
    // hardware time: a node that keeps GPS time (GPSDO, PPS input) or PTP time
    if (d_info.clock_source == "gps")
        d_time_sources = { "internal", "gps", "pps" };
    else if (d_info.clock_source == "ptp")
        d_time_sources = { "internal", "ptp" };
    d_has_time = !d_time_sources.empty();
    d_time_source = d_has_time ? d_time_sources[1] : "";
    if (args.count("time_source"))
        setTimeSource(args.at("time_source"));

    d_rate = std::min(2.4e6, d_info.max_bandwidth);
    d_freq = std::clamp(100e6, d_info.freq_min, d_info.freq_max);
    d_gain = d_info.gain_default;
    if (args.count("start") && !args.at("start").empty()) {
        char* end = nullptr;
        const double t = std::strtod(args.at("start").c_str(), &end);
        if (*end != '\0' || !std::isfinite(t))
            throw std::runtime_error("driver=drift: start=" + args.at("start") +
                                        " is not UNIX seconds");
        // as drift's tags.split_seconds: whole = floor(t), fraction = t - whole
        const double whole = std::floor(t);
        d_t0_whole = int64_t(whole);
        d_t0_frac = t - whole;
        d_start_given = true;
    }
    d_realtime = flag_arg(args, "realtime");
    d_overflow_every = count_arg(args, "overflow_every");
    d_overflow_drop = count_arg(args, "overflow_drop");
    if (d_overflow_every && !args.count("overflow_drop"))
        d_overflow_drop = std::max<uint64_t>(1, d_overflow_every / 4);
    d_drop_after = count_arg(args, "drop_after");
    d_unplug_after = count_arg(args, "unplug_after");
    if (args.count("temperature"))
        d_temperature_c = std::stod(args.at("temperature"));
}

DriftDevice::~DriftDevice() { delete d_stream; }

// -- identification -------------------------------------------------------------------------

std::string DriftDevice::getDriverKey() const { return "drift"; }

std::string DriftDevice::getHardwareKey() const { return "drift:" + d_info.model_id; }

SoapySDR::Kwargs DriftDevice::getHardwareInfo() const
{
    std::lock_guard<std::mutex> lock(d_mutex);
    char fs[64];
    std::snprintf(fs, sizeof fs, "%.17g", full_scale_dbm());
    return {
        { "origin", "DRIFT simulator (drift.sim)" },
        { "scenario", d_info.scenario },
        { "node", d_info.node },
        { "model", d_info.model_id },
        { "model_name", d_info.model_name },
        { "adc_bits", std::to_string(d_info.adc_bits) },
        { "full_scale_dbm", fs },
        { "clock_source", d_info.clock_source },
    };
}

size_t DriftDevice::getNumChannels(const int direction) const
{
    return direction == SOAPY_SDR_RX ? d_info.channels : 0;
}

SoapySDR::Kwargs DriftDevice::getChannelInfo(const int, const size_t) const { return {}; }

void DriftDevice::check_rx(const int direction, const size_t channel) const
{
    if (direction != SOAPY_SDR_RX)
        throw std::runtime_error("driver=drift: the simulated " + d_info.model_name +
                                    " receives only (no transmit channel)");
    if (channel >= d_info.channels)
        throw std::runtime_error("driver=drift: no channel " + std::to_string(channel) +
                                " (the node has " + std::to_string(d_info.channels) + ")");
}

void DriftDevice::check_present() const
{
    if (d_unplugged)
        throw std::runtime_error("driver=drift: " + d_info.model_name + " " + d_info.node +
                                 " is disconnected (unplug_after)");
}

double DriftDevice::full_scale_dbm() const
{
    return d_info.full_scale_dbm - (d_gain - d_info.gain_default);
}

// -- streams ---------------------------------------------------------------------------------

std::vector<std::string> DriftDevice::getStreamFormats(const int direction,
                                                       const size_t channel) const
{
    check_rx(direction, channel);
    std::vector<std::string> out = { SOAPY_SDR_CF32, SOAPY_SDR_CS16 };
    if (d_info.adc_bits <= 8) {
        out.push_back(SOAPY_SDR_CS8);
        out.push_back(SOAPY_SDR_CU8);
    }
    return out;
}

std::string DriftDevice::getNativeStreamFormat(const int direction,
                                               const size_t channel,
                                               double& fullScale) const
{
    check_rx(direction, channel);
    if (d_info.adc_bits <= 8) {
        fullScale = 128;
        return d_info.model_id == "rtlsdr_v3" ? SOAPY_SDR_CU8 : SOAPY_SDR_CS8;
    }
    fullScale = 32768;
    return SOAPY_SDR_CS16;
}

SoapySDR::ArgInfoList DriftDevice::getStreamArgsInfo(const int, const size_t) const
{
    return {};
}

SoapySDR::Stream* DriftDevice::setupStream(const int direction,
                                           const std::string& format,
                                           const std::vector<size_t>& channels,
                                           const SoapySDR::Kwargs&)
{
    std::vector<size_t> chans = channels.empty() ? std::vector<size_t>{ 0 } : channels;
    for (size_t ch : chans)
        check_rx(direction, ch);
    const auto formats = getStreamFormats(direction, chans[0]);
    if (std::find(formats.begin(), formats.end(), format) == formats.end()) {
        std::string list;
        for (const auto& f : formats)
            list += (list.empty() ? "" : ", ") + f;
        throw std::runtime_error("driver=drift: stream format " + format +
                                    " is not one of the " + d_info.model_name + "'s: " + list);
    }
    std::lock_guard<std::mutex> lock(d_mutex);
    if (d_stream)
        throw std::runtime_error("driver=drift: the receive stream is already set up");
    d_stream = new Stream;
    d_stream->format = format;
    d_stream->channels = chans;
    return reinterpret_cast<SoapySDR::Stream*>(d_stream);
}

void DriftDevice::closeStream(SoapySDR::Stream* stream)
{
    std::lock_guard<std::mutex> lock(d_mutex);
    if (reinterpret_cast<Stream*>(stream) == d_stream) {
        delete d_stream;
        d_stream = nullptr;
    }
}

size_t DriftDevice::getStreamMTU(SoapySDR::Stream*) const { return MTU; }

int DriftDevice::activateStream(SoapySDR::Stream* stream,
                                const int flags,
                                const long long timeNs,
                                const size_t)
{
    std::lock_guard<std::mutex> lock(d_mutex);
    check_present();
    auto* s = reinterpret_cast<Stream*>(stream);
    if (s != d_stream)
        return SOAPY_SDR_STREAM_ERROR;
    if (flags & ~SOAPY_SDR_HAS_TIME)
        return SOAPY_SDR_NOT_SUPPORTED; // bursts: a continuous stream only
    if ((flags & SOAPY_SDR_HAS_TIME) && !d_has_time)
        return SOAPY_SDR_NOT_SUPPORTED;
    const auto now = clock::now();
    if (!d_started) {
        if (!d_start_given) { // the node clock reads the host's time at the first sample
            const double t = std::chrono::duration<double>(
                                 std::chrono::system_clock::now().time_since_epoch())
                                 .count();
            const double whole = std::floor(t);
            d_t0_whole = int64_t(whole);
            d_t0_frac = t - whole;
        }
        d_started = true;
        d_plans_valid = false;
        d_wall0 = now;
        d_wall0_index = d_next;
    } else if (d_realtime) { // the device ran on while the stream was off
        d_next = std::max(d_next, due_index(now));
    }
    if (flags & SOAPY_SDR_HAS_TIME) { // the first sample at or after timeNs
        const long double ahead_s = (long double)(timeNs - time_ns_of(d_next)) / 1e9L;
        if (ahead_s > 0)
            d_next += int64_t(std::ceil(ahead_s * d_rate - 1e-6L));
    }
    s->active = true;
    return 0;
}

int DriftDevice::deactivateStream(SoapySDR::Stream* stream, const int, const long long)
{
    std::lock_guard<std::mutex> lock(d_mutex);
    auto* s = reinterpret_cast<Stream*>(stream);
    if (s != d_stream)
        return SOAPY_SDR_STREAM_ERROR;
    s->active = false;
    return 0;
}

long long DriftDevice::time_ns_of(int64_t k) const
{
    const long double t = (long double)d_t0_frac + (long double)k / (long double)d_rate;
    return d_t0_whole * 1000000000LL + std::llround(t * 1e9L) + d_label_offset_ns;
}

int64_t DriftDevice::due_index(clock::time_point now) const
{
    const double elapsed = std::chrono::duration<double>(now - d_wall0).count();
    return d_wall0_index + int64_t(std::floor(elapsed * d_rate));
}

void DriftDevice::ensure_plans()
{
    if (d_plans_valid)
        return;
    const std::string gain = d_gain == d_info.gain_default ? "-" : hex(d_gain);
    d_plans.assign(d_info.channels, ChannelPlan());
    for (size_t ch = 0; ch < d_info.channels; ch++) {
        ChannelPlan& p = d_plans[ch];
        const auto rows = d_helper->request({ "plan",
                                              std::to_string(ch),
                                              hex(d_rate),
                                              hex(d_freq),
                                              gain,
                                              std::to_string(d_t0_whole),
                                              hex(d_t0_frac) });
        for (const auto& row : rows) {
            if (row[0] == "noise") {
                p.noise_key = std::stoull(row.at(1));
                p.sigma = unhex(row.at(2));
                p.gain = { unhex(row.at(3)), unhex(row.at(4)) };
                p.bits = std::stoi(row.at(5));
            } else if (row[0] == "moving") {
                p.moving = std::stoul(row.at(1));
            } else if (row[0] == "emitter") {
                gr::drift::sim::emitter e;
                size_t i = 1;
                e.kind = std::stoi(row.at(i++));
                e.key = std::stoull(row.at(i++));
                e.amp = unhex(row.at(i++));
                const size_t npos = std::stoul(row.at(i++));
                for (size_t j = 0; j < npos; j++) {
                    gr::drift::sim::lin_pos lp;
                    lp.whole = std::stoll(row.at(i++));
                    lp.frac = unhex(row.at(i++));
                    lp.step = unhex(row.at(i++));
                    e.pos.push_back(lp);
                }
                const size_t nparams = std::stoul(row.at(i++));
                for (size_t j = 0; j < nparams; j++)
                    e.params.push_back(unhex(row.at(i++)));
                const size_t ntable = std::stoul(row.at(i++));
                for (size_t j = 0; j < ntable; j++)
                    e.table.push_back(unhex(row.at(i++)));
                p.emitters.push_back(std::move(e));
            }
        }
    }
    d_plans_valid = true;
}

void DriftDevice::synthesize(Stream& s, size_t n, void* const* buffs)
{
    const bool cf32 = s.format == SOAPY_SDR_CF32;
    if (!cf32)
        s.tmp.resize(n);
    const std::string gain = d_gain == d_info.gain_default ? "-" : hex(d_gain);
    for (size_t i = 0; i < s.channels.size(); i++) {
        const size_t ch = s.channels[i];
        const ChannelPlan& p = d_plans[ch];
        std::vector<std::complex<double>> extra;
        if (p.moving)
            extra = d_helper->moving({ "moving",
                                       std::to_string(ch),
                                       hex(d_rate),
                                       hex(d_freq),
                                       gain,
                                       std::to_string(d_t0_whole),
                                       hex(d_t0_frac),
                                       std::to_string(d_next),
                                       std::to_string(n) },
                                     n);
        auto* out = cf32 ? static_cast<std::complex<float>*>(buffs[i]) : s.tmp.data();
        gr::drift::sim::synthesize(p.emitters,
                                   p.moving ? extra.data() : nullptr,
                                   p.noise_key,
                                   d_next,
                                   int(n),
                                   p.sigma,
                                   p.gain,
                                   p.bits,
                                   out);
        if (cf32)
            continue;
        // the ADC's levels are k / 2^(bits-1): exact in every integer format below
        if (s.format == SOAPY_SDR_CS16) {
            auto* o = static_cast<int16_t*>(buffs[i]);
            for (size_t j = 0; j < n; j++) {
                o[2 * j] = int16_t(std::clamp(std::lrintf(out[j].real() * 32768.f), -32768L, 32767L));
                o[2 * j + 1] =
                    int16_t(std::clamp(std::lrintf(out[j].imag() * 32768.f), -32768L, 32767L));
            }
        } else {
            const long off = s.format == SOAPY_SDR_CU8 ? 128 : 0;
            auto* o = static_cast<uint8_t*>(buffs[i]);
            for (size_t j = 0; j < n; j++) {
                o[2 * j] = uint8_t(std::clamp(std::lrintf(out[j].real() * 128.f), -128L, 127L) + off);
                o[2 * j + 1] =
                    uint8_t(std::clamp(std::lrintf(out[j].imag() * 128.f), -128L, 127L) + off);
            }
        }
    }
}

int DriftDevice::readStream(SoapySDR::Stream* stream,
                            void* const* buffs,
                            const size_t numElems,
                            int& flags,
                            long long& timeNs,
                            const long timeoutUs)
{
    flags = 0;
    const auto deadline = clock::now() + std::chrono::microseconds(std::max(0L, timeoutUs));
    std::unique_lock<std::mutex> lock(d_mutex);
    auto* s = reinterpret_cast<Stream*>(stream);
    if (s != d_stream)
        return SOAPY_SDR_STREAM_ERROR;
    if (d_unplugged)
        return SOAPY_SDR_STREAM_ERROR;
    auto time_out = [&]() {
        lock.unlock();
        std::this_thread::sleep_until(deadline);
        return SOAPY_SDR_TIMEOUT;
    };
    if (!s->active)
        return time_out();
    if (d_drop_after && d_delivered >= d_drop_after)
        return time_out(); // the device stopped sending
    if (d_overflow_pending) {
        d_overflow_pending = false;
        d_next += int64_t(d_overflow_drop);
        return SOAPY_SDR_OVERFLOW;
    }
    uint64_t n = std::min<uint64_t>(numElems, MTU);
    if (d_overflow_every)
        n = std::min(n, d_overflow_every - d_delivered % d_overflow_every);
    if (d_drop_after)
        n = std::min(n, d_drop_after - d_delivered);
    if (d_unplug_after)
        n = std::min(n, d_unplug_after - d_delivered);
    if (d_realtime) { // only what the wall clock has reached
        for (;;) {
            const auto now = clock::now();
            const int64_t due = due_index(now);
            if (due > d_next) {
                n = std::min<uint64_t>(n, uint64_t(due - d_next));
                break;
            }
            if (now >= deadline)
                return SOAPY_SDR_TIMEOUT;
            const auto next_due =
                d_wall0 + std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(
                              double(d_next + 1 - d_wall0_index) / d_rate));
            lock.unlock();
            std::this_thread::sleep_until(std::min(deadline, next_due));
            lock.lock();
            if (s != d_stream || !s->active || d_unplugged)
                return SOAPY_SDR_TIMEOUT;
        }
    }
    if (n == 0)
        return 0;
    ensure_plans();
    synthesize(*s, size_t(n), buffs);
    if (d_has_time) {
        flags |= SOAPY_SDR_HAS_TIME;
        timeNs = time_ns_of(d_next);
    }
    d_next += int64_t(n);
    d_delivered += n;
    if (d_overflow_every && d_delivered % d_overflow_every == 0)
        d_overflow_pending = true;
    if (d_unplug_after && d_delivered >= d_unplug_after) {
        d_unplugged = true;
        SoapySDR::logf(SOAPY_SDR_ERROR,
                       "driver=drift: %s %s disconnected",
                       d_info.model_name.c_str(),
                       d_info.node.c_str());
    }
    return int(n);
}

// -- antenna ---------------------------------------------------------------------------------

std::vector<std::string> DriftDevice::listAntennas(const int direction,
                                                   const size_t channel) const
{
    check_rx(direction, channel);
    return { "RX" };
}

void DriftDevice::setAntenna(const int direction, const size_t channel, const std::string& name)
{
    check_rx(direction, channel);
    if (name != "RX")
        throw std::runtime_error("driver=drift: no antenna " + name + " (RX)");
}

std::string DriftDevice::getAntenna(const int, const size_t) const { return "RX"; }

// -- gain ------------------------------------------------------------------------------------

std::vector<std::string> DriftDevice::listGains(const int direction, const size_t channel) const
{
    check_rx(direction, channel);
    return { "RF" };
}

bool DriftDevice::hasGainMode(const int, const size_t) const { return false; }

void DriftDevice::setGain(const int direction, const size_t channel, const double value)
{
    check_rx(direction, channel);
    std::lock_guard<std::mutex> lock(d_mutex);
    check_present();
    if (!(value >= d_info.gain_min && value <= d_info.gain_max))
        throw std::runtime_error(d_info.model_name + ": gain " + fmt_g(value) +
                                " dB is outside its range " + fmt_g(d_info.gain_min) + "-" +
                                fmt_g(d_info.gain_max) + " dB");
    if (value != d_gain) {
        d_gain = value;
        d_plans_valid = false;
    }
}

void DriftDevice::setGain(const int direction,
                          const size_t channel,
                          const std::string& name,
                          const double value)
{
    if (name != "RF")
        throw std::runtime_error("driver=drift: no gain " + name + " (RF)");
    setGain(direction, channel, value);
}

double DriftDevice::getGain(const int direction, const size_t channel) const
{
    check_rx(direction, channel);
    std::lock_guard<std::mutex> lock(d_mutex);
    return d_gain;
}

double DriftDevice::getGain(const int direction, const size_t channel, const std::string&) const
{
    return getGain(direction, channel);
}

SoapySDR::Range DriftDevice::getGainRange(const int direction, const size_t channel) const
{
    check_rx(direction, channel);
    return SoapySDR::Range(d_info.gain_min, d_info.gain_max);
}

SoapySDR::Range
DriftDevice::getGainRange(const int direction, const size_t channel, const std::string&) const
{
    return getGainRange(direction, channel);
}

// -- frequency -------------------------------------------------------------------------------

void DriftDevice::setFrequency(const int direction,
                               const size_t channel,
                               const double frequency,
                               const SoapySDR::Kwargs&)
{
    check_rx(direction, channel);
    std::lock_guard<std::mutex> lock(d_mutex);
    check_present();
    if (!(frequency >= d_info.freq_min && frequency <= d_info.freq_max))
        throw std::runtime_error(d_info.model_name + ": centre frequency " + fmt_g(frequency) +
                                " Hz is outside its tuning range " + fmt_g(d_info.freq_min) +
                                "-" + fmt_g(d_info.freq_max) + " Hz");
    if (frequency != d_freq) { // one LO for every channel of the node
        d_freq = frequency;
        d_plans_valid = false;
    }
}

void DriftDevice::setFrequency(const int direction,
                               const size_t channel,
                               const std::string& name,
                               const double frequency,
                               const SoapySDR::Kwargs& args)
{
    if (name != "RF")
        throw std::runtime_error("driver=drift: no frequency component " + name + " (RF)");
    setFrequency(direction, channel, frequency, args);
}

double DriftDevice::getFrequency(const int direction, const size_t channel) const
{
    check_rx(direction, channel);
    std::lock_guard<std::mutex> lock(d_mutex);
    return d_freq;
}

double
DriftDevice::getFrequency(const int direction, const size_t channel, const std::string&) const
{
    return getFrequency(direction, channel);
}

std::vector<std::string> DriftDevice::listFrequencies(const int direction,
                                                      const size_t channel) const
{
    check_rx(direction, channel);
    return { "RF" };
}

SoapySDR::RangeList DriftDevice::getFrequencyRange(const int direction,
                                                   const size_t channel) const
{
    check_rx(direction, channel);
    return { SoapySDR::Range(d_info.freq_min, d_info.freq_max) };
}

SoapySDR::RangeList DriftDevice::getFrequencyRange(const int direction,
                                                   const size_t channel,
                                                   const std::string&) const
{
    return getFrequencyRange(direction, channel);
}

// -- sample rate and bandwidth -----------------------------------------------------------------

void DriftDevice::setSampleRate(const int direction, const size_t channel, const double rate)
{
    check_rx(direction, channel);
    std::lock_guard<std::mutex> lock(d_mutex);
    check_present();
    if (!(rate >= MIN_RATE && rate <= d_info.max_bandwidth))
        throw std::runtime_error(d_info.model_name + ": sample rate " + fmt_g(rate) +
                                " S/s is outside its range " + fmt_g(MIN_RATE) + "-" +
                                fmt_g(d_info.max_bandwidth) + " S/s");
    if (rate == d_rate)
        return;
    if (d_started) { // the stream goes on from here at the new rate: sample 0 is the next one
        const long double t = (long double)d_t0_frac + (long double)d_next / d_rate;
        const long double whole = std::floor(t);
        d_t0_whole += int64_t(whole);
        d_t0_frac = double(t - whole);
        d_next = 0;
        d_wall0 = clock::now();
        d_wall0_index = 0;
    }
    d_rate = rate;
    d_plans_valid = false;
}

double DriftDevice::getSampleRate(const int direction, const size_t channel) const
{
    check_rx(direction, channel);
    std::lock_guard<std::mutex> lock(d_mutex);
    return d_rate;
}

std::vector<double> DriftDevice::listSampleRates(const int direction, const size_t channel) const
{
    check_rx(direction, channel);
    std::vector<double> out;
    for (double r : COMMON_RATES)
        if (r <= d_info.max_bandwidth)
            out.push_back(r);
    if (out.empty() || out.back() != d_info.max_bandwidth)
        out.push_back(d_info.max_bandwidth);
    return out;
}

SoapySDR::RangeList DriftDevice::getSampleRateRange(const int direction,
                                                    const size_t channel) const
{
    check_rx(direction, channel);
    return { SoapySDR::Range(MIN_RATE, d_info.max_bandwidth) };
}

void DriftDevice::setBandwidth(const int direction, const size_t channel, const double bw)
{
    check_rx(direction, channel);
    std::lock_guard<std::mutex> lock(d_mutex);
    check_present();
    if (!(bw >= 0 && bw <= d_info.max_bandwidth))
        throw std::runtime_error(d_info.model_name + ": bandwidth " + fmt_g(bw) +
                                " Hz is outside its range 0-" + fmt_g(d_info.max_bandwidth) +
                                " Hz (0: automatic)");
    d_bandwidth = bw; // the simulated front end passes the whole Nyquist band
}

double DriftDevice::getBandwidth(const int direction, const size_t channel) const
{
    check_rx(direction, channel);
    std::lock_guard<std::mutex> lock(d_mutex);
    return d_bandwidth > 0 ? d_bandwidth : d_rate;
}

std::vector<double> DriftDevice::listBandwidths(const int direction, const size_t channel) const
{
    return listSampleRates(direction, channel);
}

SoapySDR::RangeList DriftDevice::getBandwidthRange(const int direction,
                                                   const size_t channel) const
{
    check_rx(direction, channel);
    return { SoapySDR::Range(MIN_RATE, d_info.max_bandwidth) };
}

// -- clocks and time ---------------------------------------------------------------------------

std::vector<std::string> DriftDevice::listClockSources() const { return { "internal" }; }

std::string DriftDevice::getClockSource() const { return "internal"; }

std::vector<std::string> DriftDevice::listTimeSources() const { return d_time_sources; }

void DriftDevice::setTimeSource(const std::string& source)
{
    std::lock_guard<std::mutex> lock(d_mutex);
    check_present();
    if (std::find(d_time_sources.begin(), d_time_sources.end(), source) ==
        d_time_sources.end()) {
        std::string list;
        for (const auto& t : d_time_sources)
            list += (list.empty() ? "" : ", ") + t;
        throw std::runtime_error(
            "driver=drift: time source " + source + " is not one of node " + d_info.node +
            "'s (clock " + d_info.clock_source + "): " + (list.empty() ? "none" : list));
    }
    d_time_source = source;
    if (source != "internal")
        d_label_offset_ns = 0; // disciplined again: the node's own clock
}

std::string DriftDevice::getTimeSource() const
{
    std::lock_guard<std::mutex> lock(d_mutex);
    return d_time_source;
}

bool DriftDevice::hasHardwareTime(const std::string& what) const
{
    return d_has_time && (what.empty() || what == "now");
}

long long DriftDevice::getHardwareTime(const std::string& what) const
{
    if (!hasHardwareTime(what))
        throw std::runtime_error("driver=drift: node " + d_info.node +
                                    " has no hardware time (its clock is " +
                                    d_info.clock_source + ")");
    std::lock_guard<std::mutex> lock(d_mutex);
    check_present();
    if (d_started)
        return time_ns_of(d_realtime ? std::max(d_next, due_index(clock::now())) : d_next);
    if (d_start_given)
        return time_ns_of(0);
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count();
    return ns + d_label_offset_ns;
}

void DriftDevice::setHardwareTime(const long long timeNs, const std::string& what)
{
    const long long now = getHardwareTime(what);
    std::lock_guard<std::mutex> lock(d_mutex);
    d_label_offset_ns += timeNs - now;
}

// -- sensors ---------------------------------------------------------------------------------

bool DriftDevice::locked() const { return d_has_time && d_time_source != "internal"; }

std::vector<std::string> DriftDevice::listSensors() const
{
    if (d_has_time)
        return { "clock_locked", "sync_uncertainty_ns", "temperature" };
    return { "temperature" };
}

SoapySDR::ArgInfo DriftDevice::getSensorInfo(const std::string& key) const
{
    SoapySDR::ArgInfo info;
    info.key = key;
    if (key == "clock_locked") {
        info.name = "Clock locked";
        info.type = SoapySDR::ArgInfo::BOOL;
        info.description = "device time disciplined by the time source (gps, pps, ptp)";
    } else if (key == "sync_uncertainty_ns") {
        info.name = "Sync uncertainty";
        info.type = SoapySDR::ArgInfo::FLOAT;
        info.units = "ns";
        info.description = "uncertainty of the device time (1 sigma); 1e9 when not locked";
    } else if (key == "temperature") {
        info.name = "Temperature";
        info.type = SoapySDR::ArgInfo::FLOAT;
        info.units = "C";
        info.description = "board temperature (warms up from 25 C while the device is open)";
    } else {
        throw std::runtime_error("driver=drift: no sensor " + key);
    }
    return info;
}

std::string DriftDevice::readSensor(const std::string& key) const
{
    std::lock_guard<std::mutex> lock(d_mutex);
    check_present();
    char text[64];
    if (key == "clock_locked" && d_has_time)
        return locked() ? "true" : "false";
    if (key == "sync_uncertainty_ns" && d_has_time) {
        std::snprintf(text,
                      sizeof text,
                      "%.6g",
                      locked() ? d_info.clock_uncertainty_s * 1e9 : UNSYNCED_NS);
        return text;
    }
    if (key == "temperature") {
        double c = d_temperature_c;
        if (c < -273) { // warms up with a 5-minute time constant
            const double up = std::chrono::duration<double>(clock::now() - d_made).count();
            c = 25.0 + 15.0 * (1.0 - std::exp(-up / 300.0));
        }
        std::snprintf(text, sizeof text, "%.2f", c);
        return text;
    }
    throw std::runtime_error("driver=drift: no sensor " + key);
}

} // namespace drift_soapy
