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
include(${CMAKE_CURRENT_LIST_DIR}/train_common.cmake)
train_setup(check_train.cmake)
set(args --steps 300 --len 128 --n 16 --seed 1 --quiet)
train_at_1_and_2(ssm_train loss s4d ${args})
foreach(th 1 2)
  if(NOT out${th} MATCHES "reloaded by ssm_s4d_layer_load: worst channel error/bound")
    message(FATAL_ERROR "--save: no ssm_s4d_layer_load check line\n${out${th}}")
  endif()
endforeach()
if(NOT out1 MATCHES "held-out mse: ([0-9.eE+-]+)")
  message(FATAL_ERROR "no held-out mse line")
endif()
set(mse ${CMAKE_MATCH_1})
if(NOT mse LESS 0.05)
  message(FATAL_ERROR "held-out mse ${mse} not below 0.05 after 300 steps")
endif()
train_load_starts_below(0.2 ssm_train --steps 10 --len 128 --n 16 --lr 0.001 --quiet
                        --load "${WORK}/s4d1.safetensors")
set(bad "--bogus" "--steps|0" "--steps|x" "--n" "--len|8" "--tau|999" "--lr|0" "--lr|nan"
        "--csv=" "positional" "--load|${WORK}/missing.safetensors"
        "--csv|/nonexistent-dir/x.csv" "--plot|${WORK}/p.png"
        "--csv|${WORK}/c.csv|--plot|/nonexistent-dir/x.png")
train_bad_options(bad BEFORE --steps 1 --len 16 --n 1 --quiet)
message("ssm_train: curves identical at 1 and 2 threads, held-out mse ${mse} < 0.05, --load ok")
