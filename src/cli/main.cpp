// autonomoe: one binary, several subcommands (train, eval, sample, export, validate, sweep, config).
// Exit codes: 0 success (also an interrupted run that wrote its checkpoint), 1 bad input (config,
// data, checkpoint), 2 a malformed command line, 3 an internal error (a bug: please report it).
#include "cli/args.h"
#include "cli/commands.h"
#include "cli/guarded.h"
#include "cpu/threads.h"
#include "dist/launch.h"
#include "train/stop_signals.h"

#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

namespace {

constexpr const char* kUsage = R"(usage: autonomoe <command> [options]

commands:
  train      train a model from a YAML config, or resume a run (--resume)
  eval       validation loss and perplexity of a checkpoint, or its accuracy on a task (--task)
  sample     generate text from a checkpoint (temperature, top-k, top-p; KV-cache decoding)
  export     write a checkpoint's weights as safetensors + config.json
  sweep      run a grid or list of config overrides (resumable) and tabulate the results
  validate   check a config; print the resolved settings and parameter counts
  config     print the documentation of every config key (--docs)
  version    print the version

`autonomoe <command> --help` describes a command's options.
)";

// The exit code once stdout is flushed: a result that could not be written (a full disk, a closed
// pipe) is an error, not a silent success.
int flush_stdout(int code) {
  errno = 0;
  if (std::fflush(stdout) == 0 && !std::ferror(stdout)) return code;
  const int e = errno;
  std::fprintf(stderr, "error: cannot write standard output: %s\n", std::strerror(e != 0 ? e : EIO));
  return code == 0 ? 1 : code;
}

}  // namespace

int main(int argc, char** argv) {
  am::block_stop_signals();                // a stop request before the trainer's guard is kept (train/stop_signals.h)
  am::reexec_with_passive_omp_wait(argv);  // once, before MPI and OpenMP start (cpu/threads.h)
  am::catch_early_stop_signals(argc >= 2 && (!std::strcmp(argv[1], "train") || !std::strcmp(argv[1], "sweep")));
  spdlog::set_pattern("[%H:%M:%S] %^%l%$ %v");
  am::init_distributed(&argc, &argv);  // MPI only when started by mpirun
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "help")) {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return flush_stdout(argc < 2 ? 2 : 0);
  }
  const std::string cmd = argv[1];
  return flush_stdout(am::run_guarded([&] {
    if (cmd == "train") return am::cmd_train(argc - 2, argv + 2);
    if (cmd == "eval") return am::cmd_eval(argc - 2, argv + 2);
    if (cmd == "export") return am::cmd_export(argc - 2, argv + 2);
    if (cmd == "validate") return am::cmd_validate(argc - 2, argv + 2);
    if (cmd == "config") return am::cmd_config(argc - 2, argv + 2);
    if (cmd == "sweep") return am::cmd_sweep(argc - 2, argv + 2);
    if (cmd == "sample") return am::cmd_sample(argc - 2, argv + 2);
    if (cmd == "version" || cmd == "--version") {
      std::puts("autonomoe 0.1.0");
      return 0;
    }
    std::fprintf(stderr, "error: unknown command '%s'\n\n%s", cmd.c_str(), kUsage);
    return 2;
  }));
}
