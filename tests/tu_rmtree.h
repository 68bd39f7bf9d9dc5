/*
 * tu_rmtree.h -- tu_rm_tree for the tests and the fuzz targets: without
 * Check (testutil.h), which the fuzz targets do not link.  Header-only.
 */
#ifndef SSM_TU_RMTREE_H
#define SSM_TU_RMTREE_H

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Removes dir and everything below it; 0 when dir is gone. */
static inline int tu_rm_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char p[1024];
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            int w = snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            if (w < 0 || (size_t)w >= sizeof p)
                continue;           /* too long: rmdir below fails */
            if (remove(p) != 0)     /* a non-empty directory */
                tu_rm_tree(p);
        }
        closedir(d);
    }
    return rmdir(dir);
}

#endif /* SSM_TU_RMTREE_H */
