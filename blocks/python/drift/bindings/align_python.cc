/*
 * Copyright 2026 DRIFT contributors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

/* Hand-written bindings; the header hash check is off (hash 0).               */
/* BINDTOOL_GEN_AUTOMATIC(0)                                                   */
/* BINDTOOL_USE_PYGCCXML(0)                                                    */
/* BINDTOOL_HEADER_FILE(align.h)                                               */
/* BINDTOOL_HEADER_FILE_HASH(0)                                                */

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

namespace py = pybind11;

#include <gnuradio/drift/align.h>

void bind_align(py::module& m)
{
    using align = gr::drift::align;
    py::class_<align, gr::block, gr::basic_block, std::shared_ptr<align>>(
        m,
        "align",
        "N timestamped streams cut onto a common time base (the latest start, to the nearest "
        "sample); each output's first sample tagged rx_time and align_offset_s.")
        .def(py::init(&align::make),
             py::arg("samp_rate"),
             py::arg("n_inputs") = 2,
             py::arg("max_wait") = 1 << 20,
             "align(samp_rate, n_inputs=2, max_wait=2**20 samples to wait for an input's "
             "first rx_time)")
        .def_property_readonly(
            "breaks", &align::breaks, "rx_time tags that broke an input's sample count.")
        .def_property_readonly("offsets_s",
                               &align::offsets_s,
                               "Each output's first sample's time minus the common start, s "
                               "(empty until planned).")
        .def_property_readonly("drops",
                               &align::drops,
                               "Samples dropped from each input before the common start "
                               "(empty until planned).");
}
