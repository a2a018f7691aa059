#include "ingest/routing_peek.h"

#include <simdjson.h>

namespace cityloop::ingest {

RoutingFields PeekRoutingFields(std::string_view json) {
  namespace od = simdjson::ondemand;
  thread_local od::parser parser;
  RoutingFields out;
  const simdjson::padded_string padded(json);
  od::document doc;
  if (parser.iterate(padded).get(doc) != simdjson::SUCCESS) return out;
  od::object object;
  if (doc.get_object().get(object) != simdjson::SUCCESS) return out;
  std::optional<double> lat, lon;
  for (auto field : object) {
    std::string_view key;
    if (field.unescaped_key().get(key) != simdjson::SUCCESS) return out;
    od::value value;
    if (field.value().get(value) != simdjson::SUCCESS) return out;
    double d = 0;
    std::string_view s;
    if (key == "lat" && value.get_double().get(d) == simdjson::SUCCESS) lat = d;
    else if (key == "lon" && value.get_double().get(d) == simdjson::SUCCESS) lon = d;
    else if (key == "case_id" && value.get_string().get(s) == simdjson::SUCCESS) out.case_id = std::string(s);
  }
  if (lat && lon) out.position = LatLon{*lat, *lon};
  return out;
}

}  // namespace cityloop::ingest
