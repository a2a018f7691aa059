// A small blocking HTTP/1.1 client for the console suites, on POSIX sockets
// with poll() deadlines (a broken server fails a test instead of hanging it):
// plain requests on a kept-alive connection, raw bytes for malformed
// requests, and a Server-Sent Events reader.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace cityloop::console::testing {

using Headers = std::vector<std::pair<std::string, std::string>>;

inline std::string LowerStr(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

struct Response {
  int status = 0;  // 0: no response (closed or timed out)
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  std::string header(const std::string& name) const {
    auto it = headers.find(LowerStr(name));
    return it == headers.end() ? "" : it->second;
  }
  bool has(const std::string& name) const { return headers.count(LowerStr(name)) > 0; }
  nlohmann::json json() const {
    auto j = nlohmann::json::parse(body, nullptr, false);
    return j;
  }
  std::string error_code() const {
    auto j = json();
    if (!j.is_object() || !j.contains("error") || !j["error"].is_object()) return "<no error body: " + body + ">";
    return j["error"].value("code", "<no code>");
  }
};

class Conn {
 public:
  using Clock = std::chrono::steady_clock;
  // rcvbuf > 0: SO_RCVBUF before connecting (a small window, for slow-client tests).
  explicit Conn(uint16_t port, int rcvbuf = 0) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd_ < 0) throw std::runtime_error("socket failed");
    if (rcvbuf > 0) ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      ::close(fd_);
      throw std::runtime_error("connect failed");
    }
  }
  ~Conn() {
    if (fd_ >= 0) ::close(fd_);
  }
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;

  static std::string Build(const std::string& method, const std::string& target, const Headers& headers,
                           const std::string& body) {
    std::string req = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    bool has_length = false;
    for (const auto& [k, v] : headers) {
      req += k + ": " + v + "\r\n";
      has_length = has_length || LowerStr(k) == "content-length";
    }
    if (!has_length && (!body.empty() || method == "POST")) req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    return req + "\r\n" + body;
  }

  void Send(const std::string& bytes) {
    size_t done = 0;
    while (done < bytes.size()) {
      const ssize_t n = ::send(fd_, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
      if (n <= 0) return;  // the server closed: the read that follows sees it
      done += static_cast<size_t>(n);
    }
  }

  Response Request(const std::string& method, const std::string& target, const Headers& headers = {},
                   const std::string& body = "") {
    Send(Build(method, target, headers, body));
    return ReadResponse(method == "HEAD");
  }

  // One response: its head, then Content-Length bytes (or up to the close).
  Response ReadResponse(bool head = false, std::chrono::milliseconds deadline = std::chrono::seconds(20)) {
    const auto until = Clock::now() + deadline;
    Response r;
    size_t end = std::string::npos;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (!Fill(until)) return r;
    }
    const std::string head_text = buf_.substr(0, end);
    buf_.erase(0, end + 4);
    size_t line_end = head_text.find("\r\n");
    const std::string status_line = head_text.substr(0, line_end);
    if (status_line.size() >= 12) r.status = std::stoi(status_line.substr(9, 3));
    while (line_end != std::string::npos) {
      const size_t next = head_text.find("\r\n", line_end + 2);
      const std::string line = head_text.substr(line_end + 2, next == std::string::npos ? std::string::npos : next - line_end - 2);
      const size_t colon = line.find(':');
      if (colon != std::string::npos) {
        std::string value = line.substr(colon + 1);
        while (!value.empty() && value.front() == ' ') value.erase(0, 1);
        auto [it, fresh] = r.headers.emplace(LowerStr(line.substr(0, colon)), value);
        if (!fresh) it->second += ", " + value;
      }
      line_end = next;
    }
    if (head || r.status == 204 || r.status == 304) return r;
    if (r.has("content-length")) {
      const size_t len = std::stoul(r.header("content-length"));
      while (buf_.size() < len) {
        if (!Fill(until)) break;
      }
      r.body = buf_.substr(0, len);
      buf_.erase(0, std::min(len, buf_.size()));
    } else if (LowerStr(r.header("content-type")).rfind("text/event-stream", 0) != 0) {
      while (Fill(until)) {
      }
      r.body = std::move(buf_);
      buf_.clear();
    }
    return r;
  }

  // True once the server closed the connection (reading and dropping what it still sends).
  bool ServerClosed(std::chrono::milliseconds deadline = std::chrono::seconds(20)) {
    const auto until = Clock::now() + deadline;
    while (true) {
      const int r = Poll(until);
      if (r <= 0) return false;
      char tmp[65536];
      const ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
      if (n <= 0) return true;
    }
  }

  // Appends what arrives before the deadline to the buffer; false on close or timeout.
  bool Fill(Clock::time_point until) {
    if (Poll(until) <= 0) return false;
    char tmp[16384];
    const ssize_t n = ::recv(fd_, tmp, sizeof tmp, 0);
    if (n <= 0) {
      closed_ = true;
      return false;
    }
    buf_.append(tmp, static_cast<size_t>(n));
    return true;
  }

  std::string& buffer() { return buf_; }
  bool closed() const { return closed_; }
  int fd() const { return fd_; }

 private:
  int Poll(Clock::time_point until) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now()).count();
    if (left <= 0) return 0;
    pollfd p{fd_, POLLIN, 0};
    return ::poll(&p, 1, static_cast<int>(left));
  }

  int fd_ = -1;
  std::string buf_;
  bool closed_ = false;
};

// A Server-Sent Events client: GET target with headers, then events.
class SseClient {
 public:
  struct Event {
    std::string id;    // "" when the event had no id line
    std::string type;  // "message" when it had no event line
    std::string data;
    nlohmann::json json() const { return nlohmann::json::parse(data, nullptr, false); }
  };

  SseClient(uint16_t port, const std::string& target, const Headers& headers, int rcvbuf = 0)
      : conn_(port, rcvbuf) {
    conn_.Send(Conn::Build("GET", target, headers, ""));
    head_ = conn_.ReadResponse();
  }

  const Response& head() const { return head_; }
  int status() const { return head_.status; }

  // The next event (blocks holding an id, an event type or data; comments
  // are counted), or nullopt when the stream closed or the deadline passed.
  std::optional<Event> Next(std::chrono::milliseconds deadline = std::chrono::seconds(20)) {
    const auto until = Conn::Clock::now() + deadline;
    while (true) {
      std::string& buf = conn_.buffer();
      size_t end;
      while ((end = buf.find("\n\n")) != std::string::npos) {
        const std::string block = buf.substr(0, end);
        buf.erase(0, end + 2);
        Event e;
        bool any = false;
        size_t start = 0;
        while (start <= block.size()) {
          const size_t nl = block.find('\n', start);
          const std::string line = block.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
          if (!line.empty() && line[0] == ':') {
            ++comments_;
          } else if (line.rfind("id: ", 0) == 0) {
            e.id = line.substr(4);
            any = true;
          } else if (line.rfind("event: ", 0) == 0) {
            e.type = line.substr(7);
            any = true;
          } else if (line.rfind("data: ", 0) == 0) {
            e.data += (e.data.empty() ? "" : "\n") + line.substr(6);
            any = true;
          }
          if (nl == std::string::npos) break;
          start = nl + 1;
        }
        if (any) {
          if (e.type.empty()) e.type = "message";
          return e;
        }
      }
      if (!conn_.Fill(until)) return std::nullopt;
    }
  }

  int comments() const { return comments_; }
  bool ServerClosed(std::chrono::milliseconds deadline = std::chrono::seconds(20)) {
    return conn_.ServerClosed(deadline);
  }
  Conn& conn() { return conn_; }

 private:
  Conn conn_;
  Response head_;
  int comments_ = 0;
};

}  // namespace cityloop::console::testing
