/* -*- c++ -*- */
/*
 * Copyright 2026 DRIFT contributors.
 *
 * SPDX-License-Identifier: GPL-3.0-or-later
 */

#include "scenario_helper.h"

#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace drift_soapy {

std::string ScenarioHelper::python()
{
    const char* env = std::getenv("DRIFT_PYTHON");
    return (env && *env) ? env : "python3";
}

ScenarioHelper::ScenarioHelper()
{
    int fds[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0)
        throw std::runtime_error(std::string("socketpair: ") + std::strerror(errno));
    const std::string py = python();
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    // the child's end becomes its stdin and stdout (dup2 clears close-on-exec)
    posix_spawn_file_actions_adddup2(&actions, fds[1], 0);
    posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
    std::vector<std::string> args = { py, "-m", "drift.sim.soapy_helper" };
    std::vector<char*> argv;
    for (auto& a : args)
        argv.push_back(a.data());
    argv.push_back(nullptr);
    const int rc =
        posix_spawnp(&d_pid, py.c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    close(fds[1]);
    if (rc != 0) {
        close(fds[0]);
        throw std::runtime_error("cannot start the scenario helper (" + py +
                                 " -m drift.sim.soapy_helper): " + std::strerror(rc) +
                                 "; set DRIFT_PYTHON to a Python that imports drift");
    }
    d_fd = fds[0];
}

ScenarioHelper::~ScenarioHelper()
{
    if (d_fd >= 0) {
        shutdown(d_fd, SHUT_RDWR); // the helper reads the end of its input and exits
        close(d_fd);
    }
    if (d_pid > 0) {
        for (int i = 0; i < 200; i++) { // up to 2 s
            if (waitpid(d_pid, nullptr, WNOHANG) == d_pid)
                return;
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        kill(d_pid, SIGKILL);
        waitpid(d_pid, nullptr, 0);
    }
}

void ScenarioHelper::gone(const std::string& what)
{
    throw std::runtime_error("the scenario helper (" + python() +
                             " -m drift.sim.soapy_helper) " + what +
                             ": is DRIFT's Python package importable by it? (DRIFT_PYTHON "
                             "names the interpreter)");
}

void ScenarioHelper::send_line(const Fields& fields)
{
    std::string line;
    for (size_t i = 0; i < fields.size(); i++) {
        if (fields[i].find_first_of("\t\n") != std::string::npos)
            throw std::invalid_argument("a tab or newline in a driver=drift argument: " +
                                        fields[i]);
        line += (i ? "\t" : "") + fields[i];
    }
    line += "\n";
    size_t sent = 0;
    while (sent < line.size()) {
        ssize_t k = send(d_fd, line.data() + sent, line.size() - sent, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            gone("has ended");
        sent += size_t(k);
    }
}

std::string ScenarioHelper::read_line()
{
    for (;;) {
        size_t nl = d_buf.find('\n');
        if (nl != std::string::npos) {
            std::string line = d_buf.substr(0, nl);
            d_buf.erase(0, nl + 1);
            return line;
        }
        char chunk[65536];
        ssize_t k = recv(d_fd, chunk, sizeof chunk, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            gone("ended without an answer");
        d_buf.append(chunk, size_t(k));
    }
}

void ScenarioHelper::read_exact(char* out, size_t n)
{
    size_t have = std::min(n, d_buf.size());
    std::memcpy(out, d_buf.data(), have);
    d_buf.erase(0, have);
    while (have < n) {
        ssize_t k = recv(d_fd, out + have, n - have, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            gone("ended in the middle of an answer");
        have += size_t(k);
    }
}

static Fields split(const std::string& line)
{
    Fields out;
    size_t pos = 0;
    for (;;) {
        size_t tab = line.find('\t', pos);
        out.push_back(line.substr(pos, tab - pos));
        if (tab == std::string::npos)
            return out;
        pos = tab + 1;
    }
}

std::vector<Fields> ScenarioHelper::request(const Fields& fields)
{
    send_line(fields);
    std::vector<Fields> rows;
    for (;;) {
        Fields row = split(read_line());
        if (row[0] == "end")
            return rows;
        if (row[0] == "error")
            throw std::runtime_error(row.size() > 1 ? row[1] : "scenario error");
        rows.push_back(std::move(row));
    }
}

std::vector<std::complex<double>> ScenarioHelper::moving(const Fields& fields, size_t n)
{
    send_line(fields);
    Fields head = split(read_line());
    if (head[0] == "error")
        throw std::runtime_error(head.size() > 1 ? head[1] : "scenario error");
    if (head[0] != "data" || head.size() != 2 ||
        std::stoull(head[1]) != n * sizeof(std::complex<double>))
        gone("answered out of turn");
    std::vector<std::complex<double>> out(n);
    read_exact(reinterpret_cast<char*>(out.data()), n * sizeof(std::complex<double>));
    return out;
}

std::string hex(double x)
{
    char text[64];
    std::snprintf(text, sizeof text, "%a", x);
    return text;
}

double unhex(const std::string& text)
{
    char* end = nullptr;
    const double x = std::strtod(text.c_str(), &end);
    if (end == text.c_str() || *end != '\0')
        throw std::runtime_error("the scenario helper sent a malformed number: " + text);
    return x;
}

} // namespace drift_soapy
