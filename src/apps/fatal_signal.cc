#include "apps/fatal_signal.h"

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

namespace dpcnn {
namespace {

char g_prefix[320];  // "rank R on HOST: fatal signal ", written once before install
size_t g_prefix_len = 0;

void on_fatal_signal(int sig) {
  const char* name = sig == SIGFPE    ? "SIGFPE (arithmetic error)\n"
                     : sig == SIGSEGV ? "SIGSEGV (invalid memory access)\n"
                     : sig == SIGBUS  ? "SIGBUS (bus error)\n"
                     : sig == SIGILL  ? "SIGILL (illegal instruction)\n"
                                      : "SIGABRT (aborted)\n";
  ssize_t ignored = write(STDERR_FILENO, g_prefix, g_prefix_len);
  ignored = write(STDERR_FILENO, name, std::strlen(name));
  (void)ignored;
  signal(sig, SIG_DFL);
  raise(sig);
}

volatile std::sig_atomic_t g_stop = 0;

void on_sigterm(int) { g_stop = 1; }

}  // namespace

void name_rank_on_fatal_signal(int rank, const std::string& host) {
  const int n = std::snprintf(g_prefix, sizeof g_prefix, "rank %d on %.256s: fatal signal ", rank,
                              host.c_str());
  g_prefix_len = n > 0 ? std::min(static_cast<size_t>(n), sizeof g_prefix - 1) : 0;
  struct sigaction sa {};
  sa.sa_handler = on_fatal_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESETHAND;  // a second fault inside the handler gets the default action
  for (int sig : {SIGFPE, SIGSEGV, SIGBUS, SIGILL, SIGABRT}) sigaction(sig, &sa, nullptr);
}

const volatile std::sig_atomic_t* stop_on_sigterm() {
  struct sigaction sa {};
  sa.sa_handler = on_sigterm;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESETHAND;  // the second SIGTERM kills
  sigaction(SIGTERM, &sa, nullptr);
  return &g_stop;
}

}  // namespace dpcnn
