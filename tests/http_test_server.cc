#include "http_test_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>

#include "tls_server.h"

namespace cvtest {
namespace {

constexpr size_t kMaxRequest = 64 * 1024;
constexpr int kIdleMs = 100;  // how often the loop looks at stop_
constexpr auto kRequestDeadline = std::chrono::seconds(10);

bool send_all(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

// One request within the limits; false when it is not one.
bool read_request(int fd, HttpTestServer::Request& out) {
  const auto deadline = std::chrono::steady_clock::now() + kRequestDeadline;
  std::string in;
  size_t body_at = std::string::npos, length = 0;
  char buf[4096];
  while (in.size() <= kMaxRequest && std::chrono::steady_clock::now() < deadline) {
    if (body_at != std::string::npos && in.size() >= body_at + length) {
      out.body = in.substr(body_at, length);
      return true;
    }
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, kIdleMs) <= 0) continue;
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return false;
    in.append(buf, static_cast<size_t>(n));
    if (body_at != std::string::npos) continue;
    const size_t end = in.find("\r\n\r\n");
    if (end == std::string::npos) continue;
    const size_t sp1 = in.find(' '), sp2 = in.find(' ', sp1 + 1);
    if (sp1 == std::string::npos || sp2 == std::string::npos || sp2 > end) return false;
    out.method = in.substr(0, sp1);
    out.path = in.substr(sp1 + 1, sp2 - sp1 - 1);
    body_at = end + 4;
    std::string head = in.substr(0, end);
    std::transform(head.begin(), head.end(), head.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    if (const size_t cl = head.find("\r\ncontent-length:"); cl != std::string::npos)
      length = std::strtoul(head.c_str() + cl + 17, nullptr, 10);
    if (length > kMaxRequest) return false;
    if (head.find("\r\nexpect: 100-continue") != std::string::npos)
      send_all(fd, "HTTP/1.1 100 Continue\r\n\r\n");
  }
  return false;
}

}  // namespace

HttpTestServer::HttpTestServer(int max_requests) : max_requests_(max_requests) {
  fd_ = listen_loopback(0, port_);
  if (fd_ < 0) return;
  thread_ = std::thread([this] { serve(); });
}

HttpTestServer::~HttpTestServer() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  if (fd_ >= 0) ::close(fd_);
}

std::string HttpTestServer::url() const {
  return "http://127.0.0.1:" + std::to_string(port_);
}

void HttpTestServer::set_handler(Handler handler) {
  std::lock_guard lock(mu_);
  handler_ = std::move(handler);
}

std::vector<HttpTestServer::Request> HttpTestServer::requests() const {
  std::lock_guard lock(mu_);
  return requests_;
}

void HttpTestServer::serve() {
  for (int handled = 0; handled < max_requests_ && !stop_;) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, kIdleMs) <= 0) continue;
    const int conn = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (conn < 0) continue;
    ++handled;
    Request request;
    Answer answer{400, "", {}};
    if (read_request(conn, request)) {
      std::lock_guard lock(mu_);
      requests_.push_back(request);
      if (handler_) answer = handler_(request);
    }
    std::string out = "HTTP/1.1 " + std::to_string(answer.status) + " X\r\n";
    for (const auto& [name, value] : answer.headers) out += name + ": " + value + "\r\n";
    out += "Content-Length: " + std::to_string(answer.body.size()) +
           "\r\nConnection: close\r\n\r\n" + answer.body;
    send_all(conn, out);
    ::close(conn);
  }
}

}  // namespace cvtest
