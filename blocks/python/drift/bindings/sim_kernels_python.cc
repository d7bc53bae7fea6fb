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
#include <pybind11/stl.h>

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
        "sim_synthesize",
        [](py::list specs,
           py::object extra,
           uint64_t noise_key,
           int64_t first,
           int n,
           double sigma,
           cplx gain,
           int bits) {
            if (n < 0)
                throw std::invalid_argument("sim_synthesize: n must be >= 0");
            std::vector<gr::drift::sim::emitter> ems;
            for (auto item : specs) {
                auto t = item.cast<py::tuple>();
                if (t.size() != 8)
                    throw std::invalid_argument("sim_synthesize: each emitter is (kind, whole, "
                                                "frac, step, params, table, key, amp)");
                auto whole = t[1].cast<py::array_t<int64_t, py::array::c_style |
                                                              py::array::forcecast>>();
                auto frac = t[2].cast<f64>();
                auto step = t[3].cast<f64>();
                auto params = t[4].cast<f64>();
                auto table = t[5].cast<f64>();
                if (frac.size() != whole.size() || step.size() != whole.size())
                    throw std::invalid_argument("sim_synthesize: whole, frac and step differ "
                                                "in length");
                gr::drift::sim::emitter e;
                e.kind = t[0].cast<int>();
                for (py::ssize_t i = 0; i < whole.size(); i++)
                    e.pos.push_back({ whole.data()[i], frac.data()[i], step.data()[i] });
                e.params.assign(params.data(), params.data() + params.size());
                e.table.assign(table.data(), table.data() + table.size());
                e.key = t[6].cast<uint64_t>();
                e.amp = t[7].cast<double>();
                ems.push_back(std::move(e));
            }
            py::array_t<cplx, py::array::c_style | py::array::forcecast> ex;
            const cplx* exp = nullptr;
            if (!extra.is_none()) {
                ex = extra.cast<py::array_t<cplx, py::array::c_style | py::array::forcecast>>();
                if (ex.size() != n)
                    throw std::invalid_argument("sim_synthesize: extra must have n samples");
                exp = ex.data();
            }
            py::array_t<std::complex<float>> out(n);
            {
                py::gil_scoped_release release;
                gr::drift::sim::synthesize(ems, exp, noise_key, first, n, sigma, gain, bits,
                                           out.mutable_data());
            }
            return out;
        },
        py::arg("specs"),
        py::arg("extra"),
        py::arg("noise_key"),
        py::arg("first"),
        py::arg("n"),
        py::arg("sigma"),
        py::arg("gain"),
        py::arg("bits"),
        "A receiver channel in one pass: the emitters (sim_add_emitter's arguments), extra "
        "samples (or None), thermal noise, gain and ADC, as complex64.");
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
    m.def("sim_isas",
          &gr::drift::sim::isas,
          "The instruction sets the simulator's kernels can run with on this CPU, fastest "
          "first.");
    m.def("sim_isa",
          &gr::drift::sim::isa,
          "The instruction set the simulator's kernels run with now (DRIFT_SIM_ISA, read at "
          "load, or sim_set_isa, pick another).");
    m.def("sim_set_isa",
          &gr::drift::sim::set_isa,
          py::arg("name"),
          "Runs the simulator's kernels with the instruction set `name` (one of sim_isas()).");
}
