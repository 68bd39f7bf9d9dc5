/*
 * json.c -- the one entry into cJSON's parser for libssm.
 *
 * cJSON 1.7.15's cJSON_ParseWithLengthOpts stores the error position in a
 * static variable on every call (cJSON_GetErrorPtr reads it), so two
 * threads parsing at once race on it.  libssm never reads that variable,
 * but a data race is undefined behaviour: every parse in libssm goes
 * through this function, which holds a mutex around the call (headers and
 * configs are small; the cost is nil).  The trees themselves are private
 * to each caller.
 */
#include <pthread.h>

#include "io_internal.h"

static pthread_mutex_t ssmi_json_mutex = PTHREAD_MUTEX_INITIALIZER;

cJSON *ssmi_json_parse(const char *text, size_t len, const char **end)
{
    pthread_mutex_lock(&ssmi_json_mutex);
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, end, 0);
    pthread_mutex_unlock(&ssmi_json_mutex);
    return root;
}
