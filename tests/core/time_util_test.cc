#include "core/time_util.h"

#include <gtest/gtest.h>

namespace cityloop {
namespace {

TEST(TimeUtil, ParsesRfc3339WithOffsetsAndFractions) {
  EXPECT_EQ(ParseRfc3339Ms("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(ParseRfc3339Ms("2025-11-28T08:00:00Z"), 1764316800000);
  EXPECT_EQ(ParseRfc3339Ms("2025-11-28T16:00:00.250+08:00"), 1764316800250);
  EXPECT_FALSE(ParseRfc3339Ms("2025-11-28 nonsense"));
  EXPECT_FALSE(ParseRfc3339Ms("2025-13-28T08:00:00Z"));
  EXPECT_FALSE(ParseRfc3339Ms("2025-11-28T08:00:00"));
  EXPECT_FALSE(ParseRfc3339Ms("2026-11-31T08:00:00Z"));  // no 31 November
  EXPECT_FALSE(ParseRfc3339Ms("2025-02-29T08:00:00Z"));
  EXPECT_FALSE(ParseRfc3339Ms("1900-02-29T08:00:00Z"));
  EXPECT_TRUE(ParseRfc3339Ms("2024-02-29T08:00:00Z"));
  EXPECT_TRUE(ParseRfc3339Ms("2000-02-29T08:00:00Z"));
  EXPECT_FALSE(ParseRfc3339Ms("2025-11-28T08:00:00+99:00"));
}

TEST(TimeUtil, FormatsRoundTrip) {
  EXPECT_EQ(FormatRfc3339Ms(1764316800250), "2025-11-28T08:00:00.250Z");
  EXPECT_EQ(ParseRfc3339Ms(FormatRfc3339Ms(-1)), -1);
  EXPECT_EQ(FormatRfc3339Ms(-1), "1969-12-31T23:59:59.999Z");
  EXPECT_EQ(FormatRfc3339Ms(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(FormatRfc3339Ms(253402300799999), "9999-12-31T23:59:59.999Z");
  EXPECT_EQ(FormatRfc3339Ms(253402300800000), "10000-01-01T00:00:00.000Z");
}

TEST(TimeUtil, ParsesDurations) {
  EXPECT_EQ(ParseDurationMs("5m"), 300000);
  EXPECT_EQ(ParseDurationMs("90"), 90000);
  EXPECT_EQ(ParseDurationMs("1.5h"), 5400000);
  EXPECT_EQ(ParseDurationMs("250ms"), 250);
  EXPECT_FALSE(ParseDurationMs("5 parsecs"));
  EXPECT_FALSE(ParseDurationMs(""));
}

TEST(TimeUtil, LocalDateAndHourUseTheCityOffset) {
  // 2025-11-28T20:30Z is 04:30 the next day in UTC+8.
  const int64_t t = *ParseRfc3339Ms("2025-11-28T20:30:00Z");
  EXPECT_EQ(FormatLocalDate(t, 480), "20251129");
  EXPECT_EQ(LocalHour(t, 480), 4);
  EXPECT_EQ(FormatLocalDate(t, 0), "20251128");
}

}  // namespace
}  // namespace cityloop
