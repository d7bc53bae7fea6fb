/*
 * Copyright 2026 DRIFT contributors.
 *
 * This file is part of GNU Radio
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 *
 */

#include <pybind11/pybind11.h>

#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <numpy/arrayobject.h>

namespace py = pybind11;

// Headers for binding functions
/**************************************/
// The following comment block is used for
// gr_modtool to insert function prototypes
// Please do not delete
/**************************************/
// BINDING_FUNCTION_PROTOTYPES(
    void bind_align(py::module& m);
    void bind_gcc(py::module& m);
    void bind_psd(py::module& m);
    void bind_sim_kernels(py::module& m);
    void bind_tdoa(py::module& m);
    void bind_tdoa_multi(py::module& m);
// ) END BINDING_FUNCTION_PROTOTYPES


// We need this hack because import_array() returns NULL
// for newer Python versions.
// This function is also necessary because it ensures access to the C API
// and removes a warning.
void* init_numpy()
{
    import_array();
    return NULL;
}

PYBIND11_MODULE(drift_python, m)
{
    // Initialize the numpy C API
    // (otherwise we will see segmentation faults)
    init_numpy();

    // Allow access to base block methods
    py::module::import("gnuradio.gr");
    // The window enum (gnuradio.fft.window.win_type) is registered there.
    py::module::import("gnuradio.fft");

    /**************************************/
    // The following comment block is used for
    // gr_modtool to insert binding function calls
    // Please do not delete
    /**************************************/
    // BINDING_FUNCTION_CALLS(
    bind_align(m);
    bind_gcc(m);
    bind_psd(m);
    bind_sim_kernels(m);
    bind_tdoa(m);
    bind_tdoa_multi(m);
    // ) END BINDING_FUNCTION_CALLS
}