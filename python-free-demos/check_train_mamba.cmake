# Runs ssm_train --model mamba on a short fixed-seed training and checks
# that the Mamba language model learns selective copying:
#   cmake -DTRAIN=<ssm_train> -DWORK=<dir> -P check_train_mamba.cmake
# 1. OMP_NUM_THREADS=1 and 2: the loss curves (CSV) are identical byte for
#    byte (every product is a fixed tiling, every sum in a fixed order).
# 2. Held-out accuracy on the answer tokens after 300 steps (context 16,
#    3 tokens to copy, 8 values: chance 0.125) is above 0.8 (seed 1 gives
#    0.98; the model at step 0 scores about chance).
# 3. --save then --load: fine-tuning starts from the trained loss (first
#    loss below 0.5; a fresh model starts at about ln 10 = 2.3).
# 4. Bad Mamba options exit 2 with one line on stderr.
cmake_minimum_required(VERSION 3.25)
include(${CMAKE_CURRENT_LIST_DIR}/train_common.cmake)
train_setup(check_train_mamba.cmake)
set(args --model mamba --task selective-copy --steps 300 --seed 1 --quiet)
train_at_1_and_2("ssm_train --model mamba" mloss mamba ${args})
train_same_files("${WORK}/mamba1.safetensors" "${WORK}/mamba2.safetensors"
                 "trained weights differ between 1 and 2 threads")
if(NOT out1 MATCHES "held-out accuracy: ([0-9.]+)")
  message(FATAL_ERROR "no held-out accuracy line")
endif()
set(acc ${CMAKE_MATCH_1})
if(NOT acc GREATER 0.8)
  message(FATAL_ERROR "held-out accuracy ${acc} not above 0.8 after 300 steps (chance 0.125)")
endif()
train_load_starts_below(0.5 "ssm_train --model mamba" --model mamba --steps 5 --lr 0.0005
                        --quiet --load "${WORK}/mamba1.safetensors")
set(bad "--model|rnn" "--task|delay" "--task|bogus" "--d-model|0" "--layers|65" "--d-state|x"
        "--copies|16" "--values|1" "--evals|0" "--len|5000" "--len|4"
        "--load|${WORK}/missing.safetensors" "--layers|3|--load|${WORK}/mamba1.safetensors"
        "--d-model|16|--load|${WORK}/mamba1.safetensors")
train_bad_options(bad BEFORE --model mamba --steps 1 --quiet)
# --task selective-copy with the S4D model is refused too
execute_process(COMMAND "${TRAIN}" --task selective-copy --steps 1 --quiet
                RESULT_VARIABLE rc ERROR_VARIABLE e)
if(rc EQUAL 0)
  message(FATAL_ERROR "--task selective-copy without --model mamba accepted")
endif()
message("ssm_train --model mamba: curves and weights identical at 1 and 2 threads, held-out accuracy ${acc} > 0.8, --load ok")
