/*
 * fuzz_config.c -- libFuzzer target for config.json parsing of language
 * models (src/models/config.c): any bytes give SSM_OK with every size in
 * range, or SSM_ERR_FORMAT / SSM_ERR_NOMEM; never a crash, a leak or a read
 * outside the input (the input is not NUL-terminated).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "models/model_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* An exact-size copy so that ASan sees any read past the end. */
    char *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    if (size) memcpy(buf, data, size);
    ssmi_model_cfg cfg;
    ssm_status st = ssmi_model_config_parse(buf, size, &cfg);
    if (st == SSM_OK) {
        /* What the loader relies on. */
        if (cfg.d_model < 1 || cfg.n_layer < 1 || cfg.vocab < 1 ||
            cfg.vocab_padded < cfg.vocab || cfg.d_state < 0 || cfg.d_conv < 0 ||
            cfg.d_inner < 0 || cfg.dt_rank < 0 || !(cfg.eps > 0))
            abort();
    } else if (st != SSM_ERR_FORMAT && st != SSM_ERR_NOMEM) {
        abort();
    }
    free(buf);
    return 0;
}
