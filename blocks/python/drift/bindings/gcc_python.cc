/*
 * Copyright 2026 DRIFT contributors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

/* Hand-written bindings; the header hash check is off (hash 0).               */
/* BINDTOOL_GEN_AUTOMATIC(0)                                                   */
/* BINDTOOL_USE_PYGCCXML(0)                                                    */
/* BINDTOOL_HEADER_FILE(gcc.h)                                                 */
/* BINDTOOL_HEADER_FILE_HASH(0)                                                */

#include <pybind11/complex.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

namespace py = pybind11;

#include <gnuradio/drift/gcc.h>
#include <limits>
#include <string>

namespace {
using cf = std::complex<float>;
using carray = py::array_t<cf, py::array::c_style | py::array::forcecast>;

gr::drift::gcc_weighting weighting_of(const py::object& w)
{
    if (py::isinstance<py::str>(w)) {
        const std::string s = w.cast<std::string>();
        if (s == "phat")
            return gr::drift::GCC_PHAT;
        if (s == "plain")
            return gr::drift::GCC_PLAIN;
        if (s == "ml")
            return gr::drift::GCC_ML;
        throw std::invalid_argument("weighting must be 'phat', 'plain' or 'ml', got '" + s +
                                    "'");
    }
    const int v = w.cast<int>();
    if (v != gr::drift::GCC_PHAT && v != gr::drift::GCC_PLAIN && v != gr::drift::GCC_ML)
        throw std::invalid_argument("weighting must be 0 (PHAT), 1 (plain) or 2 (ML), got " +
                                    std::to_string(v));
    return gr::drift::gcc_weighting(v);
}

void check_pair(const carray& reference, const carray& signal, int n)
{
    if (reference.ndim() != 1 || signal.ndim() != 1)
        throw std::invalid_argument("reference and signal must be 1-D");
    if (reference.size() != signal.size())
        throw std::invalid_argument("reference and signal lengths differ: " +
                                    std::to_string(reference.size()) +
                                    " != " + std::to_string(signal.size()));
    if (n >= 0 && reference.size() != n)
        throw std::invalid_argument("the estimator takes " + std::to_string(n) +
                                    " samples per input, got " +
                                    std::to_string(reference.size()));
}

py::dict as_dict(const gr::drift::gcc_result& r)
{
    py::dict d;
    d["delay_samples"] = r.delay_samples;
    d["std_samples"] = r.std_samples;
    d["crb_std_samples"] = r.crb_std_samples;
    d["psr_db"] = r.psr_db;
    d["snr_db"] = r.snr_db;
    d["rms_bandwidth"] = r.rms_bandwidth;
    d["n_samples"] = r.n_samples;
    return d;
}

const char* RESULT_DOC = "a dict: delay_samples, std_samples (predicted), crb_std_samples, psr_db, "
                         "snr_db, rms_bandwidth (cycles/sample), n_samples";
} // namespace

void bind_gcc(py::module& m)
{
    using est = gr::drift::gcc_estimator;
    py::enum_<gr::drift::gcc_weighting>(m, "gcc_weighting")
        .value("GCC_PHAT", gr::drift::GCC_PHAT)
        .value("GCC_PLAIN", gr::drift::GCC_PLAIN)
        .value("GCC_ML", gr::drift::GCC_ML)
        .export_values();

    m.def(
        "gcc_delay",
        [](carray reference,
           carray signal,
           py::object weighting,
           int max_lag,
           int smooth_bins,
           bool real) {
            check_pair(reference, signal, -1);
            const auto w = weighting_of(weighting);
            if (reference.size() > std::numeric_limits<int>::max())
                throw std::invalid_argument("gcc_delay: too many samples");
            gr::drift::gcc_result r;
            {
                py::gil_scoped_release release;
                r = gr::drift::gcc_delay(reference.data(),
                                         signal.data(),
                                         int(reference.size()),
                                         w,
                                         max_lag,
                                         smooth_bins,
                                         real);
            }
            return as_dict(r);
        },
        py::arg("reference"),
        py::arg("signal"),
        py::arg("weighting") = "phat",
        py::arg("max_lag") = -1,
        py::arg("smooth_bins") = 0,
        py::arg("real") = false,
        (std::string("GCC delay of signal against reference (equal lengths, complex64; other "
                     "dtypes are converted), in samples: gnuradio.drift.df.estimate_delay's "
                     "algorithm in C++ (weighting 'phat' | 'plain' | 'ml'; max_lag < 0: n - 1; "
                     "smooth_bins <= 0: the default; real: the inputs are real signals). "
                     "Returns ") +
         RESULT_DOC + ".")
            .c_str());

    py::class_<est>(m,
                    "gcc_estimator",
                    "GCC delay estimator for blocks of n samples (gcc.h): FFT plans and buffers "
                    "made once. One per thread.")
        .def(py::init([](int n, py::object weighting, int max_lag, int smooth_bins, bool real) {
                 return new est(n, weighting_of(weighting), max_lag, smooth_bins, real);
             }),
             py::arg("n"),
             py::arg("weighting") = "phat",
             py::arg("max_lag") = -1,
             py::arg("smooth_bins") = 0,
             py::arg("real") = false)
        .def(
            "estimate",
            [](est& e, carray reference, carray signal) {
                check_pair(reference, signal, e.n());
                gr::drift::gcc_result r;
                {
                    py::gil_scoped_release release;
                    r = e.estimate(reference.data(), signal.data());
                }
                return as_dict(r);
            },
            py::arg("reference"),
            py::arg("signal"),
            (std::string("Delay of signal against reference (n samples each). Returns ") +
             RESULT_DOC + ".")
                .c_str())
        .def(
            "seconds",
            [](est& e, carray reference, carray signal, int repeat) {
                check_pair(reference, signal, e.n());
                py::gil_scoped_release release;
                return gr::drift::gcc_seconds(e, reference.data(), signal.data(), repeat);
            },
            py::arg("reference"),
            py::arg("signal"),
            py::arg("repeat") = 5,
            "For benchmarks: the best time (s) of one estimate on these inputs, timed in C++ "
            "over `repeat` rounds of at least 20 ms.")
        .def_property_readonly("n", &est::n)
        .def_property_readonly("fft_length", &est::fft_length)
        .def_property_readonly("max_lag", &est::max_lag)
        .def_property_readonly("weighting", &est::weighting);

    m.def(
        "fftw_seconds",
        [](int n, int repeat) {
            py::gil_scoped_release release;
            return gr::drift::fftw_seconds(n, repeat);
        },
        py::arg("n"),
        py::arg("repeat") = 5,
        "For benchmarks: the best time (s) of one complex single-precision forward FFTW "
        "transform of n points (out of place, planned as the delay estimator plans its own), "
        "over `repeat` rounds of at least 20 ms.");
}
