#include "tests/support/http_get.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <optional>

namespace cityloop::testing {

HttpReply HttpGet(uint16_t port, const std::string& target) {
  HttpReply reply;
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return reply;
  timeval tv{10, 0};  // bounds a hung server; a passing test never waits it out
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);
  if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return reply;
  }
  const std::string req = "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  for (size_t sent = 0; sent < req.size();) {
    const ssize_t n = send(fd, req.data() + sent, req.size() - sent, 0);
    if (n <= 0) {
      close(fd);
      return reply;
    }
    sent += static_cast<size_t>(n);
  }
  std::string raw;
  std::optional<size_t> header_end, content_length;
  char buf[65536];
  while (true) {
    if (header_end && content_length && raw.size() >= *header_end + *content_length) break;
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    raw.append(buf, static_cast<size_t>(n));
    if (!header_end) {
      const size_t at = raw.find("\r\n\r\n");
      if (at == std::string::npos) continue;
      header_end = at + 4;
      const std::string head = raw.substr(0, at);
      std::sscanf(head.c_str(), "HTTP/1.%*d %d", &reply.status);
      size_t line = head.find("\r\n");
      while (line != std::string::npos) {
        const size_t next = head.find("\r\n", line + 2);
        const std::string h = head.substr(line + 2, next == std::string::npos ? std::string::npos : next - line - 2);
        if (const size_t colon = h.find(':'); colon != std::string::npos) {
          std::string name = h.substr(0, colon);
          for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
          std::string value = h.substr(colon + 1);
          while (!value.empty() && value.front() == ' ') value.erase(0, 1);
          reply.headers[name] = value;
        }
        line = next;
      }
      if (auto it = reply.headers.find("content-length"); it != reply.headers.end()) {
        content_length = std::stoul(it->second);
      }
    }
  }
  close(fd);
  if (header_end) reply.body = raw.substr(*header_end, content_length ? *content_length : std::string::npos);
  return reply;
}

double MetricValue(const std::string& text, const std::string& series) {
  size_t at = 0;
  while ((at = text.find(series + " ", at)) != std::string::npos) {
    if (at == 0 || text[at - 1] == '\n') return std::stod(text.substr(at + series.size() + 1));
    at += series.size();
  }
  return -1;
}

double MetricSum(const std::string& text, const std::string& name) {
  double total = 0;
  for (size_t at = 0; (at = text.find(name, at)) != std::string::npos; at += name.size()) {
    if (at != 0 && text[at - 1] != '\n') continue;
    const size_t after = at + name.size();
    if (after >= text.size() || (text[after] != ' ' && text[after] != '{')) continue;
    const size_t space = text.find(' ', text[after] == '{' ? text.find('}', after) : after);
    if (space != std::string::npos) total += std::stod(text.substr(space + 1));
  }
  return total;
}

}  // namespace cityloop::testing
