// A plain HTTP server on loopback for tests that stand in for part of a real server with
// recorded answers (an ACME directory that offers renewalInfo, which Debian's pebble does
// not): each request's method, path and body are kept, and a handler the test sets gives
// the answer. One thread, one request per connection, bounded in count, size and time.
#pragma once

#include <atomic>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace cvtest {

class HttpTestServer {
 public:
  struct Request {
    std::string method;
    std::string path;
    std::string body;
  };
  struct Answer {
    int status = 404;
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;  // besides the length
  };
  using Handler = std::function<Answer(const Request&)>;

  explicit HttpTestServer(int max_requests = 64);
  ~HttpTestServer();  // stops and joins
  HttpTestServer(const HttpTestServer&) = delete;
  HttpTestServer& operator=(const HttpTestServer&) = delete;

  bool listening() const { return fd_ >= 0; }
  std::string url() const;  // http://127.0.0.1:PORT
  void set_handler(Handler handler);
  std::vector<Request> requests() const;  // so far, in order

 private:
  void serve();

  int fd_ = -1;
  int port_ = 0;
  int max_requests_;
  std::atomic<bool> stop_{false};
  mutable std::mutex mu_;
  Handler handler_;
  std::vector<Request> requests_;
  std::thread thread_;
};

}  // namespace cvtest
