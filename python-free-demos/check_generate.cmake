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

# bad options: exit 2, one line on stderr, nothing on stdout
set(bad
  "--bogus"
  "-m"
  "--ids;1 2"
  "-m;${M}"
  "-m;${M};--ids;1 2;-p;x"
  "-m;${M};--ids;1 x"
  "-m;${M};--ids;-1"
  "-m;${M};--ids;1;-n;-1"
  "-m;${M};--ids;1;-n;ten"
  "-m;${M};--ids;1;--temp;-1"
  "-m;${M};--ids;1;--top-p;1.5"
  "-m;${M};--ids;1;--min-p;nan"
  "-m;${M};--ids;1;--top-k;-2"
  "-m;${M};--ids;1;--repeat-penalty;0"
  "-m;${M};--ids;1;--seed;-3"
  "-m;${M};--ids;99"
  "-m;${M};-p;hello"
  "-m;${M};--perplexity;${WORK}/ids.txt;--ids;1")
foreach(c IN LISTS bad)
  execute_process(COMMAND "${GEN}" ${c} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  string(REPLACE ";" " " shown "${c}")
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
