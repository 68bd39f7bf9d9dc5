/*
 * tu_files.h -- file helpers shared by the test suites that read fixtures
 * or write scratch files: where tests/fixtures is, scratch directories,
 * whole-file reads and writes.  Header-only, static inline; include after
 * testutil.h (the helpers fail the running test, never return an error).
 */
#ifndef SSM_TU_FILES_H
#define SSM_TU_FILES_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "testutil.h"
#include "tu_rmtree.h"

/* tests/fixtures/<name>, found from this header's path (it lives in tests/,
 * as the fixtures do, whichever test includes it). */
static inline void tu_fixture_path(char *out, size_t cap, const char *name)
{
    const char *f = __FILE__, *sl = strrchr(f, '/');
    int dl = sl ? (int)(sl - f) : 1;
    snprintf(out, cap, "%.*s/fixtures/%s", dl, sl ? f : ".", name);
}

/* A fresh directory $TMPDIR/<tag>_XXXXXX (TMPDIR unset, empty or too long
 * for dir: /tmp). */
static inline void tu_make_tmpdir(char *dir, size_t cap, const char *tag)
{
    const char *t = getenv("TMPDIR");
    int w = snprintf(dir, cap, "%s/%s_XXXXXX", t && *t ? t : "/tmp", tag);
    if (w < 0 || (size_t)w >= cap)
        snprintf(dir, cap, "/tmp/%s_XXXXXX", tag);
    ck_assert_ptr_nonnull(mkdtemp(dir));
}

static inline void tu_write_bytes(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    if (n)
        ck_assert_uint_eq(fwrite(p, 1, n, f), n);
    ck_assert_int_eq(fclose(f), 0);
}

/* The whole file (NUL-terminated, *len bytes before the NUL); free() it. */
static inline unsigned char *tu_read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = tu_alloc((size_t)n + 1, 1);
    ck_assert_uint_eq(fread(b, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return b;
}

#endif /* SSM_TU_FILES_H */
