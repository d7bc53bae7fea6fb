/*
 * Copyright 2026 DRIFT contributors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

/* Hand-written bindings; the header hash check is off (hash 0).               */
/* BINDTOOL_GEN_AUTOMATIC(0)                                                   */
/* BINDTOOL_USE_PYGCCXML(0)                                                    */
/* BINDTOOL_HEADER_FILE(tdoa.h)                                                */
/* BINDTOOL_HEADER_FILE_HASH(0)                                                */

#include <pybind11/complex.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

namespace py = pybind11;

#include <gnuradio/drift/tdoa.h>

void bind_tdoa(py::module& m)
{
    using tdoa = gr::drift::tdoa;
    using cf = std::complex<float>;
    py::enum_<gr::drift::gcc_weighting>(m, "gcc_weighting")
        .value("GCC_PHAT", gr::drift::GCC_PHAT)
        .value("GCC_PLAIN", gr::drift::GCC_PLAIN)
        .export_values();
    m.def(
        "gcc_delay",
        [](py::array_t<cf, py::array::c_style | py::array::forcecast> reference,
           py::array_t<cf, py::array::c_style | py::array::forcecast> signal,
           const std::string& weighting,
           int max_lag,
           int smooth_bins) {
            if (reference.ndim() != 1 || signal.ndim() != 1)
                throw std::invalid_argument("gcc_delay: reference and signal must be 1-D");
            if (reference.size() != signal.size())
                throw std::invalid_argument("gcc_delay: reference and signal lengths differ: " +
                                            std::to_string(reference.size()) +
                                            " != " + std::to_string(signal.size()));
            gr::drift::gcc_weighting w;
            if (weighting == "phat")
                w = gr::drift::GCC_PHAT;
            else if (weighting == "plain")
                w = gr::drift::GCC_PLAIN;
            else
                throw std::invalid_argument("gcc_delay: weighting must be 'phat' or 'plain', got '" +
                                            weighting + "'");
            gr::drift::gcc_result r;
            {
                py::gil_scoped_release release;
                r = gr::drift::gcc_delay(reference.data(), signal.data(), int(reference.size()),
                                         w, max_lag, smooth_bins);
            }
            py::dict d;
            d["delay_samples"] = r.delay_samples;
            d["std_samples"] = r.std_samples;
            d["psr_db"] = r.psr_db;
            d["snr_db"] = r.snr_db;
            d["rms_bandwidth"] = r.rms_bandwidth;
            d["n_samples"] = r.n_samples;
            return d;
        },
        py::arg("reference"),
        py::arg("signal"),
        py::arg("weighting") = "phat",
        py::arg("max_lag") = -1,
        py::arg("smooth_bins") = 0,
        "GCC delay of signal against reference (complex64, equal lengths), in samples: the "
        "algorithm of gnuradio.drift.df.estimate_delay (phat | plain) in C++. Returns a dict: "
        "delay_samples, std_samples, psr_db, snr_db, rms_bandwidth (cycles/sample), n_samples.");

    py::class_<tdoa, gr::sync_block, gr::block, gr::basic_block, std::shared_ptr<tdoa>>(
        m, "tdoa",
        "TDOA of two timestamped streams (input 0 reference, input 1 signal): one PDU per n "
        "samples on 'delays' (delay_s, std_s, psr_db, snr_db, rms_bandwidth_hz, rx_time, ...).")
        .def(py::init(&tdoa::make),
             py::arg("samp_rate"),
             py::arg("n"),
             py::arg("weighting") = 0,
             py::arg("max_delay_s") = 0.0,
             "tdoa(samp_rate, n, weighting=0 (PHAT) | 1 (plain), max_delay_s=0 (n - 1 samples))")
        .def("estimates", &tdoa::estimates, "Estimates published so far.");
}
