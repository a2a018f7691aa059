// cityloop: the command-line entry point. Each subcommand wires the modules
// together; see CONTRACT.md for the commands and docs/ for the rest.
#include <signal.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cstdio>
#include <iostream>

#include "app/commands.h"

namespace {
std::atomic<bool> g_stop{false};
std::atomic<bool> g_reload{false};
extern "C" void OnStopSignal(int) { g_stop.store(true); }
extern "C" void OnReloadSignal(int) { g_reload.store(true); }
}  // namespace

int main(int argc, char** argv) {
  struct sigaction sa {};
  sa.sa_handler = OnStopSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);
  struct sigaction hup {};
  hup.sa_handler = OnReloadSignal;
  sigemptyset(&hup.sa_mask);
  sigaction(SIGHUP, &hup, nullptr);

  using namespace cityloop::app;
  CLI::App app{"cityloop: a streaming engine for city operation centres"};
  app.require_subcommand(1);
  GlobalFlags global;
  app.add_option("--log-format", global.log_format, "Log format on stderr: text or json")
      ->check(CLI::IsMember({"text", "json"}));
  app.add_option("--log-level", global.log_level, "trace, debug, info, warn or error");

  ValidateArgs validate;
  auto* v = app.add_subcommand("validate", "Check a config; errors name the file, line and key");
  v->add_option("--config", validate.config, "Config file")->required();

  BrokerArgs broker;
  auto* b = app.add_subcommand("broker", "Run the embedded Kafka-protocol broker alone");
  b->add_option("--bootstrap-file", broker.bootstrap_file, "Also write the bootstrap address to this file");
  b->add_option("--config", broker.config, "Config whose topics and partition counts to create");
  b->add_option("--partitions", broker.partitions, "Partitions per topic (default: the config's kafka.partitions)");
  b->add_flag("--control", broker.control, "Read fault commands from stdin (see below)");
  b->footer(kBrokerControlHelp);

  RunArgs run;
  auto* r = app.add_subcommand("run", "The streaming service");
  r->add_option("--config", run.config, "Config file")->required();
  r->add_flag("--embedded-kafka", run.embedded_kafka, "Start the embedded Kafka-protocol broker in this process");
  r->add_option("--bootstrap-file", run.bootstrap_file, "With --embedded-kafka: write the bootstrap address here");
  r->add_option("--bootstrap", run.bootstrap, "Kafka bootstrap HOST:PORT (overrides kafka.bootstrap)");
  r->add_option("--store", run.store, "RocksDB directory (overrides storage.path)");
  r->add_option("--listen", run.listen, "HTTP listen ADDR:PORT (overrides api.listen)");
  r->add_flag("--simulate", run.simulate, "Also run the city simulator in this process, in real time");
  r->add_option("--seed", run.seed, "Simulator seed");
  r->add_option("--rate", run.rate, "Simulator readings per second");
  r->add_option("--camera-fps", run.camera_fps,
                "Simulator camera frames per second per camera with zones (default camera.fps; 0 = none)");
  r->add_flag("--summary", run.summary, "Print a live summary to stdout every 2 s");
  r->add_flag("--exit-when-caught-up", run.exit_when_caught_up,
              "Exit once all input is consumed and every output delivered (backlog catch-up, tests)");
  r->add_option("--record", run.record,
                "Record every applied input, with its ingest time and the clock advances, into this replay log "
                "(replaying it reproduces the run exactly)");

  SimulateArgs sim;
  auto* s = app.add_subcommand("simulate", "Produce a realistic city's sensor readings with injected incidents");
  s->add_option("--bootstrap", sim.bootstrap, "Kafka bootstrap HOST:PORT")->required();
  s->add_option("--config", sim.config, "Config file (default deploy/cityloop.example.yaml)");
  s->add_option("--rate", sim.rate, "Readings per second of city time, over all devices");
  s->add_option("--duration", sim.duration_s, "Seconds of city time to simulate (0 = until stopped)");
  s->add_option("--seed", sim.seed, "Seed of noise, dropouts and the incident schedule");
  s->add_option("--truth", sim.truth, "Write the injected incidents here as JSON lines");
  s->add_option("--start", sim.start, "City time of the first reading: epoch ms or RFC 3339 (default: now, "
                                      "or now minus the duration with --fast)");
  s->add_flag("--fast", sim.fast, "Do not pace to real time: produce as fast as Kafka takes it (needs --duration)");
  s->add_option("--speed", sim.speed, "Paced runs: city time runs this many times faster than the clock, "
                                      "never ahead of it (a --start in the past catches up, then goes on live)");
  s->add_option("--incident-every", sim.incident_every, "Mean city time between injected incidents, e.g. 4m");
  s->add_option("--camera-fps", sim.camera_fps,
                "Camera frames per second for each camera with zones (default camera.fps, or 0 with --fast)");
  s->add_flag("--units,!--no-units", sim.units,
              "Produce the field units' status and positions on the units topic (default on)");
  s->add_flag("--operate", sim.operate,
              "Play the departments: take orders from the dispatch topic, send the units out and produce the "
              "operators' commands (a --fast run goes on until every unit is back)");

  auto add_range = [](CLI::App* cmd, KafkaRangeArgs& range) {
    cmd->add_option("--from-offsets", range.from_offsets, "Start offsets: TOPIC:PARTITION=OFFSET[,...]");
    cmd->add_option("--from-time", range.from_time,
                    "Start at the first record at or after this time (RFC 3339 or epoch ms)");
    cmd->add_option("--to-time", range.to_time, "End before the first record at or after this time");
    cmd->add_option("--topics", range.topics, "Comma-separated topics (default: every input topic of the config)");
  };

  RecordArgs rec;
  auto* rec_cmd = app.add_subcommand("record", "Record every input topic into a replay log");
  rec_cmd->add_option("--config", rec.config, "Config file (topic names, bootstrap)")->required();
  rec_cmd->add_option("--out", rec.out, "Replay log directory (an existing log is continued)")->required();
  rec_cmd->add_option("--bootstrap", rec.range.bootstrap, "Kafka bootstrap HOST:PORT (overrides kafka.bootstrap)");
  add_range(rec_cmd, rec.range);
  rec_cmd->add_flag("--until-caught-up", rec.until_caught_up,
               "Stop at the partitions' ends as they were at the start (default: follow until stopped)");
  rec_cmd->add_option("--segment-mb", rec.segment_mb, "Rotate segments at this size (MiB)");

  ReplayArgs rep;
  auto* rp = app.add_subcommand("replay", "Run a replay log (or a Kafka range) through the pipeline into a fresh store");
  rp->add_option("--config", rep.config, "Config file: the rules, SLA and city to replay with")->required();
  rp->add_option("--log", rep.log, "Replay log directory");
  rp->add_option("--bootstrap", rep.range.bootstrap,
                 "Replay from Kafka instead: the range given by --from-offsets/--from-time/--to-time");
  add_range(rp, rep.range);
  rp->add_option("--out", rep.out, "Output directory: cases.jsonl, kpi.json, digest, summary.json, store/")
      ->required();
  rp->add_option("--store", rep.store, "Store directory (default <out>/store); must be empty");
  rp->add_option("--speed", rep.speed, "max (default), 1 (real time) or N (N times real time)");
  rp->add_option("--batch", rep.batch, "Messages per micro-batch (default 100000; the output does not depend on it)");
  rp->add_option("--order", rep.order,
                 "auto (default: log order for engine recordings, time order otherwise), log or time")
      ->check(CLI::IsMember({"auto", "log", "time"}));
  rp->add_option("--reorder-window", rep.reorder_window,
                 "Time order: how far timestamps within a partition may run back (default 1s)");
  rp->add_option("--from", rep.from, "Only records from this time (RFC 3339 or epoch ms)");
  rp->add_option("--to", rep.to, "Only records before this time");
  rp->add_option("--progress", rep.progress, "auto (bar on a terminal, else lines), bar, lines or none")
      ->check(CLI::IsMember({"auto", "bar", "lines", "none"}));

  rp->add_flag("--events", rep.events, "Also write every output event to <out>/events.jsonl");

  DiffArgs diff;
  auto* df = app.add_subcommand("diff", "Compare two replay outputs case by case and KPI by KPI (exit 1 if they differ)");
  df->add_option("DIR_A", diff.dir_a, "First replay output")->required();
  df->add_option("DIR_B", diff.dir_b, "Second replay output")->required();
  df->add_option("--json", diff.json, "Also write the report as JSON to this file ('-': only JSON, to stdout)");
  df->add_option("--max-listed", diff.max_listed, "Cases listed per section of the text report");

  ExportArgs exp;
  auto* ex = app.add_subcommand("export", "Write cases.jsonl and kpi.json from a (stopped) engine's store, to diff "
                                          "a live run against a replay");
  ex->add_option("--config", exp.config, "Config file")->required();
  ex->add_option("--store", exp.store, "Store directory")->required();
  ex->add_option("--out", exp.out, "Output directory")->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  }
  if (int rc = InitGlobal(global); rc != 0) return rc;
  if (*v) return ValidateCommand(validate);
  if (*b) return BrokerCommand(broker, g_stop);
  if (*r) return RunServiceCommand(run, g_stop, &g_reload);
  if (*s) return SimulateCommand(sim, g_stop);
  if (*rec_cmd) return RecordCommand(rec, g_stop);
  if (*rp) return ReplayCommand(rep, g_stop);
  if (*df) return DiffCommand(diff);
  if (*ex) return ExportCommand(exp);
  return 2;
}
