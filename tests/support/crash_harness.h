// The crash harness, shared by tests/integration/crash_test.cc and
// fault_test.cc, on the processes of engine_process.h (the broker in its own
// process, engines as children SIGKILLed and restarted on one store): input
// produced fast from the simulator, and the checks of a finished run: every
// input applied once, every output delivered, output repeated only as the
// same event, and the outputs equal to the replay oracle (`cityloop replay`
// of the same input). Used from the test thread only.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/city.h"
#include "core/model.h"
#include "ingest/kafka.h"
#include "ingest/simulator.h"
#include "tests/support/engine_process.h"
#include "tests/support/test_support.h"

namespace cityloop::testing {

// The example config, edited: each (from, to) must occur once in it.
std::string EditedExampleConfig(const std::vector<std::pair<std::string, std::string>>& edits);
// The crash tests' edits: micro-batches of max_messages, and a short
// consumer session so a killed member leaves the group soon (on the embedded
// broker a restart after kill -9 is ready after about 2 x session - 1 s;
// below 3 s a member never gets through its first join).
std::vector<std::pair<std::string, std::string>> CrashConfigEdits(int max_messages, int session_ms = 6000);
// The config and city model of a config file (fails the test when invalid).
std::shared_ptr<const CityModel> LoadTestCity(const std::string& path);

// Produces the simulator's sensor readings (only those: one topic keeps the
// application order the same live and in replay) as fast as Kafka takes
// them, each with its event time as Kafka timestamp, lz4-compressed (the
// embedded broker keeps 5 MiB of batches per partition). Stops after
// `limit` readings, at the end of the simulated duration, or when *stop is
// set. paced: never before a reading's event time (a steady live rate).
// between(n, last): called after the n-th reading, to add records of one's own.
struct ProduceOptions {
  ingest::SimulatorOptions sim;
  int64_t skip = 0;   // readings generated but not produced first (a later part of one run)
  int64_t limit = 0;  // 0 = the whole duration
  bool paced = false;
  const std::atomic<bool>* stop = nullptr;
  std::function<void(int64_t n, const ingest::SimulatedReading& last, ingest::KafkaProducer& producer)> between;
};
// The number of readings produced (all delivered), or -1 on failure (reported).
int64_t ProduceSensorReadings(const std::string& bootstrap, std::shared_ptr<const CityModel> city,
                              const ProduceOptions& options);

// The next offsets stored in a (closed) store, summed over every input partition.
int64_t StoredOffsetTotal(const std::string& store_path);
// The messages in these topics now (their high watermarks summed).
int64_t TopicTotal(const std::string& bootstrap, const std::vector<std::string>& topics);

// What a finished run left, read from the (closed) store and the output topics.
struct ExactlyOnce {
  int64_t inputs = 0;      // messages in the input topics
  int64_t unapplied = 0;   // of those, beyond the stored offsets: lost
  int64_t beyond_end = 0;  // stored offsets past a partition's end (impossible)
  std::map<std::string, Case> cases;
  int64_t signals_twice = 0;        // a case holding one signal twice
  int64_t inputs_twice = 0;         // a case holding one input twice
  int64_t outbox_left = 0;          // outbox records never acknowledged
  int64_t outputs = 0;              // events on cases + dispatch, repeats included
  int64_t repeats = 0;              // repeated with the same id and content (allowed)
  int64_t conflicts = 0;            // the same id with other content
  int64_t missing_subjects = 0;     // a case absent from its output topic
  int64_t unexpected_subjects = 0;  // an output about a case the store lacks
};
ExactlyOnce CheckRun(const std::string& bootstrap, const std::string& store_path,
                     const std::vector<std::string>& input_topics = {"city.sensors", "city.reports",
                                                                     "city.camera.detections"});
// EXPECTs every must-be-zero figure of a run to be zero.
void ExpectExactlyOnce(const ExactlyOnce& r);

// How a run's output events must equal its replay's.
//   kExact: the same events, ids and all. Holds for input in one partition:
//     the run and the replay apply it in the same order.
//   kUpToInterleaving: for input over several partitions, produced paced
//     (about in time order), replayed in time order: the same events with
//     the same content, but a case event's sequence number (the `:N` of
//     `CASE:N`) may differ. The run and the replay interleave the partitions
//     a little differently, and a case numbers its events in the order it
//     applies them, so an SLA light can come one event earlier in one than
//     in the other (docs/RELIABILITY.md, "Ordering across partitions").
enum class OracleMatch { kExact, kUpToInterleaving };

// Output events as a set of canonical lines: replay::OutputEventJson of each
// record of the cases, dispatch and dead-letter topics, without the ingest
// times a live run takes from its clock (`ingest`, `first_ingest`), so that a
// live run and its replay compare equal.
// kUpToInterleaving: without the case events' sequence numbers, each line
// then numbered by its occurrence ("#2": the second equal event).
std::set<std::string> CanonicalOutputs(const std::vector<ingest::Message>& messages,
                                       OracleMatch match = OracleMatch::kExact);
// The same from a replay's events.jsonl.
std::set<std::string> CanonicalEventsFile(const std::string& path, OracleMatch match = OracleMatch::kExact);
// cases.jsonl without the ingest times, line by line.
std::vector<std::string> CanonicalCasesFile(const std::string& path);
// SHA-256 (replay::OutputDigest) over a sorted set of lines.
std::string SetDigest(const std::set<std::string>& lines);


// A killed run against the oracle: the replay of its input from Kafka
// (`cityloop replay --bootstrap --order log --events`) and the export of its
// store (`cityloop export`).
struct OracleComparison {
  bool ran = false;           // both commands succeeded
  size_t outputs = 0;         // distinct output events of the run
  size_t oracle_outputs = 0;  // of the replay
  size_t missing = 0;         // in the replay, not in the run: lost
  size_t extra = 0;           // in the run, not in the replay: doubled or wrong
  std::string digest, oracle_digest;
  bool cases_equal = false;  // cases.jsonl of export and replay, ingest times aside
  size_t cases = 0;
  std::string first_difference;  // for the failure message
};
OracleComparison CompareWithReplay(const TempDir& dir, const std::string& config, const std::string& bootstrap,
                                   const std::string& store_path, const std::string& tag,
                                   OracleMatch match = OracleMatch::kExact);

// The process's RSS (kB) and open fds from /proc; a directory's bytes.
int64_t ProcessRssKb(int pid);
// Open fds, those on files whose names end with `apart` (".sst": RocksDB's tables) counted apart.
struct OpenFds {
  int64_t others = -1, apart = 0;
};
OpenFds ProcessOpenFds(int pid, const std::string& apart);
int64_t DirectoryBytes(const std::string& path);

}  // namespace cityloop::testing
