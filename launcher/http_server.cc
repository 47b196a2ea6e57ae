#include "launcher/http_server.h"

#include <arpa/inet.h>
#include <google/protobuf/util/json_util.h>
#include <httplib.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <chrono>

#include "core/error.h"
#include "launcher/metrics.h"
#include "launcher/web_assets.h"

namespace dpcnn::launcher {
namespace {

// The listen address's host for bind(): brackets off an IPv6 literal.
std::string bind_host(const std::string& host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    return host.substr(1, host.size() - 2);
  return host;
}

std::string dial_host(const std::string& host) {
  if (host == "0.0.0.0" || host == "[::]" || host == "*" || host.empty()) return "127.0.0.1";
  return host;
}

void json_reply(httplib::Response& res, int code, const std::string& message) {
  std::string escaped;
  for (char c : message) {
    if (c == '"' || c == '\\') escaped += '\\';
    if (static_cast<unsigned char>(c) >= 0x20) escaped += c;
  }
  res.status = code;
  res.set_content("{\"message\":\"" + escaped + "\"}\n", "application/json");
}

// Static assets: the page may load only what this server serves (no CDN, no
// inline script), and no other site may frame it.
void asset(httplib::Response& res, std::string_view body, const char* type) {
  res.set_header("Content-Security-Policy",
                 "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'");
  res.set_header("X-Content-Type-Options", "nosniff");
  res.set_header("Cache-Control", "no-cache");
  res.set_content(std::string(body), type);
}

// A loopback name or address: localhost, 127.0.0.0/8, ::1.
bool loopback_name(std::string h) {
  std::transform(h.begin(), h.end(), h.begin(), [](unsigned char c) { return std::tolower(c); });
  if (h == "localhost") return true;
  in_addr v4{};
  if (inet_pton(AF_INET, h.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  return inet_pton(AF_INET6, h.c_str(), &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6);
}

}  // namespace

bool loopback_host_header(const std::string& host) {
  std::string name = host;
  if (!name.empty() && name.front() == '[') {
    const size_t end = name.find(']');
    if (end == std::string::npos) return false;
    name = name.substr(1, end - 1);
  } else if (const size_t colon = name.rfind(':'); colon != std::string::npos) {
    name = name.substr(0, colon);
  }
  return loopback_name(name);
}

std::string presented_token(const std::string& authorization, const std::string& x_dpcnn_token) {
  const std::string prefix = "Bearer ";
  if (authorization.compare(0, prefix.size(), prefix) == 0)
    return authorization.substr(prefix.size());
  return x_dpcnn_token;
}

HttpServer::HttpServer(StatusService& service) : service_(service) {}

HttpServer::~HttpServer() { stop(); }

void HttpServer::start(const std::string& listen, const std::string& tls_cert,
                       const std::string& tls_key) {
  tls_ = !tls_cert.empty();
  if (tls_) {
    auto ssl = std::make_unique<httplib::SSLServer>(tls_cert.c_str(), tls_key.c_str());
    if (!ssl->is_valid())
      throw InputError("status.metrics_listen: cannot serve TLS with status.tls_cert '" + tls_cert +
                       "' and status.tls_key '" + tls_key + "'");
    server_ = std::move(ssl);
  } else {
    server_ = std::make_unique<httplib::Server>();
  }
  // httplib's default turns SO_REUSEPORT on, which would let a second launcher
  // bind the same port and take half of the scrapes: a taken port must fail.
  server_->set_socket_options([](int sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  server_->set_payload_max_length(4096);  // POST bodies are a short reason at most
  // A page polling each second keeps its connection; short, because stop()
  // waits for idle keep-alive connections to time out.
  server_->set_keep_alive_timeout(2);
  const size_t colon = listen.rfind(':');
  const std::string host = listen.substr(0, colon);
  // DNS rebinding: a web page elsewhere whose name is made to resolve to
  // 127.0.0.1 reaches a loopback server, with its own name in Host, and could
  // read the status. A server on loopback answers only requests addressed to
  // a loopback name (421 otherwise); one on another address was exposed on
  // purpose (with TLS or --insecure) and answers every name.
  if (loopback_name(bind_host(host))) {
    server_->set_pre_routing_handler([](const httplib::Request& req, httplib::Response& res) {
      if (!req.has_header("Host") || loopback_host_header(req.get_header_value("Host")))
        return httplib::Server::HandlerResponse::Unhandled;
      json_reply(res, 421,
                 "this server answers loopback names only (localhost, 127.0.0.1, [::1]), not '" +
                     req.get_header_value("Host") + "'");
      return httplib::Server::HandlerResponse::Handled;
    });
  }
  routes();
  const int port = std::stoi(listen.substr(colon + 1));
  int bound = port;
  if (port == 0)
    bound = server_->bind_to_any_port(bind_host(host));
  else if (!server_->bind_to_port(bind_host(host), port))
    bound = -1;
  if (bound <= 0) {
    // Tell a taken port from an address this host does not have.
    const bool taken = port != 0 && httplib::Server().bind_to_any_port(bind_host(host)) > 0;
    if (taken)
      throw BusyError("status.metrics_listen " + listen +
                      ": the port is in use (another job or program listens there; port 0 picks "
                      "a free one)");
    throw InputError("status.metrics_listen " + listen + ": cannot listen there");
  }
  addr_ = dial_host(host) + ":" + std::to_string(bound);
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  // httplib's stop() does nothing until the listen loop runs, and the loop
  // then never ends: an early stop() (a setup error right after start) would
  // hang the join. So start() returns only once the loop runs.
  while (!server_->is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

void HttpServer::stop() {
  if (!server_) return;
  server_->stop();
  if (thread_.joinable()) thread_.join();
  server_.reset();
}

void HttpServer::routes() {
  httplib::Server& s = *server_;
  s.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(render_metrics(service_.snapshot(), std::chrono::system_clock::now()),
                    "text/plain; version=0.0.4; charset=utf-8");
  });
  s.Get("/api/status", [this](const httplib::Request&, httplib::Response& res) {
    google::protobuf::util::JsonPrintOptions o;
    o.always_print_primitive_fields = true;
    o.preserve_proto_field_names = true;
    std::string json;
    (void)google::protobuf::util::MessageToJsonString(service_.snapshot(), &json, o);
    res.set_header("Cache-Control", "no-store");
    res.set_content(json, "application/json");
  });
  s.Get("/", [](const httplib::Request&, httplib::Response& res) {
    asset(res, web::index_html, "text/html; charset=utf-8");
  });
  s.Get("/app.js", [](const httplib::Request&, httplib::Response& res) {
    asset(res, web::app_js, "text/javascript; charset=utf-8");
  });
  s.Get("/style.css", [](const httplib::Request&, httplib::Response& res) {
    asset(res, web::style_css, "text/css; charset=utf-8");
  });
  // The control calls: the run token (runs/<name>/version_<N>/token) as
  // "Authorization: Bearer <token>", compared in constant time; 401 without
  // one, 403 with a wrong one, 409 when the job is ending or ended. A body,
  // if any, is the stop's reason.
  auto control = [this](bool stop) {
    return [this, stop](const httplib::Request& req, httplib::Response& res) {
      const std::string token = presented_token(req.get_header_value("Authorization"),
                                                req.get_header_value("X-Dpcnn-Token"));
      if (token.empty()) {
        res.set_header("WWW-Authenticate", "Bearer realm=\"dpcnn\"");
        return json_reply(res, 401,
                          "this call needs the run token (runs/<name>/version_<N>/token) as "
                          "'Authorization: Bearer <token>'");
      }
      if (!service_.token_matches(token)) return json_reply(res, 403, "wrong run token");
      const std::string who = "the web page (" + req.remote_addr + ")";
      std::string out;
      const bool ok =
          stop ? service_.stop_job(who, req.body, &out) : service_.checkpoint_job(who, &out);
      json_reply(res, ok ? 200 : 409, out);
    };
  };
  s.Post("/api/stop", control(true));
  s.Post("/api/checkpoint", control(false));
}

}  // namespace dpcnn::launcher
