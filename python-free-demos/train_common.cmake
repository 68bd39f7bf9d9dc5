# Steps shared by check_train.cmake (S4D) and check_train_mamba.cmake
# (Mamba LM), included by both: each runs ${TRAIN} (ssm_train) with its
# own arguments and bounds, in the scratch directory ${WORK}.

# Fails unless -DTRAIN= and -DWORK= were given; makes ${WORK}.
function(train_setup script)
  foreach(v TRAIN WORK)
    if(NOT DEFINED ${v})
      message(FATAL_ERROR "${script}: -D${v}= missing")
    endif()
  endforeach()
  file(MAKE_DIRECTORY "${WORK}")
endfunction()

# ${TRAIN} <ARGN> at OMP_NUM_THREADS=1 and 2, writing ${WORK}/<csv><th>.csv
# and ${WORK}/<save><th>.safetensors; sets out1 and out2 (stdout) in the
# caller.  Every step is deterministic whatever the thread count, so the
# two loss curves must be identical byte for byte.
function(train_at_1_and_2 what csv save)
  foreach(th 1 2)
    execute_process(COMMAND ${CMAKE_COMMAND} -E env OMP_NUM_THREADS=${th}
                            "${TRAIN}" ${ARGN} --csv "${WORK}/${csv}${th}.csv"
                            --save "${WORK}/${save}${th}.safetensors"
                    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
    if(NOT rc EQUAL 0)
      message(FATAL_ERROR "${what} (${th} threads) exited with ${rc}\n${out}\n${err}")
    endif()
    message("${th} threads: ${out}")
    set(out${th} "${out}" PARENT_SCOPE)
  endforeach()
  train_same_files("${WORK}/${csv}1.csv" "${WORK}/${csv}2.csv"
                   "${what}: loss curves differ between 1 and 2 threads")
endfunction()

function(train_same_files a b msg)
  execute_process(COMMAND ${CMAKE_COMMAND} -E compare_files "${a}" "${b}"
                  RESULT_VARIABLE same)
  if(NOT same EQUAL 0)
    message(FATAL_ERROR "${msg}")
  endif()
endfunction()

# Fine-tuning from a saved model: ${TRAIN} <ARGN> (with --load) must start
# from the trained loss, its first loss below `below`.
function(train_load_starts_below below what)
  execute_process(COMMAND "${TRAIN}" ${ARGN}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0 OR NOT out MATCHES "first loss ([0-9.]+)")
    message(FATAL_ERROR "${what} --load exited with ${rc}\n${out}\n${err}")
  endif()
  if(NOT CMAKE_MATCH_1 LESS ${below})
    message(FATAL_ERROR "--load: first loss ${CMAKE_MATCH_1}, not the trained model's")
  endif()
endfunction()

# Bad options exit non-zero with one "ssm_train: ..." line on stderr.  Each
# element of the list variable `cases_var` is one case, its words separated
# by '|' (a ';' would make separate cases of its words: set() joins its
# arguments into one list); the command line is ${TRAIN} <BEFORE ...> <case
# words> <AFTER ...>, so a case's option overrides the same one in BEFORE.
function(train_bad_options cases_var)
  cmake_parse_arguments(PARSE_ARGV 1 A "" "" "BEFORE;AFTER")
  foreach(c IN LISTS ${cases_var})
    string(REPLACE "|" ";" words "${c}")
    string(REPLACE "|" " " shown "${c}")
    execute_process(COMMAND "${TRAIN}" ${A_BEFORE} ${words} ${A_AFTER}
                    RESULT_VARIABLE rc OUTPUT_VARIABLE o ERROR_VARIABLE e)
    string(STRIP "${e}" e)
    if(rc EQUAL 0 OR NOT e MATCHES "^ssm_train: [^\n]*$")
      message(FATAL_ERROR "'${shown}': exit ${rc}, stderr '${e}'")
    endif()
  endforeach()
endfunction()
