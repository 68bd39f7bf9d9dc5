/*
 * fuzz_tokenizer_load.c -- libFuzzer target: arbitrary bytes as a
 * tokenizer.json.  Loading must return a status (never crash, leak or read
 * out of bounds); a tokenizer that loads must encode and decode a few
 * texts with every id assigned.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "text/text_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 20)) return 0;
    ssm_tokenizer *t = NULL;
    ssm_status st = ssmi_tokenizer_load_mem(&t, (const char *)data, size);
    if (st != SSM_OK) { if (t) abort(); return 0; }
    static const char *texts[] = { "hello world", "  a\n\n b\tc ", "I'm 12 \xc3\xa9\xe6\x97\xa5 \xf0\x9f\x98\x80",
                                   "<|endoftext|>", "" };
    int64_t V = ssm_tokenizer_vocab_size(t);
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        int32_t ids[256];
        int64_t n = -1;
        st = ssm_tokenizer_encode(t, texts[i], (int64_t)strlen(texts[i]), ids, 256, &n);
        if (st != SSM_OK) continue;                 /* e.g. a missing unk token */
        if (n < 0) abort();
        for (int64_t k = 0; k < n && k < 256; k++) if (ids[k] < 0 || ids[k] >= V) abort();
        char out[4096];
        int64_t nb;
        if (n <= 256 && ssm_tokenizer_decode(t, ids, n, out, sizeof out, &nb) != SSM_OK) abort();
    }
    ssm_tokenizer_destroy(t);
    return 0;
}
