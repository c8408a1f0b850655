# CLI tests of `autonomoe sample` (issue 12 point 1; docs/sampling.md) on the run trained on a tiny
# text corpus with its own tokenizer (task_fixture.sh: the `task` fixture): the text, its
# determinism, the prompt file, and the errors. Included from tests/CMakeLists.txt after
# tasks.cmake (AM_BIN, AM_TASK_CKPT, AM_TASK_WORK, am_task_test).
set(AM_SAMPLE ${AM_BIN} sample --checkpoint ${AM_TASK_CKPT})
set(AM_SAMPLE_SH "${AM_BIN} sample --checkpoint ${AM_TASK_CKPT}")  # one string, for bash -c
# the prompt, then the continuation
am_task_test(sample_text 0 "^the cat sat [a-z]"
             bash -c "${AM_SAMPLE_SH} --prompt 'the cat sat' --max-tokens 12 --seed 3 2>/dev/null")
# the same seed gives the same text; another seed another; greedy twice the same
am_task_test(sample_deterministic 0 "same text for a seed, another for another seed, greedy repeats"
             bash -c "s='${AM_SAMPLE_SH} --prompt the --max-tokens 24' && a=$($s --seed 5) && b=$($s --seed 5) && c=$($s --seed 6) && g=$($s --temperature 0) && h=$($s --temperature 0 --seed 9) && test \"$a\" = \"$b\" && test \"$a\" != \"$c\" && test \"$g\" = \"$h\" && echo same text for a seed, another for another seed, greedy repeats")
am_task_test(sample_prompt_file 0 "^the dog ran"
             bash -c "printf 'the dog ran' >${AM_TASK_WORK}/prompt.txt && ${AM_SAMPLE_SH} --prompt-file ${AM_TASK_WORK}/prompt.txt --top-k 5 --top-p 0.9 --temperature 0.7 --max-tokens 8 2>/dev/null")
am_task_test(sample_help 0 "--temperature.*0 = greedy"
             ${AM_BIN} sample --help)
am_task_test(sample_missing_checkpoint 1 "checkpoint '.*nope' does not exist"
             ${AM_BIN} sample --checkpoint ${AM_TASK_WORK}/nope --prompt the)
am_task_test(sample_no_checkpoint_flag 2 "--checkpoint is required"
             ${AM_BIN} sample --prompt the)
am_task_test(sample_bad_temperature 1 "--temperature -1 is out of range.*temperature >= 0"
             ${AM_SAMPLE} --prompt the --temperature -1)
am_task_test(sample_bad_top_p 1 "--top-p 1.5 is out of range.*0 < top-p <= 1"
             ${AM_SAMPLE} --prompt the --top-p 1.5)
am_task_test(sample_zero_top_p 1 "--top-p 0 is out of range"
             ${AM_SAMPLE} --prompt the --top-p 0)
am_task_test(sample_bad_max_tokens 2 "--max-tokens"
             ${AM_SAMPLE} --prompt the --max-tokens 0)
am_task_test(sample_two_prompts 2 "--prompt and --prompt-file both given"
             ${AM_SAMPLE} --prompt the --prompt-file x.txt)
am_task_test(sample_expert_choice 1 "generation needs a causal model, but model.moe.selector.type is expert_choice"
             ${AM_SAMPLE} --prompt the --set model.moe.selector.type=expert_choice
             --set model.moe.selector.capacity_factor=1)
am_task_test(sample_prompt_too_long 1 "the prompt is [0-9]+ tokens long .* model.max_seq_len is 32"
             ${AM_SAMPLE} --prompt "the cat sat on a mat the cat sat on a mat the cat sat on a mat the cat sat on a mat the cat sat on a mat the cat sat on a mat the cat sat on a mat the cat sat on a mat the cat sat on a mat")
# capacity drops: one token at a time is never dropped; said in a warning
am_task_test(sample_capacity_note 0 "capacity_factor is 1.25: decoding routes one token at a time.*the cat"
             ${AM_SAMPLE} --prompt "the cat" --max-tokens 4 --set model.moe.selector.capacity_factor=1.25)
# the CUDA backend (on the simulator) decodes as the CPU does, through the binary: greedy text equal
if(AUTONOMOE_CUDA_SIM)
  am_task_test(sample_cuda_sim 0 "same greedy text"
               bash -c "a=$(${AM_SAMPLE_SH} --prompt 'the cat' --temperature 0 --max-tokens 16) && b=$(${AM_SAMPLE_SH} --prompt 'the cat' --temperature 0 --max-tokens 16 --set run.backend=cuda) && test \"$a\" = \"$b\" && echo same greedy text")
  set_tests_properties(cli_sample_cuda_sim PROPERTIES LABELS sim TIMEOUT 300)
endif()
