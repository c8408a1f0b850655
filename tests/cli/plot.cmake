# CLI tests of scripts/plot.py (issue 12 point 4): the plots of a real run and of a real sweep, each
# PNG checked by an independent reader (tests/cli/png_check.py), and the errors on bad input.
# Included from tests/CMakeLists.txt after am_cli_test and the cli fixture's variables.
set(AM_PLOT_SH ${CMAKE_CURRENT_SOURCE_DIR}/cli/plot.sh)
set(AM_PLOT ${PROJECT_SOURCE_DIR}/scripts/plot.py)
foreach(mode run sweep)
  add_test(NAME cli_plot_${mode} COMMAND ${AM_PLOT_SH} ${mode} ${AM_BIN} ${PROJECT_SOURCE_DIR} ${AM_CLI_WORK})
  set_tests_properties(cli_plot_${mode} PROPERTIES FIXTURES_REQUIRED cli SKIP_RETURN_CODE 77 TIMEOUT 300)
endforeach()

# errors: each names the path, exit 1 (argparse's own errors: 2). Each test makes the broken inputs
# (plot.sh bad) in its own folder, cli_work/plot_bad_<name>, so that the tests can run in parallel.
function(am_plot_error name regex)
  am_cli_test(plot_${name} 1 ${regex}
              bash -c "${AM_PLOT_SH} bad ${AM_BIN} ${PROJECT_SOURCE_DIR} ${AM_CLI_WORK}/plot_bad_${name} && exec \"$@\"" -- ${ARGN})
endfunction()
am_plot_error(missing_dir "plot: error: '.*/plot_bad_missing_dir/nope' does not exist"
              ${AM_PLOT} ${AM_CLI_WORK}/plot_bad_missing_dir/nope)
am_plot_error(no_metrics "plot: error: '.*/no_metrics/metrics.jsonl' not found: a run directory holds metrics.jsonl"
              ${AM_PLOT} ${AM_CLI_WORK}/plot_bad_no_metrics/no_metrics)
am_plot_error(empty_run "plot: error: '.*/empty_run/metrics.jsonl' holds no training record"
              ${AM_PLOT} ${AM_CLI_WORK}/plot_bad_empty_run/empty_run)
am_plot_error(val_only "plot: error: '.*/val_only/metrics.jsonl' holds no training record"
              ${AM_PLOT} ${AM_CLI_WORK}/plot_bad_val_only/val_only)
am_plot_error(sweep_no_val_loss "no validation loss for 2 point.s.: load_balance=0,d_low=8 .failed., load_balance=0,d_low=16 .pending.*plot: error: no point of '.*/sweep_failed/results.csv' has a final_val_loss"
              ${AM_PLOT} ${AM_CLI_WORK}/plot_bad_sweep_no_val_loss/sweep_failed)
am_plot_error(sweep_unknown_x "plot: error: --x lr is not one of the swept keys of '.*/sweep_failed/results.csv': model.moe.aux.load_balance, model.moe.expert.d_low"
              ${AM_PLOT} ${AM_CLI_WORK}/plot_bad_sweep_unknown_x/sweep_failed --x lr)
am_plot_error(x_on_run "plot: error: --x is for sweep directories, and '.*/empty_run' has no results.csv"
              ${AM_PLOT} ${AM_CLI_WORK}/plot_bad_x_on_run/empty_run --x d_low)
am_plot_error(no_matplotlib "plot: error: matplotlib is not installed for .*apt-get install python3-matplotlib"
              env PYTHONPATH=${AM_CLI_WORK}/plot_bad_no_matplotlib/fake ${AM_PLOT} ${AM_CLI_WORK}/runs/small)
