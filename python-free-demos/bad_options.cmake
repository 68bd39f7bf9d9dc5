# Every bad command line makes ssm_demo exit with status 2 and one line on
# stderr that starts with "ssm_demo:", before any work (nothing on stdout).
#   cmake -DDEMO=<ssm_demo> -P bad_options.cmake
cmake_minimum_required(VERSION 3.25)
set(cases
  "--bogus"
  "--mode|fft"
  "--mode"
  "--task|nope"
  "--n|0"
  "--n|3"
  "--n|abc"
  "--n|12x"
  "--n|99999999999999999999"
  "--len|5"
  "--len=-4"
  "--seed|-1"
  "--seed|x"
  "--disc|euler"
  "--quiet=1"
  "--csv="
  "positional"
  "-n|8"
  "--csv|/nonexistent-dir/x.csv"
  "--plot|/nonexistent-dir/x.png")
set(failures "")
# One case per element, its words separated by '|' (a ';' would make
# separate cases of its words: set() joins its arguments into one list).
foreach(c IN LISTS cases)
  string(REPLACE "|" " " shown "${c}")
  string(REPLACE "|" ";" words "${c}")
  execute_process(COMMAND "${DEMO}" ${words} RESULT_VARIABLE rc
                  OUTPUT_VARIABLE out ERROR_VARIABLE err)
  string(REGEX MATCHALL "\n" nl "${err}")
  list(LENGTH nl nlines)
  if(NOT rc EQUAL 2)
    string(APPEND failures "'${shown}': exit ${rc}, expected 2\n")
  elseif(NOT err MATCHES "^ssm_demo: [^\n]+\n$" OR NOT nlines EQUAL 1)
    string(APPEND failures "'${shown}': stderr is not one 'ssm_demo: ...' line: [${err}]\n")
  elseif(NOT out STREQUAL "")
    string(APPEND failures "'${shown}': wrote to stdout: [${out}]\n")
  else()
    message("'${shown}' -> 2: ${err}")
  endif()
endforeach()
# --help succeeds and shows the usage.
execute_process(COMMAND "${DEMO}" --help RESULT_VARIABLE rc OUTPUT_VARIABLE out)
if(NOT rc EQUAL 0 OR NOT out MATCHES "usage: ssm_demo")
  string(APPEND failures "--help: exit ${rc}, output [${out}]\n")
endif()
if(failures)
  message(FATAL_ERROR "${failures}")
endif()
