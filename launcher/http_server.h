// The launcher's HTTP side, on status.metrics_listen: Prometheus metrics at
// /metrics, the live web page at / (with /app.js, /style.css, all compiled into
// the binary from launcher/web/), the status as JSON at /api/status, and the
// token-guarded POST /api/stop and /api/checkpoint behind the page's buttons.
//
// Reads the StatusService (its snapshot and control calls) and owns nothing
// else; cpp-httplib's worker threads serve requests concurrently. start()
// and stop() from the main thread. TLS (HTTPS) when given a certificate and
// key, the same PEM files as the gRPC port.
#pragma once

#include <memory>
#include <string>
#include <thread>

#include "launcher/status_service.h"

namespace httplib {
class Server;
}

namespace dpcnn::launcher {

class HttpServer {
 public:
  explicit HttpServer(StatusService& service);
  ~HttpServer();  // stop()s
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds `listen` (host:port; port 0: a free port) and serves in a thread.
  // Throws dpcnn::BusyError when the port is taken, dpcnn::InputError when the
  // address cannot be bound or the TLS files are unusable.
  void start(const std::string& listen, const std::string& tls_cert, const std::string& tls_key);
  void stop();
  // host:port for a browser or Prometheus (a wildcard host becomes loopback).
  const std::string& addr() const { return addr_; }
  // "http://host:port" or "https://host:port".
  std::string url() const { return (tls_ ? "https://" : "http://") + addr_; }

 private:
  void routes();

  StatusService& service_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  std::string addr_;
  bool tls_ = false;
};

// A Host header naming a loopback host (localhost, 127.0.0.0/8, [::1]), with
// or without a port: what a server bound to loopback answers.
bool loopback_host_header(const std::string& host);

// The token a request presents: "Authorization: Bearer <token>" or
// "X-Dpcnn-Token: <token>"; "" when neither.
std::string presented_token(const std::string& authorization, const std::string& x_dpcnn_token);

}  // namespace dpcnn::launcher
