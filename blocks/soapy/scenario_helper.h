/* -*- c++ -*- */
/*
 * Copyright 2026 DRIFT contributors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#ifndef INCLUDED_DRIFT_SOAPY_SCENARIO_HELPER_H
#define INCLUDED_DRIFT_SOAPY_SCENARIO_HELPER_H

#include <sys/types.h>
#include <complex>
#include <string>
#include <vector>

namespace drift_soapy {

using Fields = std::vector<std::string>;

/*!
 * \brief The scenario side of driver=drift: a drift.sim.soapy_helper process.
 *
 * \details
 * Started as `$DRIFT_PYTHON -m drift.sim.soapy_helper` (default `python3`) on a socket pair
 * that is its stdin and stdout; the protocol is in drift/sim/soapy_helper.py. Requests are
 * tab-separated fields on one line; answers are rows of fields up to `end`, or `error` and
 * a message, which request() throws as std::runtime_error. The process ends with the object.
 */
class ScenarioHelper
{
public:
    ScenarioHelper();
    ~ScenarioHelper();
    ScenarioHelper(const ScenarioHelper&) = delete;
    ScenarioHelper& operator=(const ScenarioHelper&) = delete;

    //! the rows of the answer to one request
    std::vector<Fields> request(const Fields& fields);

    //! the `moving` request: n complex128 samples
    std::vector<std::complex<double>> moving(const Fields& fields, size_t n);

    //! the interpreter the helper runs with (for messages)
    static std::string python();

private:
    void send_line(const Fields& fields);
    std::string read_line();
    void read_exact(char* out, size_t n);
    [[noreturn]] void gone(const std::string& what);

    pid_t d_pid = -1;
    int d_fd = -1;
    std::string d_buf;
};

//! C99 hexadecimal text of a double (exact), and back
std::string hex(double x);
double unhex(const std::string& text);

} // namespace drift_soapy

#endif /* INCLUDED_DRIFT_SOAPY_SCENARIO_HELPER_H */
