/* -*- c++ -*- */
/*
 * Copyright 2026 DRIFT contributors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#ifndef INCLUDED_DRIFT_SOAPY_DRIFT_DEVICE_H
#define INCLUDED_DRIFT_SOAPY_DRIFT_DEVICE_H

#include "scenario_helper.h"

#include <gnuradio/drift/sim_kernels.h>
#include <SoapySDR/Device.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace drift_soapy {

//! What the scenario says of the node and its device model (the helper's `open` answer).
struct NodeInfo {
    std::string scenario, node, model_id, model_name, clock_source;
    double freq_min = 0, freq_max = 0, max_bandwidth = 0;
    double gain_min = 0, gain_max = 0, gain_default = 0, full_scale_dbm = 0;
    double clock_uncertainty_s = 0, lat = 0, lon = 0, alt = 0;
    int adc_bits = 12;
    size_t channels = 1;
    bool has_tx = false;
};

//! One channel's kernel plan (the helper's `plan` answer).
struct ChannelPlan {
    std::vector<gr::drift::sim::emitter> emitters;
    uint64_t noise_key = 0;
    double sigma = 0;
    std::complex<double> gain = 1.0;
    int bits = 0;
    size_t moving = 0; // emitters the helper makes (they move)
};

/*!
 * \brief driver=drift: one node of a DRIFT scenario as a SoapySDR receiver.
 *
 * \details
 * Samples come from gr-drift's simulator kernels (gr::drift::sim::synthesize) with the
 * plan drift.sim computes for the node, so they equal the GNU Radio sim source's bit for
 * bit for the same node, start time, rate, tuning and gain. Settings outside the modelled
 * device's limits (the hardware matrix) are refused with the limit in the message. Devices
 * whose node keeps GPS or PTP time have hardware time: readStream stamps each block with
 * the node's clock (SOAPY_SDR_HAS_TIME). Faults are injected by argument: overflow_every=N
 * (after each N samples delivered, SOAPY_SDR_OVERFLOW and overflow_drop samples lost),
 * drop_after=N (then SOAPY_SDR_TIMEOUT forever), unplug_after=N (then
 * SOAPY_SDR_STREAM_ERROR from readStream and std::runtime_error from every setting).
 */
class DriftDevice : public SoapySDR::Device
{
public:
    explicit DriftDevice(const SoapySDR::Kwargs& args);
    ~DriftDevice() override;

    // identification
    std::string getDriverKey() const override;
    std::string getHardwareKey() const override;
    SoapySDR::Kwargs getHardwareInfo() const override;
    size_t getNumChannels(const int direction) const override;
    SoapySDR::Kwargs getChannelInfo(const int direction, const size_t channel) const override;

    // streams
    std::vector<std::string> getStreamFormats(const int direction,
                                              const size_t channel) const override;
    std::string getNativeStreamFormat(const int direction,
                                      const size_t channel,
                                      double& fullScale) const override;
    SoapySDR::ArgInfoList getStreamArgsInfo(const int direction,
                                            const size_t channel) const override;
    SoapySDR::Stream* setupStream(const int direction,
                                  const std::string& format,
                                  const std::vector<size_t>& channels,
                                  const SoapySDR::Kwargs& args) override;
    void closeStream(SoapySDR::Stream* stream) override;
    size_t getStreamMTU(SoapySDR::Stream* stream) const override;
    int activateStream(SoapySDR::Stream* stream,
                       const int flags,
                       const long long timeNs,
                       const size_t numElems) override;
    int deactivateStream(SoapySDR::Stream* stream,
                         const int flags,
                         const long long timeNs) override;
    int readStream(SoapySDR::Stream* stream,
                   void* const* buffs,
                   const size_t numElems,
                   int& flags,
                   long long& timeNs,
                   const long timeoutUs) override;

    // antenna
    std::vector<std::string> listAntennas(const int direction,
                                          const size_t channel) const override;
    void setAntenna(const int direction, const size_t channel, const std::string& name) override;
    std::string getAntenna(const int direction, const size_t channel) const override;

    // gain
    std::vector<std::string> listGains(const int direction, const size_t channel) const override;
    bool hasGainMode(const int direction, const size_t channel) const override;
    void setGain(const int direction, const size_t channel, const double value) override;
    void setGain(const int direction,
                 const size_t channel,
                 const std::string& name,
                 const double value) override;
    double getGain(const int direction, const size_t channel) const override;
    double getGain(const int direction,
                   const size_t channel,
                   const std::string& name) const override;
    SoapySDR::Range getGainRange(const int direction, const size_t channel) const override;
    SoapySDR::Range getGainRange(const int direction,
                                 const size_t channel,
                                 const std::string& name) const override;

    // frequency
    void setFrequency(const int direction,
                      const size_t channel,
                      const double frequency,
                      const SoapySDR::Kwargs& args) override;
    void setFrequency(const int direction,
                      const size_t channel,
                      const std::string& name,
                      const double frequency,
                      const SoapySDR::Kwargs& args) override;
    double getFrequency(const int direction, const size_t channel) const override;
    double getFrequency(const int direction,
                        const size_t channel,
                        const std::string& name) const override;
    std::vector<std::string> listFrequencies(const int direction,
                                             const size_t channel) const override;
    SoapySDR::RangeList getFrequencyRange(const int direction,
                                          const size_t channel) const override;
    SoapySDR::RangeList getFrequencyRange(const int direction,
                                          const size_t channel,
                                          const std::string& name) const override;

    // sample rate and bandwidth
    void setSampleRate(const int direction, const size_t channel, const double rate) override;
    double getSampleRate(const int direction, const size_t channel) const override;
    std::vector<double> listSampleRates(const int direction,
                                        const size_t channel) const override;
    SoapySDR::RangeList getSampleRateRange(const int direction,
                                           const size_t channel) const override;
    void setBandwidth(const int direction, const size_t channel, const double bw) override;
    double getBandwidth(const int direction, const size_t channel) const override;
    std::vector<double> listBandwidths(const int direction,
                                       const size_t channel) const override;
    SoapySDR::RangeList getBandwidthRange(const int direction,
                                          const size_t channel) const override;

    // clocks and time
    std::vector<std::string> listClockSources() const override;
    std::string getClockSource() const override;
    std::vector<std::string> listTimeSources() const override;
    void setTimeSource(const std::string& source) override;
    std::string getTimeSource() const override;
    bool hasHardwareTime(const std::string& what) const override;
    long long getHardwareTime(const std::string& what) const override;
    void setHardwareTime(const long long timeNs, const std::string& what) override;

    // sensors
    std::vector<std::string> listSensors() const override;
    SoapySDR::ArgInfo getSensorInfo(const std::string& key) const override;
    std::string readSensor(const std::string& key) const override;

private:
    struct Stream;
    using clock = std::chrono::steady_clock;

    void check_rx(const int direction, const size_t channel) const;
    void check_present() const;
    double full_scale_dbm() const;
    bool locked() const;
    // node clock of sample k as (whole, fraction) and as ns with the label offset
    long long time_ns_of(int64_t k) const;
    int64_t due_index(clock::time_point now) const;
    void ensure_plans();
    void synthesize(Stream& s, size_t n, void* const* buffs);

    mutable std::mutex d_mutex;
    std::unique_ptr<ScenarioHelper> d_helper;
    NodeInfo d_info;
    double d_freq, d_rate, d_bandwidth = 0, d_gain;
    bool d_gain_set = false;
    std::string d_time_source;
    std::vector<std::string> d_time_sources;
    bool d_has_time;

    // the stream's time line: the node clock reads d_t0_whole + d_t0_frac at sample 0
    bool d_start_given = false;
    int64_t d_t0_whole = 0;
    double d_t0_frac = 0;
    bool d_started = false;
    long long d_label_offset_ns = 0; // setHardwareTime on the internal time source
    int64_t d_next = 0;              // index of the next sample to deliver
    bool d_realtime = false;
    clock::time_point d_wall0;
    int64_t d_wall0_index = 0;

    // kernel plans per channel, made again after a change of tuning, rate or gain
    bool d_plans_valid = false;
    std::vector<ChannelPlan> d_plans;

    // faults
    uint64_t d_overflow_every = 0, d_overflow_drop = 0, d_drop_after = 0, d_unplug_after = 0;
    uint64_t d_delivered = 0;
    bool d_overflow_pending = false;
    bool d_unplugged = false;

    clock::time_point d_made;
    double d_temperature_c = -1000; // fixed by temperature=, else modelled
    Stream* d_stream = nullptr;
};

} // namespace drift_soapy

#endif /* INCLUDED_DRIFT_SOAPY_DRIFT_DEVICE_H */
