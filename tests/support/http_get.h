// A minimal blocking HTTP/1.1 GET on 127.0.0.1 for tests that talk to a
// running engine (/readyz, /metrics, snapshots), and a reader of one series
// of a Prometheus text page. A receive timeout bounds a hung server.
#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace cityloop::testing {

struct HttpReply {
  int status = 0;                              // 0: no answer (refused, closed or timed out)
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
};

HttpReply HttpGet(uint16_t port, const std::string& target);

// The value of `series V` (series = name{labels} as rendered) in Prometheus
// text, or -1 when absent.
double MetricValue(const std::string& text, const std::string& series);
// The sum over every series of a family (name, or name{...}), 0 when absent.
double MetricSum(const std::string& text, const std::string& name);

}  // namespace cityloop::testing
