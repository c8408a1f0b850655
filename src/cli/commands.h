// The subcommands of the autonomoe binary. Each takes the arguments after its name and returns
// the process exit code; errors are thrown (UserError / UsageError) and reported by main().
#pragma once

namespace am {

class Args;

int cmd_train(int argc, char** argv);
int cmd_eval(int argc, char** argv);
int cmd_eval_task(const Args& args);  // eval --task (cmd_eval_task.cpp)
int cmd_export(int argc, char** argv);
int cmd_validate(int argc, char** argv);
int cmd_config(int argc, char** argv);
int cmd_sweep(int argc, char** argv);
int cmd_sample(int argc, char** argv);  // cmd_sample.cpp

// Log lines (warnings, notes) to stderr from here on, in the same format (cmd_checkpoint.cpp):
// stdout then holds a command's result alone.
void log_to_stderr();

}  // namespace am
