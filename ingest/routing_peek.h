// A cheap look into a JSON input for where it belongs, for the shard router:
// only the top-level "lat", "lon" and "case_id" are read, nothing is
// validated (the shard's decoder does that, and dead-letters bad input). Any
// thread.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/geo.h"

namespace cityloop::ingest {

struct RoutingFields {
  std::optional<LatLon> position;  // when both lat and lon are numbers
  std::string case_id;             // empty when absent or not a string
};

RoutingFields PeekRoutingFields(std::string_view json);

}  // namespace cityloop::ingest
