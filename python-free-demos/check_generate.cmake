# ssm_generate on a tiny checkpoint written by the model test:
#   cmake -DGEN=<ssm_generate> -DWRITER=<test_model> -DWORK=<dir> -P check_generate.cmake
# Checks: --ids generation prints N ids in range; greedy output is
# deterministic; a state saved after a prompt and loaded again continues
# exactly as the uninterrupted run; perplexity of an id file is finite and
# above 1 (a random model's value is arbitrary); --help exits 0; bad options exit 2 with one line on stderr;
# library errors (missing model, corrupt state) exit 1.
cmake_minimum_required(VERSION 3.25)
file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}")
set(M "${WORK}/tiny")
execute_process(COMMAND "${WRITER}" --write-tiny "${M}" RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "could not write the tiny checkpoint")
endif()

function(run expect_rc out_var)
  execute_process(COMMAND "${GEN}" ${ARGN} RESULT_VARIABLE rc
                  OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL expect_rc)
    string(REPLACE ";" " " shown "${ARGN}")
    message(FATAL_ERROR "ssm_generate ${shown}: exit ${rc}, want ${expect_rc}\n${out}\n${err}")
  endif()
  set(${out_var} "${out}" PARENT_SCOPE)
  set(${out_var}_err "${err}" PARENT_SCOPE)
endfunction()

run(0 help --help)
if(NOT help MATCHES "usage: ssm_generate")
  message(FATAL_ERROR "--help prints no usage")
endif()

# greedy: 8 ids, in [0, 37), twice the same
run(0 a -m "${M}" --ids "1 2 3 4" -n 8 --print-ids)
string(STRIP "${a}" a)
string(REPLACE " " ";" ids "${a}")
list(LENGTH ids n)
if(NOT n EQUAL 8)
  message(FATAL_ERROR "want 8 ids, got '${a}'")
endif()
foreach(i IN LISTS ids)
  if(NOT i MATCHES "^[0-9]+$" OR i GREATER_EQUAL 37)
    message(FATAL_ERROR "bad id ${i} in '${a}'")
  endif()
endforeach()
if(NOT a_err MATCHES "prefill 4 tokens" OR NOT a_err MATCHES "decode 8 tokens")
  message(FATAL_ERROR "no speed report on stderr: ${a_err}")
endif()
run(0 b -m "${M}" --ids "1 2 3 4" -n 8 --print-ids)
string(STRIP "${b}" b)
if(NOT a STREQUAL b)
  message(FATAL_ERROR "greedy runs differ: '${a}' vs '${b}'")
endif()

# prompt caching: state after "1 2 3", then "4" continues it
run(0 c -m "${M}" --ids "1 2 3" -n 0 --state-save "${WORK}/p.state")
run(0 d -m "${M}" --ids "4" -n 8 --print-ids --state-load "${WORK}/p.state")
string(STRIP "${d}" d)
if(NOT a STREQUAL d)
  message(FATAL_ERROR "restored state continues differently: '${a}' vs '${d}'")
endif()

# sampling: seeded, reproducible
run(0 s1 -m "${M}" --ids "5 6" -n 12 --temp 0.9 --top-p 0.9 --top-k 20 --min-p 0.01 --repeat-penalty 1.2 --seed 7)
run(0 s2 -m "${M}" --ids "5 6" -n 12 --temp 0.9 --top-p 0.9 --top-k 20 --min-p 0.01 --repeat-penalty 1.2 --seed 7)
if(NOT s1 STREQUAL s2)
  message(FATAL_ERROR "same seed, different samples: '${s1}' vs '${s2}'")
endif()

# perplexity of an id file
file(WRITE "${WORK}/ids.txt" "1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n")
run(0 p -m "${M}" --perplexity "${WORK}/ids.txt")
if(NOT p MATCHES "perplexity ([0-9.]+) over 15 tokens")
  message(FATAL_ERROR "no perplexity: ${p}")
endif()
if(CMAKE_MATCH_1 LESS_EQUAL 1)
  message(FATAL_ERROR "perplexity ${CMAKE_MATCH_1} <= 1")
endif()

# text in, text out: a byte-level BPE tokenizer.json (ids 0..29, the special
# <|endoftext|> 30) beside the model, whose 37 embedding rows are padded
# beyond the tokenizer: "hello world" is the 2 tokens "hello" "\u0120world",
# and only ids the tokenizer decodes may be sampled.
set(BL "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":true}")
file(WRITE "${M}/tokenizer.json" "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,\"added_tokens\":[{\"id\":30,\"content\":\"<|endoftext|>\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":false,\"special\":true}],\"normalizer\":null,\"pre_tokenizer\":${BL},\"post_processor\":null,\"decoder\":${BL},\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":null,\"continuing_subword_prefix\":null,\"end_of_word_suffix\":null,\"fuse_unk\":false,\"byte_fallback\":false,\"vocab\":{\"h\":0,\"e\":1,\"l\":2,\"o\":3,\"\\u0120\":4,\"w\":5,\"r\":6,\"d\":7,\"he\":8,\"ll\":9,\"llo\":10,\"hello\":11,\"\\u0120w\":12,\"or\":13,\"\\u0120wor\":14,\"\\u0120world\":15,\"ld\":16,\"a\":17,\"b\":18,\"c\":19,\"!\":20,\"\\u010a\":21,\"\\u0120\\u0120\":22,\"'\":23,\"s\":24,\"'s\":25,\"\\u0120hello\":26,\"1\":27,\"2\":28,\"12\":29},\"merges\":[\"h e\",\"l l\",\"\\u0120 w\",\"o r\",\"ll o\",\"he llo\",\"\\u0120w or\",\"l d\",\"\\u0120wor ld\",\"\\u0120 \\u0120\",\"' s\",\"\\u0120 hello\",\"1 2\"]}}")
foreach(seed 1 2 3 4 5)
  run(0 t -m "${M}" -p "hello world" -n 12 --temp 1.5 --seed ${seed})
  if(NOT t_err MATCHES "prefill 2 tokens")
    message(FATAL_ERROR "-p 'hello world' is not the 2 tokens of the tokenizer: ${t_err}")
  endif()
endforeach()
run(0 ti -m "${M}" -p "hello world" -n 12 --temp 1.5 --seed 1 --print-ids)
string(STRIP "${ti}" ti)
string(REPLACE " " ";" tids "${ti}")
foreach(i IN LISTS tids)
  if(NOT i MATCHES "^[0-9]+$" OR i GREATER_EQUAL 31)
    message(FATAL_ERROR "id ${i} beyond the tokenizer's 31 ids was sampled: '${ti}'")
  endif()
endforeach()
file(REMOVE "${M}/tokenizer.json")

# bad options: exit 2, one line on stderr, nothing on stdout
set(bad
  "--bogus"
  "-m"
  "--ids|1 2"
  "-m|${M}"
  "-m|${M}|--ids|1 2|-p|x"
  "-m|${M}|--ids|1 x"
  "-m|${M}|--ids|-1"
  "-m|${M}|--ids|1|-n|-1"
  "-m|${M}|--ids|1|-n|ten"
  "-m|${M}|--ids|1|--temp|-1"
  "-m|${M}|--ids|1|--top-p|1.5"
  "-m|${M}|--ids|1|--min-p|nan"
  "-m|${M}|--ids|1|--top-k|-2"
  "-m|${M}|--ids|1|--repeat-penalty|0"
  "-m|${M}|--ids|1|--seed|-3"
  "-m|${M}|--ids|99"
  "-m|${M}|-p|hello"
  "-m|${M}|--perplexity|${WORK}/ids.txt|--ids|1")
# One case per element, its words separated by '|' (a ';' would make
# separate cases of its words: set() joins its arguments into one list).
foreach(c IN LISTS bad)
  string(REPLACE "|" ";" words "${c}")
  execute_process(COMMAND "${GEN}" ${words} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  string(REPLACE "|" " " shown "${c}")
  string(STRIP "${err}" e)
  string(FIND "${e}" "\n" nl)
  if(NOT rc EQUAL 2 OR NOT out STREQUAL "" OR NOT nl EQUAL -1 OR NOT e MATCHES "^ssm_generate: ")
    message(FATAL_ERROR "'${shown}': exit ${rc} (want 2), stdout '${out}', stderr '${err}'")
  endif()
endforeach()

# library errors: exit 1
file(WRITE "${WORK}/bad.state" "SSMSTATE garbage")
foreach(c "-m;${WORK}/none;--ids;1"
          "-m;${M};--ids;1;--state-load;${WORK}/bad.state"
          "-m;${M};--ids;1;--state-load;${WORK}/missing.state"
          "-m;${M};--ids;1;-t;${WORK}/ids.txt")
  execute_process(COMMAND "${GEN}" ${c} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  string(REPLACE ";" " " shown "${c}")
  if(NOT rc EQUAL 1 OR NOT err MATCHES "^ssm_generate: ")
    message(FATAL_ERROR "'${shown}': exit ${rc} (want 1), stderr '${err}'")
  endif()
endforeach()
file(REMOVE_RECURSE "${WORK}")
