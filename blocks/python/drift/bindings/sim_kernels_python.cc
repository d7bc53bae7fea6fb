/*
 * Copyright 2026 DRIFT contributors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

/* Hand-written bindings; the header hash check is off (hash 0).               */
/* BINDTOOL_GEN_AUTOMATIC(0)                                                   */
/* BINDTOOL_USE_PYGCCXML(0)                                                    */
/* BINDTOOL_HEADER_FILE(sim_kernels.h)                                         */
/* BINDTOOL_HEADER_FILE_HASH(0)                                                */

#include <pybind11/complex.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

namespace py = pybind11;

#include <gnuradio/drift/sim_kernels.h>

void bind_sim_kernels(py::module& m)
{
    using cplx = std::complex<double>;
    m.def(
        "sim_gauss",
        [](uint64_t key, int64_t first, int n) {
            if (n < 0)
                throw std::invalid_argument("sim_gauss: n must be >= 0");
            py::array_t<cplx> out(n);
            {
                py::gil_scoped_release release;
                gr::drift::sim::gauss(key, first, n, out.mutable_data());
            }
            return out;
        },
        py::arg("key"),
        py::arg("first"),
        py::arg("n"),
        "Counter-based complex Gaussian noise (E|z|^2 = 1) for counters first..first+n-1.");
    m.def(
        "sim_pulse_train",
        [](py::array_t<double, py::array::c_style | py::array::forcecast> pos,
           int64_t lo,
           py::array_t<cplx, py::array::c_style | py::array::forcecast> symbols,
           py::array_t<double, py::array::c_style | py::array::forcecast> table,
           int steps,
           int span) {
            const int n = int(pos.size());
            py::array_t<cplx> out(n);
            {
                py::gil_scoped_release release;
                gr::drift::sim::pulse_train(pos.data(), n, lo, symbols.data(),
                                            int64_t(symbols.size()), table.data(),
                                            int64_t(table.size()), steps, span,
                                            out.mutable_data());
            }
            return out;
        },
        py::arg("pos"),
        py::arg("lo"),
        py::arg("symbols"),
        py::arg("table"),
        py::arg("steps"),
        py::arg("span"),
        "sum_j symbols[floor(pos) + j - lo] * pulse(frac(pos) - j), pulse from a table.");
}
