/* -*- c++ -*- */
/*
 * Copyright 2026 DRIFT contributors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

// driver=drift: SoapySDR finds a scenario's nodes (scenario=FILE[,node=ID]) and opens one.

#include "drift_device.h"

#include <SoapySDR/Logger.hpp>
#include <SoapySDR/Registry.hpp>

namespace {

SoapySDR::KwargsList find_drift(const SoapySDR::Kwargs& args)
{
    auto it = args.find("scenario");
    if (it == args.end() || it->second.empty())
        return {}; // nothing to discover without a scenario
    const std::string& path = it->second;
    std::vector<drift_soapy::Fields> rows;
    try {
        drift_soapy::ScenarioHelper helper;
        rows = helper.request({ "nodes", path });
    } catch (const std::exception& exc) {
        // enumeration stays quiet: opening the device reports the error
        SoapySDR::logf(SOAPY_SDR_DEBUG, "driver=drift: %s", exc.what());
        return {};
    }
    const auto node = args.find("node");
    const std::string base = path.substr(path.find_last_of('/') + 1);
    SoapySDR::KwargsList out;
    for (const auto& row : rows) {
        if (row.size() < 5 || (node != args.end() && node->second != row[1]))
            continue;
        // the arguments given (start=, realtime=, faults...) stay: SoapySDR shares one device
        // among the opens whose found arguments are equal
        SoapySDR::Kwargs k = args;
        k["driver"] = "drift";
        k["scenario"] = path;
        k["node"] = row[1];
        k["model"] = row[2];
        k["label"] = "DRIFT simulated " + row[3] + " " + row[1] + " (" + base + ")";
        if (row[4] != "1")
            k["channels"] = row[4];
        out.push_back(k);
    }
    return out;
}

SoapySDR::Device* make_drift(const SoapySDR::Kwargs& args)
{
    return new drift_soapy::DriftDevice(args);
}

const SoapySDR::Registry register_drift("drift", &find_drift, &make_drift, SOAPY_SDR_ABI_VERSION);

} // namespace
