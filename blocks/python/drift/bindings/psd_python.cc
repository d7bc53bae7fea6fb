/*
 * Copyright 2026 DRIFT contributors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

/* Hand-written bindings; the header hash check is off (hash 0).               */
/* BINDTOOL_GEN_AUTOMATIC(0)                                                   */
/* BINDTOOL_USE_PYGCCXML(0)                                                    */
/* BINDTOOL_HEADER_FILE(psd.h)                                                 */
/* BINDTOOL_HEADER_FILE_HASH(0)                                                */

#include <pybind11/complex.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

namespace py = pybind11;

#include <gnuradio/drift/psd.h>
#include <psd_pydoc.h>

void bind_psd(py::module& m)
{
    using psd = gr::drift::psd;

    py::class_<psd, gr::block, gr::basic_block, std::shared_ptr<psd>>(m, "psd", D(psd))
        .def(py::init(&psd::make),
             py::arg("fft_size"),
             py::arg("n_avg"),
             py::arg("samp_rate"),
             py::arg("overlap") = 0.0,
             py::arg("window") = gr::fft::window::WIN_BLACKMAN_HARRIS,
             py::arg("db") = true,
             py::arg("cal_offset_db") = 0.0,
             D(psd, make))
        .def("window_taps", &psd::window_taps, D(psd, window_taps))
        .def("step", &psd::step, D(psd, step))
        .def("cal_offset_db", &psd::cal_offset_db, D(psd, cal_offset_db))
        .def("set_cal_offset_db",
             &psd::set_cal_offset_db,
             py::arg("cal_offset_db"),
             D(psd, set_cal_offset_db))
        .def("samp_rate", &psd::samp_rate, D(psd, samp_rate))
        .def("set_samp_rate",
             &psd::set_samp_rate,
             py::arg("samp_rate"),
             D(psd, set_samp_rate))
        .def("n_avg", &psd::n_avg, D(psd, n_avg))
        .def("set_n_avg", &psd::set_n_avg, py::arg("n_avg"), D(psd, set_n_avg));
}
