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
    py::class_<tdoa, gr::sync_block, gr::block, gr::basic_block, std::shared_ptr<tdoa>>(
        m, "tdoa",
        "TDOA of two timestamped streams (input 0 reference, input 1 signal): one PDU per n "
        "samples on 'delays' (delay_s, std_s, crb_std_s, psr_db, snr_db, rms_bandwidth_hz, "
        "rx_time, ...).")
        .def(py::init(&tdoa::make),
             py::arg("samp_rate"),
             py::arg("n"),
             py::arg("weighting") = 0,
             py::arg("max_delay_s") = 0.0,
             "tdoa(samp_rate, n, weighting=0 (PHAT) | 1 (plain) | 2 (ML), max_delay_s=0 (n - 1 "
             "samples))")
        .def("estimates", &tdoa::estimates, "Estimates published so far.");
}
