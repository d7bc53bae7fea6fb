/*
 * Copyright 2026 DRIFT contributors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

/* Hand-written bindings; the header hash check is off (hash 0).               */
/* BINDTOOL_GEN_AUTOMATIC(0)                                                   */
/* BINDTOOL_USE_PYGCCXML(0)                                                    */
/* BINDTOOL_HEADER_FILE(tdoa_multi.h)                                          */
/* BINDTOOL_HEADER_FILE_HASH(0)                                                */

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

namespace py = pybind11;

#include <gnuradio/drift/tdoa_multi.h>

void bind_tdoa_multi(py::module& m)
{
    using tdoa_multi = gr::drift::tdoa_multi;
    py::class_<tdoa_multi,
               gr::sync_block,
               gr::block,
               gr::basic_block,
               std::shared_ptr<tdoa_multi>>(
        m,
        "tdoa_multi",
        "TDOA of every chosen pair of n_inputs timestamped streams, each input's transform "
        "made once per block of n samples: pair k (pairs[k] = [ref, sig]) publishes on port "
        "'pair<k>' the PDU a drift.tdoa with ref on input 0 and sig on input 1 would.")
        .def(py::init(&tdoa_multi::make),
             py::arg("samp_rate"),
             py::arg("n"),
             py::arg("n_inputs"),
             py::arg("weighting") = 0,
             py::arg("max_delay_s") = 0.0,
             py::arg("pairs") = std::vector<std::vector<int>>(),
             "tdoa_multi(samp_rate, n, n_inputs, weighting=0 (PHAT) | 1 (plain) | 2 (ML), "
             "max_delay_s=0 (n - 1 samples), pairs=[] (every [i, j], i < j))")
        .def("estimates",
             &tdoa_multi::estimates,
             "Blocks estimated so far (each gave one PDU per pair).")
        .def("pairs", &tdoa_multi::pairs, "The pairs, one per port pair<k>.");
}
