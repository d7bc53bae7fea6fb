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
#include <vector>

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
    using f64 = py::array_t<double, py::array::c_style | py::array::forcecast>;
    m.def(
        "sim_add_emitter",
        [](int kind,
           py::array_t<int64_t, py::array::c_style | py::array::forcecast> whole,
           f64 frac,
           f64 step,
           f64 params,
           f64 table,
           uint64_t key,
           double amp,
           int64_t first,
           py::array_t<cplx, py::array::c_style> acc) {
            const auto npos = whole.size();
            if (frac.size() != npos || step.size() != npos)
                throw std::invalid_argument("sim_add_emitter: whole, frac and step differ in "
                                            "length");
            if (!(acc.flags() & py::array::c_style) || !acc.writeable())
                throw std::invalid_argument("sim_add_emitter: acc must be a writable "
                                            "contiguous complex128 array");
            std::vector<gr::drift::sim::lin_pos> pos(npos);
            for (py::ssize_t i = 0; i < npos; i++)
                pos[i] = { whole.data()[i], frac.data()[i], step.data()[i] };
            const int n = int(acc.size());
            cplx* out = acc.mutable_data();
            {
                py::gil_scoped_release release;
                gr::drift::sim::add_emitter(kind, pos.data(), int(npos), params.data(),
                                            int(params.size()), table.data(),
                                            int64_t(table.size()), key, amp, first, n, out);
            }
        },
        py::arg("kind"),
        py::arg("whole"),
        py::arg("frac"),
        py::arg("step"),
        py::arg("params"),
        py::arg("table"),
        py::arg("key"),
        py::arg("amp"),
        py::arg("first"),
        py::arg("acc"),
        "Adds one static emitter's received signal to acc (samples first..first+len(acc)-1).");
    m.def(
        "sim_finish",
        [](py::array_t<cplx, py::array::c_style | py::array::forcecast> acc,
           uint64_t key,
           int64_t first,
           double sigma,
           cplx gain,
           int bits) {
            const int n = int(acc.size());
            py::array_t<std::complex<float>> out(n);
            {
                py::gil_scoped_release release;
                gr::drift::sim::finish(acc.data(), key, first, n, sigma, gain, bits,
                                       out.mutable_data());
            }
            return out;
        },
        py::arg("acc"),
        py::arg("key"),
        py::arg("first"),
        py::arg("sigma"),
        py::arg("gain"),
        py::arg("bits"),
        "(acc + sigma * noise) * gain, quantized to bits (0: not), as complex64.");
}
