# Runs ssm_demo and checks its exit status and the metrics of its --csv
# output.  Invoked by CTest as
#   cmake -DDEMO=<ssm_demo> -DMODE=conv|recurrent|both -DN=32 -DLEN=1024
#         -DCSV=<file> -P check_demo.cmake
#
# Bounds (the demo's signals: delay band 4 cycles per window, reconstruct 3):
# a Legendre memory needs about pi coefficients per cycle of the window
# before it resolves a signal (Legendre series of a band-limited function
# converge once n > pi * cycles), and converges fast after that.
#   delay, n = N >= 32 (8 coefficients/cycle): NRMSE < 2e-3 for tau < theta,
#     < 5e-2 at tau = theta (the window's edge, P_n(-1), converges slowest);
#   delay, n = 8 (2/cycle, below pi): NRMSE > 0.3: it cannot recall;
#   reconstruct LegT, n = N (>= 10/cycle): rel. error < 2e-3;
#   reconstruct FouT: converges only like 1/n (the window's ends do not
#     match: Gibbs), < 0.1 at n = N and worse at n = 8 than at n = N;
#   copy: tokens 1 sample wide need about theta coefficients: n = N resolves
#     the window K + T + 1 = 9 (accuracy >= 0.95), not 257 (< 0.6);
#   selective-copy: the selective memory makes the data tokens adjacent, so
#     a linear readout recalls them (>= 0.9); the LTI memory cannot, by at
#     least 0.2 less;
#   --mode both: every conv vs recurrent difference < 1e-5.
cmake_minimum_required(VERSION 3.25)
foreach(v DEMO MODE N LEN CSV)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "check_demo.cmake: -D${v}= missing")
  endif()
endforeach()

execute_process(COMMAND "${DEMO}" --mode ${MODE} --n ${N} --len ${LEN} --csv "${CSV}"
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "ssm_demo --mode ${MODE} exited with ${rc}\n${out}\n${err}")
endif()
message("${out}")

set(failures "")
file(STRINGS "${CSV}" lines)
set(ndiff 0)
foreach(line IN LISTS lines)
  string(REPLACE "," ";" f "${line}")
  list(LENGTH f nf)
  if(NOT nf EQUAL 7)
    string(APPEND failures "bad CSV line: ${line}\n")
    continue()
  endif()
  list(GET f 0 task)
  list(GET f 1 mode)
  list(GET f 2 n)
  list(GET f 3 setting)
  list(GET f 4 metric)
  list(GET f 5 value)
  string(REGEX REPLACE "[ =]" "_" setting "${setting}")
  set("V_${task}_${mode}_${n}_${setting}_${metric}" "${value}")
  if(metric STREQUAL "mode_diff")
    math(EXPR ndiff "${ndiff} + 1")
    if(NOT value LESS 1e-5)
      string(APPEND failures "conv vs recurrent differ: ${line}\n")
    endif()
  endif()
endforeach()

# need(<key> <LESS|GREATER> <bound>)
function(need key op bound)
  if(NOT DEFINED V_${key})
    set(failures "${failures}missing from the CSV: ${key}\n" PARENT_SCOPE)
    return()
  endif()
  set(v "${V_${key}}")
  if(op STREQUAL "LESS")
    if(NOT v LESS bound)
      set(failures "${failures}${key} = ${v}, expected < ${bound}\n" PARENT_SCOPE)
    endif()
  else()
    if(NOT v GREATER bound)
      set(failures "${failures}${key} = ${v}, expected > ${bound}\n" PARENT_SCOPE)
    endif()
  endif()
endfunction()

set(modes "")
if(MODE STREQUAL "both")
  set(modes conv recurrent)
  if(ndiff LESS 10)
    string(APPEND failures "only ${ndiff} conv vs recurrent differences in the CSV\n")
  endif()
else()
  set(modes ${MODE})
endif()

foreach(m IN LISTS modes)
  foreach(tau 64 128 192)
    need("delay_${m}_${N}_tau_${tau}_nrmse" LESS 2e-3)
    need("delay_${m}_8_tau_${tau}_nrmse" GREATER 0.3)
  endforeach()
  need("delay_${m}_${N}_tau_256_nrmse" LESS 5e-2)
  need("copy_${m}_${N}_K_8_T_0_accuracy" GREATER 0.95)
  need("copy_${m}_${N}_K_8_T_248_accuracy" LESS 0.6)
  need("reconstruct_${m}_${N}_measure_legt_relerr" LESS 2e-3)
  need("reconstruct_${m}_${N}_measure_fout_relerr" LESS 0.1)
  if(DEFINED V_reconstruct_${m}_${N}_measure_fout_relerr)
    need("reconstruct_${m}_8_measure_fout_relerr" GREATER "${V_reconstruct_${m}_${N}_measure_fout_relerr}")
  endif()
  need("selective-copy_${m}_16_model_lti_accuracy" GREATER 0.2)
endforeach()

if(MODE STREQUAL "conv")
  if(DEFINED V_selective-copy_recurrent_16_model_selective_accuracy)
    string(APPEND failures "--mode conv ran the selective model\n")
  endif()
  string(FIND "${out}" "no convolution mode" pos)
  if(pos EQUAL -1)
    string(APPEND failures "--mode conv does not say the selective model has no convolution mode\n")
  endif()
else()
  need("selective-copy_recurrent_16_model_selective_accuracy" GREATER 0.9)
  need("selective-copy_recurrent_16_model_selective-lti_accuracy_gap" GREATER 0.2)
endif()

if(failures)
  message(FATAL_ERROR "ssm_demo --mode ${MODE}: metrics out of range:\n${failures}")
endif()
message("ssm_demo --mode ${MODE}: exit 0, all metrics in range")
