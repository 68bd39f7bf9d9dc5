# Runs ssm_train on a short fixed-seed training and checks that it learns:
#   cmake -DTRAIN=<ssm_train> -DWORK=<dir> -P check_train.cmake
# 1. OMP_NUM_THREADS=1 and 2: the loss curves (CSV) are identical byte for
#    byte (every step is deterministic, whatever the thread count).
# 2. The held-out MSE after 300 steps is below 0.05 (seed 1 gives 0.029;
#    a model that outputs zero scores about 0.92, the target's energy).
# 3. --save then --load: fine-tuning starts from the trained loss (first
#    loss below 0.2; a fresh model starts above 1).  --save also reloads the
#    file with ssm_s4d_layer_load (B folded into C) and checks that the layer
#    reproduces the model's held-out outputs (the demo exits 1 otherwise).
# 4. Bad options exit 2 with one line on stderr.
cmake_minimum_required(VERSION 3.25)
foreach(v TRAIN WORK)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "check_train.cmake: -D${v}= missing")
  endif()
endforeach()
file(MAKE_DIRECTORY "${WORK}")
set(args --steps 300 --len 128 --n 16 --seed 1 --quiet)
foreach(th 1 2)
  execute_process(COMMAND ${CMAKE_COMMAND} -E env OMP_NUM_THREADS=${th}
                          "${TRAIN}" ${args} --csv "${WORK}/loss${th}.csv"
                          --save "${WORK}/s4d${th}.safetensors"
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out${th} ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "ssm_train (${th} threads) exited with ${rc}\n${out${th}}\n${err}")
  endif()
  if(NOT out${th} MATCHES "reloaded by ssm_s4d_layer_load: worst channel error/bound")
    message(FATAL_ERROR "--save: no ssm_s4d_layer_load check line\n${out${th}}")
  endif()
  message("${th} threads: ${out${th}}")
endforeach()
execute_process(COMMAND ${CMAKE_COMMAND} -E compare_files "${WORK}/loss1.csv" "${WORK}/loss2.csv"
                RESULT_VARIABLE same)
if(NOT same EQUAL 0)
  message(FATAL_ERROR "loss curves differ between 1 and 2 threads")
endif()
if(NOT out1 MATCHES "held-out mse: ([0-9.eE+-]+)")
  message(FATAL_ERROR "no held-out mse line")
endif()
set(mse ${CMAKE_MATCH_1})
if(NOT mse LESS 0.05)
  message(FATAL_ERROR "held-out mse ${mse} not below 0.05 after 300 steps")
endif()
execute_process(COMMAND "${TRAIN}" --steps 10 --len 128 --n 16 --lr 0.001 --quiet
                        --load "${WORK}/s4d1.safetensors"
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0 OR NOT out MATCHES "first loss ([0-9.]+)")
  message(FATAL_ERROR "ssm_train --load exited with ${rc}\n${out}\n${err}")
endif()
if(NOT CMAKE_MATCH_1 LESS 0.2)
  message(FATAL_ERROR "--load: first loss ${CMAKE_MATCH_1}, not the trained model's")
endif()
set(bad "--bogus" "--steps;0" "--steps;x" "--n" "--len;8" "--tau;999" "--lr;0" "--lr;nan"
        "--csv=" "positional" "--load;${WORK}/missing.safetensors"
        "--csv;/nonexistent-dir/x.csv" "--plot;${WORK}/p.png" "--csv;${WORK}/c.csv;--plot;/nonexistent-dir/x.png")
foreach(c IN LISTS bad)
  execute_process(COMMAND "${TRAIN}" ${c} --steps 1 --len 16 --n 1 --quiet
                  RESULT_VARIABLE rc OUTPUT_VARIABLE o ERROR_VARIABLE e)
  string(STRIP "${e}" e)
  string(REPLACE ";" " " shown "${c}")
  if(rc EQUAL 0 OR NOT e MATCHES "^ssm_train: [^\n]*$")
    message(FATAL_ERROR "'${shown}': exit ${rc}, stderr '${e}'")
  endif()
endforeach()
message("ssm_train: curves identical at 1 and 2 threads, held-out mse ${mse} < 0.05, --load ok")
