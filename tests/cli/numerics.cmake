# CLI tests of issue 10 points 6 (non-finite weights), 10 (results at full precision) and 11 (OpenMP
# on a busy machine). Included from tests/CMakeLists.txt after am_cli_test and the cli fixture's
# variables (AM_BIN, AM_SMALL, AM_DATA, AM_CLI_WORK, AM_CLI_DIR).

# am-poison-checkpoint: a copy of a checkpoint with one NaN weight and a matching manifest
add_executable(am-poison-checkpoint ${CMAKE_CURRENT_SOURCE_DIR}/tools/poison_checkpoint.cpp)
target_link_libraries(am-poison-checkpoint PRIVATE autonomoe_core)
target_include_directories(am-poison-checkpoint PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
target_compile_options(am-poison-checkpoint PRIVATE ${AM_WARNINGS})

set(AM_POISON $<TARGET_FILE:am-poison-checkpoint>)
set(AM_CKPT6 ${AM_CLI_WORK}/runs/small/checkpoints/step_00000006)
set(AM_NAN_TENSOR model.layers.1.block_sparse_moe.experts.2.w2.weight)
# AM_SMALL and AM_DATA as one string for bash -c (the globs quoted)
set(AM_SMALL_DATA_STR "--config ${AM_CLI_DIR}/small.yaml --set 'data.train=${AM_CLI_WORK}/data/synth_train_*.bin' --set 'data.val=${AM_CLI_WORK}/data/synth_val_*.bin'")

# 6: a float key that overflows fp32 is refused at validation
am_cli_test(config_float_overflow 1 "--set train.lr=1e39: train.lr: 1e39 does not fit a float"
            ${AM_BIN} validate ${AM_SMALL} --set train.lr=1e39)
# 6: an update that overflows stops the run, naming the tensor, and no checkpoint is written
am_cli_test(train_diverged_update 1
            "diverged: the AdamW update of step 1 \\(learning rate 1e\\+30\\) made tensor model.embed_tokens.weight non-finite.*no checkpoint written"
            bash -c "rm -rf ${AM_CLI_WORK}/diverge && ${AM_BIN} train ${AM_SMALL_DATA_STR} --set run.out_dir=${AM_CLI_WORK}/diverge --set train.lr=1e30 --set train.weight_decay=1e12 --set train.warmup_steps=0 --set checkpoint.every=1 || ( test ! -e ${AM_CLI_WORK}/diverge/small/checkpoints && echo no checkpoint written && exit 1 )")
# 6, on the CUDA simulator: the device flag read with the next step's losses (no checkpoint is due)
if(AUTONOMOE_CUDA_SIM)
  am_cli_test(sim_train_diverged_update 1
              "step +1/6 .*diverged: the AdamW update of step 1 \\(learning rate 1e\\+30\\) made tensor model.embed_tokens.weight non-finite.*no checkpoint written"
              bash -c "rm -rf ${AM_CLI_WORK}/diverge_sim && ${AM_BIN} train ${AM_SMALL_DATA_STR} --set run.backend=cuda --set run.out_dir=${AM_CLI_WORK}/diverge_sim --set train.lr=1e30 --set train.weight_decay=1e12 --set train.warmup_steps=0 --set checkpoint.every=0 || ( test ! -e ${AM_CLI_WORK}/diverge_sim/small/checkpoints && echo no checkpoint written && exit 1 )")
  set_tests_properties(cli_sim_train_diverged_update PROPERTIES LABELS sim)
endif()
# 6: eval and export refuse a checkpoint that holds a NaN weight (its checksums are right)
set(AM_OUT_eval "")
set(AM_OUT_export "--out ${AM_CLI_WORK}/poisoned_export/out")
foreach(cmd eval export)
  am_cli_test(${cmd}_nonfinite_checkpoint 1
              "model.safetensors: tensor ${AM_NAN_TENSOR} holds a non-finite value \\(nan at element 0\\)"
              bash -c "rm -rf ${AM_CLI_WORK}/poisoned_${cmd} && ${AM_POISON} ${AM_CKPT6} ${AM_CLI_WORK}/poisoned_${cmd} ${AM_NAN_TENSOR} && exec ${AM_BIN} ${cmd} --checkpoint ${AM_CLI_WORK}/poisoned_${cmd}/step_00000006 ${AM_OUT_${cmd}}")
endforeach()

# 10: eval --json: stdout holds one JSON object, the loss at full precision
am_cli_test(eval_json 0 "^\\{\"batches\":2,\"checkpoint\":\"[^\"]*step_00000006\",\"data\":.*\"loss\":[0-9]+\\.[0-9]{9,},\"perplexity\":[0-9]+\\.[0-9]+,\"seconds\":[0-9.e-]+,\"step\":6,\"tokens\":[0-9]+\\} ?$"
            bash -c "exec ${AM_BIN} eval --json --checkpoint ${AM_CKPT6} 2>/dev/null")

# 11: OpenMP waits passively unless the user chose otherwise (the binary re-executes itself once),
# and run.threads: 0 takes OMP_NUM_THREADS
am_cli_test(omp_passive_default 0
            "backend: cpu, F32, 1 threads \\(run.threads. OMP_WAIT_POLICY=PASSIVE \\(autonomoe's default\\)\\)"
            bash -c "rm -rf ${AM_CLI_WORK}/omp_default && exec env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT -u AM_OMP_WAIT_REEXEC ${AM_BIN} train ${AM_SMALL_DATA_STR} --set run.out_dir=${AM_CLI_WORK}/omp_default --set train.max_steps=2")
am_cli_test(omp_user_settings 0
            "backend: cpu, F32, 2 threads \\(OMP_NUM_THREADS. OMP_WAIT_POLICY=ACTIVE \\(from the environment\\)\\)"
            bash -c "rm -rf ${AM_CLI_WORK}/omp_user && exec env -u AM_OMP_WAIT_REEXEC OMP_WAIT_POLICY=ACTIVE OMP_NUM_THREADS=2 ${AM_BIN} train ${AM_SMALL_DATA_STR} --set run.out_dir=${AM_CLI_WORK}/omp_user --set train.max_steps=2 --set run.threads=0")
# the marker of the re-execution stops a second one (no loop): with it set and nothing else, the
# binary runs once with OpenMP's default
am_cli_test(omp_reexec_marker 0 "backend: cpu, F32, 1 threads \\(run.threads. OpenMP's default wait policy\\)"
            bash -c "rm -rf ${AM_CLI_WORK}/omp_marker && exec env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT AM_OMP_WAIT_REEXEC=1 ${AM_BIN} train ${AM_SMALL_DATA_STR} --set run.out_dir=${AM_CLI_WORK}/omp_marker --set train.max_steps=2")
# under scripts/launch.sh -np 2 without OMP_NUM_THREADS, run.threads: 0 gives each rank its share of
# the node's cores (here 2 cores, 2 ranks: 1 thread each, whether the launcher bound the ranks to a
# core or the binary divided them), never OMP_NUM_THREADS, and still waits passively
am_cli_test(omp_threads_launch_np2 0
            "backend: cpu, F32, 1 threads \\(([0-9]+ cores shared by 2 ranks on this node|1 cores available). OMP_WAIT_POLICY=PASSIVE"
            env -u OMP_NUM_THREADS -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT -u AM_OMP_WAIT_REEXEC
            AM_BUILD_DIR=${PROJECT_BINARY_DIR} ${PROJECT_SOURCE_DIR}/scripts/launch.sh -np 2
            ${AM_CLI_DIR}/small.yaml --set run.out_dir=${AM_CLI_WORK}/omp_np2 --set run.threads=0
            --set train.micro_batch_size=2 --set train.max_steps=2 ${AM_DATA})
