# CLI tests of zero-shot multiple-choice evaluation (issue 12 point 2; docs/evaluation.md): `eval
# --task` on a run trained on a tiny text corpus with its own tokenizer (task_fixture.sh), its
# errors, router-free selection, and eval.tasks' records in metrics.jsonl. Included from
# tests/CMakeLists.txt after am_cli_test (AM_BIN, AM_CLI_WORK).
# Its own directory beside cli_work/, not inside it: cli_fixture empties cli_work/ when it starts,
# and the two fixtures run in parallel.
set(AM_TASK_WORK ${CMAKE_CURRENT_BINARY_DIR}/cli_task_work)
add_test(NAME cli_task_fixture COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/cli/task_fixture.sh ${PROJECT_BINARY_DIR}
         ${PROJECT_SOURCE_DIR} ${AM_TASK_WORK})
set_tests_properties(cli_task_fixture PROPERTIES FIXTURES_SETUP task TIMEOUT 120)
set(AM_TASK_CKPT ${AM_TASK_WORK}/runs/text/checkpoints/step_00000006)
set(AM_TASKS ${AM_TASK_WORK}/tasks)

function(am_task_test name code regex)
  am_cli_test(${name} ${code} ${regex} ${ARGN})
  set_tests_properties(cli_${name} PROPERTIES FIXTURES_REQUIRED task)
endfunction()

am_task_test(task_eval 0 "on .*good.jsonl: acc [01]\\.[0-9]{4} \\([0-3]/3\\) \\| acc_norm [01]\\.[0-9]{4} \\([0-3]/3\\)"
             ${AM_BIN} eval --checkpoint ${AM_TASK_CKPT} --task ${AM_TASKS}/good.jsonl)
am_task_test(task_eval_json 0 "^\\{\"acc\":[0-9.e-]+,\"acc_norm\":[0-9.e-]+,.*\"examples\":2,.*\"task\":\"good\"\\} ?$"
             bash -c "${AM_BIN} eval --checkpoint ${AM_TASK_CKPT} --task ${AM_TASKS}/good.jsonl --limit 2 --batch 3 --json 2>/dev/null")
# several task files, the model loaded once: a line per file, in order
am_task_test(task_eval_two_files 0 "on .*good.jsonl: acc [01]\\.[0-9]{4} \\([0-3]/3\\).* on .*good.jsonl: acc [01]\\.[0-9]{4} \\([0-2]/2\\)"
             bash -c "${AM_BIN} eval --checkpoint ${AM_TASK_CKPT} --task ${AM_TASKS}/good.jsonl,${AM_TASKS}/good.jsonl --limit 3 && ${AM_BIN} eval --checkpoint ${AM_TASK_CKPT} --task ${AM_TASKS}/good.jsonl --limit 2")
am_task_test(task_samples_two_files 2 "--samples writes one task's examples, but --task names 2 files"
             ${AM_BIN} eval --checkpoint ${AM_TASK_CKPT} --task ${AM_TASKS}/good.jsonl,${AM_TASKS}/bad_label.jsonl --samples x.jsonl)
am_task_test(task_second_file_bad 1 "bad_label.jsonl:2: field 'label'"
             ${AM_BIN} eval --checkpoint ${AM_TASK_CKPT} --task ${AM_TASKS}/good.jsonl,${AM_TASKS}/bad_label.jsonl)
am_task_test(task_bad_label 1 "bad_label.jsonl:2: field 'label': 5 is out of range: the example has 2 choices"
             ${AM_BIN} eval --checkpoint ${AM_TASK_CKPT} --task ${AM_TASKS}/bad_label.jsonl)
am_task_test(task_missing_field 1 "no_choices.jsonl:3: field 'choices': missing"
             ${AM_BIN} eval --checkpoint ${AM_TASK_CKPT} --task ${AM_TASKS}/no_choices.jsonl)
am_task_test(task_bad_json 1 "bad_json.jsonl:1: invalid JSON"
             ${AM_BIN} eval --checkpoint ${AM_TASK_CKPT} --task ${AM_TASKS}/bad_json.jsonl)
am_task_test(task_flag_without_task 2 "--limit needs --task"
             ${AM_BIN} eval --checkpoint ${AM_TASK_CKPT} --limit 3)
am_task_test(task_with_data_flag 2 "--batches does not go with --task"
             ${AM_BIN} eval --checkpoint ${AM_TASK_CKPT} --task ${AM_TASKS}/good.jsonl --batches 3)
am_task_test(task_no_file 1 "task file '.*nope.jsonl' cannot be read"
             ${AM_BIN} eval --checkpoint ${AM_TASK_CKPT} --task ${AM_TASKS}/nope.jsonl)
am_task_test(task_no_tokenizer 1 "no tokenizer: the run's data .* has no dataset.json naming one.*--tokenizer FILE.model"
             ${AM_BIN} eval --checkpoint ${AM_TASK_CKPT} --task ${AM_TASKS}/good.jsonl --set data.train=/nonexistent/x_*.bin
             --set data.val=)
am_task_test(task_expert_choice 1 "multiple-choice scoring needs a causal model, but model.moe.selector.type is expert_choice"
             ${AM_BIN} eval --checkpoint ${AM_TASK_CKPT} --task ${AM_TASKS}/good.jsonl
             --set model.moe.selector.type=expert_choice --set model.moe.selector.capacity_factor=1)
# router-free selection (AoE Table 1): the router-trained checkpoint scored by activation norms;
# its per-example log-likelihoods (--samples) differ from the router's
am_task_test(task_router_free 0 "ignoring 2 tensor.s. this model does not use.*acc [01]\\.[0-9]{4} \\([0-3]/3\\).*scores differ.*\\{\"line\":1,\"label\":0,\"loglik\":\\[-[0-9.]+,-[0-9.]+\\],\"bytes\":\\[5,17\\],\"pred\":[01],\"pred_norm\":[01]\\}"
             bash -c "${AM_BIN} eval --checkpoint ${AM_TASK_CKPT} --task ${AM_TASKS}/good.jsonl --samples ${AM_TASK_WORK}/router.jsonl >/dev/null && ${AM_BIN} eval --checkpoint ${AM_TASK_CKPT} --task ${AM_TASKS}/good.jsonl --set model.moe.scorer.type=act_norm --set model.moe.scorer.node=glu --set model.moe.scorer.norm=l2 --samples ${AM_TASK_WORK}/free.jsonl && (cmp -s ${AM_TASK_WORK}/router.jsonl ${AM_TASK_WORK}/free.jsonl && echo scores equal || echo scores differ) && head -n 1 ${AM_TASK_WORK}/free.jsonl")
# eval.tasks during training (task_fixture.sh trains with eval.every 3, max_steps 6): a record at
# steps 3 and 6
am_task_test(task_metrics 0 "\"step\":3,\"task\":\"good\",\"type\":\"task\".*\"step\":6,\"task\":\"good\",\"type\":\"task\""
             bash -c "grep '\"type\":\"task\"' ${AM_TASK_WORK}/runs/text/metrics.jsonl")
# scoring during training changes nothing in training: the run with eval.tasks has the losses of the
# run without (task_fixture.sh trains both): 4 training and 2 validation losses
am_task_test(task_training_unchanged 0 "same losses: 6 records"
             bash -c "a=$(grep -Eo '\"(val_)?loss\":[^,]*' ${AM_TASK_WORK}/runs/text/metrics.jsonl) && b=$(grep -Eo '\"(val_)?loss\":[^,]*' ${AM_TASK_WORK}/runs/plain/metrics.jsonl) && test \"$a\" = \"$b\" && echo same losses: $(wc -l <<<\"$a\") records")
# the CUDA backend (on the simulator) scores as the CPU does, through the binary: fp32, 1e-5 relative
if(AUTONOMOE_CUDA_SIM)
  am_task_test(task_eval_cuda_sim 0 "scores match: 8 choices"
               bash -c "${AM_BIN} eval --checkpoint ${AM_TASK_CKPT} --task ${AM_TASKS}/good.jsonl --samples ${AM_TASK_WORK}/cpu.jsonl >/dev/null && ${AM_BIN} eval --checkpoint ${AM_TASK_CKPT} --task ${AM_TASKS}/good.jsonl --set run.backend=cuda --samples ${AM_TASK_WORK}/cuda.jsonl >/dev/null && python3 ${CMAKE_CURRENT_SOURCE_DIR}/cli/compare_samples.py ${AM_TASK_WORK}/cpu.jsonl ${AM_TASK_WORK}/cuda.jsonl 1e-5")
  set_tests_properties(cli_task_eval_cuda_sim PROPERTIES LABELS sim TIMEOUT 300)
endif()
# scripts/aoe_table1.sh with AM_TASK: the router-free table of multiple-choice accuracies
am_task_test(task_aoe_table1 0 "\\| glu \\| [01]\\.[0-9]{4} \\(acc_norm [01]\\.[0-9]{4}, .*\\| router \\(as trained\\) \\| [01]\\.[0-9]{4} \\(acc_norm"
             env AM_BUILD_DIR=${PROJECT_BINARY_DIR} AM_TASK=${AM_TASKS}/good.jsonl ${PROJECT_SOURCE_DIR}/scripts/aoe_table1.sh
             ${AM_TASK_CKPT})
