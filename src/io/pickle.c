/*
 * pickle.c -- a restricted pickle machine for the data.pkl of torch.save.
 *
 * Python's pickle is a small stack language that can import and call any
 * function (GLOBAL + REDUCE), which is why loading an untrusted
 * pytorch_model.bin with pickle runs code.  This machine implements only
 * the opcodes a state dict uses (protocols 2 to 5) as DATA operations, and
 * GLOBAL/STACK_GLOBAL resolve only these names, to markers, never to code:
 *
 *   collections OrderedDict            -> REDUCE with () gives an empty dict
 *   torch._utils _rebuild_tensor_v2    -> REDUCE gives a tensor description
 *   torch._utils _rebuild_parameter    -> REDUCE gives its tensor argument
 *   torch FloatStorage / HalfStorage / BFloat16Storage
 *                                      -> dtype of a persistent id
 *
 * A persistent id (BINPERSID) must be the tuple torch writes,
 * ('storage', <storage class>, key, location, numel).  BUILD is accepted
 * only on a dict (a state dict's OrderedDict carries its _metadata there;
 * the state is data and is dropped).  Any other global, callable or opcode
 * is SSM_ERR_FORMAT.  Memory is one arena freed at the end, bounded by a
 * multiple of the input size; the stack, mark stack and memo are bounded.
 */
#include <stdlib.h>
#include <string.h>

#include "io_internal.h"

enum { V_NONE, V_BOOL, V_INT, V_FLOAT, V_STR, V_TUPLE, V_LIST, V_DICT,
       V_GLOBAL, V_STORAGE, V_TENSOR };

enum { G_ORDERED_DICT, G_REBUILD_V2, G_REBUILD_PARAM, G_FLOAT_ST, G_HALF_ST,
       G_BF16_ST };

static const struct {
    const char *module, *name;
    int id;
} allowed[] = {
    {"collections", "OrderedDict", G_ORDERED_DICT},
    {"torch._utils", "_rebuild_tensor_v2", G_REBUILD_V2},
    {"torch._utils", "_rebuild_parameter", G_REBUILD_PARAM},
    {"torch", "FloatStorage", G_FLOAT_ST},
    {"torch", "HalfStorage", G_HALF_ST},
    {"torch", "BFloat16Storage", G_BF16_ST},
};

typedef struct pv pv;
struct pv {
    int kind;
    union {
        int64_t i;
        double  f;
        struct { const char *s; size_t n; } str;
        struct { pv **it; int64_t n, cap; } seq;        /* tuple, list, dict (2n) */
        int g;
        struct { ssm_dtype dtype; const char *key; int64_t numel; } st;
        struct {
            pv     *storage;
            int64_t offset;
            int     ndim;
            int64_t shape[SSM_TENSOR_MAX_DIMS], stride[SSM_TENSOR_MAX_DIMS];
        } t;
    } u;
};

typedef struct chunk {
    struct chunk *next;
    size_t        used, cap;
    max_align_t   data[];
} chunk;

typedef struct vm {
    const unsigned char *p, *end;
    chunk  *arena;
    size_t  budget;         /* arena bytes still allowed */
    int     over;           /* the budget ran out (a hostile pickle) */
    pv    **stack;
    int64_t sp, scap, smax;
    int64_t *marks;
    int64_t nm, mcap;
    pv    **memo;
    int64_t memo_cap, memo_count, memo_max;
} vm;

#define BAD() SSM_FAIL(SSM_ERR_FORMAT)

static void *arena_alloc(vm *m, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (n > m->budget) {
        m->over = 1;
        return NULL;
    }
    m->budget -= n;
    if (!m->arena || m->arena->cap - m->arena->used < n) {
        size_t cap = n > 65536 ? n : 65536;
        chunk *c = malloc(sizeof *c + cap);
        if (!c)
            return NULL;
        c->next = m->arena;
        c->used = 0;
        c->cap = cap;
        m->arena = c;
    }
    void *r = (unsigned char *)m->arena->data + m->arena->used;
    m->arena->used += n;
    return r;
}

static pv *new_v(vm *m, int kind)
{
    pv *v = arena_alloc(m, sizeof *v);
    if (v) {
        memset(v, 0, sizeof *v);
        v->kind = kind;
    }
    return v;
}

/* Append x to a tuple/list/dict's item array (grown inside the arena). */
static int seq_push(vm *m, pv *s, pv *x)
{
    if (s->u.seq.n == s->u.seq.cap) {
        int64_t cap = s->u.seq.cap ? 2 * s->u.seq.cap : 8;
        pv **it = arena_alloc(m, (size_t)cap * sizeof *it);
        if (!it)
            return 0;
        if (s->u.seq.n)
            memcpy(it, s->u.seq.it, (size_t)s->u.seq.n * sizeof *it);
        s->u.seq.it = it;
        s->u.seq.cap = cap;
    }
    s->u.seq.it[s->u.seq.n++] = x;
    return 1;
}

static ssm_status push(vm *m, pv *v)
{
    if (!v)
        return SSM_FAIL(SSM_ERR_NOMEM);
    if (m->sp == m->scap) {
        if (m->sp >= m->smax)
            return BAD();
        int64_t cap = m->scap ? 2 * m->scap : 64;
        pv **s = realloc(m->stack, (size_t)cap * sizeof *s);
        if (!s)
            return SSM_FAIL(SSM_ERR_NOMEM);
        m->stack = s;
        m->scap = cap;
    }
    m->stack[m->sp++] = v;
    return SSM_OK;
}

/* Items above the innermost mark (the mark itself is not on the stack). */
static int64_t mark_base(const vm *m)
{
    return m->nm > 0 ? m->marks[m->nm - 1] : 0;
}

static pv *pop(vm *m)
{
    if (m->sp <= mark_base(m))
        return NULL;
    return m->stack[--m->sp];
}

static pv *top(vm *m)
{
    return m->sp > mark_base(m) ? m->stack[m->sp - 1] : NULL;
}

static int take(vm *m, size_t n, const unsigned char **q)
{
    if ((size_t)(m->end - m->p) < n)
        return 0;
    *q = m->p;
    m->p += n;
    return 1;
}

static pv *new_str(vm *m, const unsigned char *s, size_t n)
{
    if (!ssmi_utf8_ok(s, n))
        return NULL;
    pv *v = new_v(m, V_STR);
    char *c = v ? arena_alloc(m, n + 1) : NULL;
    if (!c)
        return NULL;
    memcpy(c, s, n);
    c[n] = 0;
    v->u.str.s = c;
    v->u.str.n = n;
    return v;
}

static int is_str(const pv *v, const char *s)
{
    return v && v->kind == V_STR && strcmp(v->u.str.s, s) == 0;
}

static pv *resolve_global(vm *m, const char *mod, size_t ml, const char *name, size_t nl)
{
    for (size_t k = 0; k < sizeof allowed / sizeof allowed[0]; k++)
        if (strlen(allowed[k].module) == ml && memcmp(allowed[k].module, mod, ml) == 0 &&
            strlen(allowed[k].name) == nl && memcmp(allowed[k].name, name, nl) == 0) {
            pv *g = new_v(m, V_GLOBAL);
            if (g)
                g->u.g = allowed[k].id;
            return g;
        }
    return NULL;
}

/* ints as a tuple of int64 into dims (ndim <= max) */
static int int_tuple(const pv *t, int64_t *dims, int *ndim)
{
    if (!t || t->kind != V_TUPLE || t->u.seq.n > SSM_TENSOR_MAX_DIMS)
        return 0;
    for (int64_t k = 0; k < t->u.seq.n; k++) {
        if (t->u.seq.it[k]->kind != V_INT)
            return 0;
        dims[k] = t->u.seq.it[k]->u.i;
    }
    *ndim = (int)t->u.seq.n;
    return 1;
}

static ssm_status do_reduce(vm *m)
{
    pv *args = pop(m), *fn = pop(m);
    if (!args || !fn || args->kind != V_TUPLE || fn->kind != V_GLOBAL)
        return BAD();
    int64_t na = args->u.seq.n;
    pv **a = args->u.seq.it;
    switch (fn->u.g) {
    case G_ORDERED_DICT:
        if (na != 0)
            return BAD();
        return push(m, new_v(m, V_DICT));
    case G_REBUILD_V2: {
        /* (storage, storage_offset, size, stride, requires_grad,
         *  backward_hooks[, metadata]) */
        if (na != 6 && na != 7)
            return BAD();
        if (a[0]->kind != V_STORAGE || a[1]->kind != V_INT ||
            a[4]->kind != V_BOOL || a[5]->kind != V_DICT ||
            (na == 7 && a[6]->kind != V_DICT))
            return BAD();
        pv *t = new_v(m, V_TENSOR);
        if (!t)
            return SSM_FAIL(SSM_ERR_NOMEM);
        int nd_stride;
        t->u.t.storage = a[0];
        t->u.t.offset = a[1]->u.i;
        if (!int_tuple(a[2], t->u.t.shape, &t->u.t.ndim) ||
            !int_tuple(a[3], t->u.t.stride, &nd_stride) || nd_stride != t->u.t.ndim)
            return BAD();
        return push(m, t);
    }
    case G_REBUILD_PARAM:
        /* (data, requires_grad, backward_hooks) */
        if (na != 3 || a[0]->kind != V_TENSOR || a[1]->kind != V_BOOL ||
            a[2]->kind != V_DICT)
            return BAD();
        return push(m, a[0]);
    default:
        return BAD();   /* storage classes are never called */
    }
}

static ssm_status do_persid(vm *m)
{
    pv *t = pop(m);
    if (!t || t->kind != V_TUPLE || t->u.seq.n != 5)
        return BAD();
    pv **a = t->u.seq.it;
    if (!is_str(a[0], "storage") || a[1]->kind != V_GLOBAL ||
        a[2]->kind != V_STR || a[3]->kind != V_STR || a[4]->kind != V_INT ||
        a[4]->u.i < 0)
        return BAD();
    pv *s = new_v(m, V_STORAGE);
    if (!s)
        return SSM_FAIL(SSM_ERR_NOMEM);
    switch (a[1]->u.g) {
    case G_FLOAT_ST: s->u.st.dtype = SSM_DTYPE_F32;  break;
    case G_HALF_ST:  s->u.st.dtype = SSM_DTYPE_F16;  break;
    case G_BF16_ST:  s->u.st.dtype = SSM_DTYPE_BF16; break;
    default:         return BAD();
    }
    s->u.st.key = a[2]->u.str.s;
    s->u.st.numel = a[4]->u.i;
    return push(m, s);
}

static ssm_status memo_put(vm *m, uint64_t idx)
{
    pv *v = top(m);
    if (!v || idx >= (uint64_t)m->memo_max)
        return BAD();
    if ((int64_t)idx >= m->memo_cap) {
        int64_t cap = m->memo_cap ? m->memo_cap : 64;
        while (cap <= (int64_t)idx)
            cap *= 2;
        pv **nm = realloc(m->memo, (size_t)cap * sizeof *nm);
        if (!nm)
            return SSM_FAIL(SSM_ERR_NOMEM);
        memset(nm + m->memo_cap, 0, (size_t)(cap - m->memo_cap) * sizeof *nm);
        m->memo = nm;
        m->memo_cap = cap;
    }
    if (!m->memo[idx])
        m->memo_count++;
    m->memo[idx] = v;
    return SSM_OK;
}

static ssm_status memo_get(vm *m, uint64_t idx)
{
    if (idx >= (uint64_t)m->memo_cap || !m->memo[idx])
        return BAD();
    return push(m, m->memo[idx]);
}

/* Pop everything above the innermost mark into a new sequence of kind. */
static ssm_status pop_mark(vm *m, pv **out, int kind)
{
    if (m->nm == 0)
        return BAD();
    int64_t b = m->marks[--m->nm];
    pv *s = new_v(m, kind);
    if (!s)
        return SSM_FAIL(SSM_ERR_NOMEM);
    for (int64_t k = b; k < m->sp; k++)
        if (!seq_push(m, s, m->stack[k]))
            return SSM_FAIL(SSM_ERR_NOMEM);
    m->sp = b;
    *out = s;
    return SSM_OK;
}

static ssm_status tuple_n(vm *m, int n)
{
    pv *s = new_v(m, V_TUPLE);
    if (!s)
        return SSM_FAIL(SSM_ERR_NOMEM);
    if (m->sp - mark_base(m) < n)
        return BAD();
    for (int64_t k = m->sp - n; k < m->sp; k++)
        if (!seq_push(m, s, m->stack[k]))
            return SSM_FAIL(SSM_ERR_NOMEM);
    m->sp -= n;
    return push(m, s);
}

/* dict[k] = v for the (k, v) pairs in items (already popped). */
static ssm_status set_items(vm *m, pv *d, pv **items, int64_t n)
{
    if (!d || d->kind != V_DICT || n % 2)
        return BAD();
    for (int64_t k = 0; k < n; k++)
        if (!seq_push(m, d, items[k]))
            return SSM_FAIL(SSM_ERR_NOMEM);
    return SSM_OK;
}

static ssm_status run(vm *m, pv **result)
{
    const unsigned char *q;
    for (;;) {
        if (m->p >= m->end)
            return BAD();   /* no STOP */
        unsigned op = *m->p++;
        ssm_status st = SSM_OK;
        switch (op) {
        case 0x80:   /* PROTO */
            if (!take(m, 1, &q) || q[0] < 2 || q[0] > 5)
                return BAD();
            break;
        case 0x95:   /* FRAME: a length hint, the opcodes follow inline */
            if (!take(m, 8, &q) || ssmi_le64(q) > (uint64_t)(m->end - m->p))
                return BAD();
            break;
        case '.': {  /* STOP */
            pv *r = pop(m);
            if (!r || m->nm != 0)
                return BAD();
            *result = r;
            return SSM_OK;
        }
        case 'N': st = push(m, new_v(m, V_NONE)); break;
        case 0x88: case 0x89: {   /* NEWTRUE, NEWFALSE */
            pv *b = new_v(m, V_BOOL);
            if (b)
                b->u.i = op == 0x88;
            st = push(m, b);
            break;
        }
        case 'J': case 'K': case 'M': {   /* BININT, BININT1, BININT2 */
            size_t n = op == 'J' ? 4 : op == 'K' ? 1 : 2;
            if (!take(m, n, &q))
                return BAD();
            pv *v = new_v(m, V_INT);
            if (v)
                v->u.i = n == 4 ? (int64_t)(int32_t)ssmi_le32(q)
                       : n == 1 ? (int64_t)q[0] : (int64_t)ssmi_le16(q);
            st = push(m, v);
            break;
        }
        case 0x8a: {  /* LONG1: n-byte two's complement, n <= 8 here */
            if (!take(m, 1, &q))
                return BAD();
            size_t n = q[0];
            if (n > 8 || !take(m, n, &q))
                return BAD();
            uint64_t u = 0;
            for (size_t k = 0; k < n; k++)
                u |= (uint64_t)q[k] << (8 * k);
            if (n > 0 && n < 8 && (q[n - 1] & 0x80))
                u |= ~(uint64_t)0 << (8 * n);   /* sign-extend */
            pv *v = new_v(m, V_INT);
            if (v)
                memcpy(&v->u.i, &u, sizeof u);
            st = push(m, v);
            break;
        }
        case 'G': {   /* BINFLOAT: big-endian double */
            if (!take(m, 8, &q))
                return BAD();
            uint64_t u = 0;
            for (int k = 0; k < 8; k++)
                u = (u << 8) | q[k];
            pv *v = new_v(m, V_FLOAT);
            if (v)
                memcpy(&v->u.f, &u, sizeof u);
            st = push(m, v);
            break;
        }
        case 'X': case 0x8c: {   /* BINUNICODE, SHORT_BINUNICODE */
            size_t n;
            if (op == 'X') {
                if (!take(m, 4, &q))
                    return BAD();
                n = ssmi_le32(q);
            } else {
                if (!take(m, 1, &q))
                    return BAD();
                n = q[0];
            }
            if (!take(m, n, &q))
                return BAD();
            pv *s = new_str(m, q, n);
            if (!s)
                return BAD();   /* invalid UTF-8 or over budget */
            st = push(m, s);
            break;
        }
        case ')': st = push(m, new_v(m, V_TUPLE)); break;
        case ']': st = push(m, new_v(m, V_LIST)); break;
        case '}': st = push(m, new_v(m, V_DICT)); break;
        case 0x85: st = tuple_n(m, 1); break;
        case 0x86: st = tuple_n(m, 2); break;
        case 0x87: st = tuple_n(m, 3); break;
        case '(':    /* MARK */
            if (m->nm == m->mcap) {
                if (m->mcap >= m->smax)
                    return BAD();
                int64_t cap = m->mcap ? 2 * m->mcap : 16;
                int64_t *nmk = realloc(m->marks, (size_t)cap * sizeof *nmk);
                if (!nmk)
                    return SSM_FAIL(SSM_ERR_NOMEM);
                m->marks = nmk;
                m->mcap = cap;
            }
            m->marks[m->nm++] = m->sp;
            break;
        case 't': {  /* TUPLE */
            pv *s;
            st = pop_mark(m, &s, V_TUPLE);
            if (st == SSM_OK)
                st = push(m, s);
            break;
        }
        case 'a': {  /* APPEND */
            pv *x = pop(m), *l = top(m);
            if (!x || !l || l->kind != V_LIST)
                return BAD();
            if (!seq_push(m, l, x))
                return SSM_FAIL(SSM_ERR_NOMEM);
            break;
        }
        case 'e': {  /* APPENDS */
            pv *s;
            SSM_TRY(pop_mark(m, &s, V_TUPLE));
            pv *l = top(m);
            if (!l || l->kind != V_LIST)
                return BAD();
            for (int64_t k = 0; k < s->u.seq.n; k++)
                if (!seq_push(m, l, s->u.seq.it[k]))
                    return SSM_FAIL(SSM_ERR_NOMEM);
            break;
        }
        case 's': {  /* SETITEM */
            pv *kv[2];
            kv[1] = pop(m);
            kv[0] = pop(m);
            if (!kv[0] || !kv[1])
                return BAD();
            st = set_items(m, top(m), kv, 2);
            break;
        }
        case 'u': {  /* SETITEMS */
            pv *s;
            SSM_TRY(pop_mark(m, &s, V_TUPLE));
            st = set_items(m, top(m), s->u.seq.it, s->u.seq.n);
            break;
        }
        case 'q': case 'r': {   /* BINPUT, LONG_BINPUT */
            if (!take(m, op == 'q' ? 1 : 4, &q))
                return BAD();
            st = memo_put(m, op == 'q' ? q[0] : ssmi_le32(q));
            break;
        }
        case 0x94:   /* MEMOIZE */
            st = memo_put(m, (uint64_t)m->memo_count);
            break;
        case 'h': case 'j': {   /* BINGET, LONG_BINGET */
            if (!take(m, op == 'h' ? 1 : 4, &q))
                return BAD();
            st = memo_get(m, op == 'h' ? q[0] : ssmi_le32(q));
            break;
        }
        case 'c': {  /* GLOBAL "module\nname\n" */
            const unsigned char *mod = m->p, *nl1, *nl2;
            size_t room = (size_t)(m->end - m->p);
            if (room > 512)
                room = 512;
            nl1 = memchr(mod, '\n', room);
            if (!nl1)
                return BAD();
            room = (size_t)(m->end - (nl1 + 1));
            if (room > 512)
                room = 512;
            nl2 = memchr(nl1 + 1, '\n', room);
            if (!nl2)
                return BAD();
            m->p = nl2 + 1;
            pv *g = resolve_global(m, (const char *)mod, (size_t)(nl1 - mod),
                                   (const char *)nl1 + 1, (size_t)(nl2 - nl1 - 1));
            if (!g)
                return BAD();   /* not on the allow-list: refused, never imported */
            st = push(m, g);
            break;
        }
        case 0x93: { /* STACK_GLOBAL */
            pv *name = pop(m), *mod = pop(m);
            if (!name || !mod || name->kind != V_STR || mod->kind != V_STR)
                return BAD();
            pv *g = resolve_global(m, mod->u.str.s, mod->u.str.n, name->u.str.s,
                                   name->u.str.n);
            if (!g)
                return BAD();
            st = push(m, g);
            break;
        }
        case 'R':    /* REDUCE */
            st = do_reduce(m);
            break;
        case 'Q':    /* BINPERSID */
            st = do_persid(m);
            break;
        case 'b': {  /* BUILD: only an (Ordered)dict's attribute state */
            pv *state = pop(m), *obj = top(m);
            if (!state || !obj || obj->kind != V_DICT ||
                (state->kind != V_DICT && state->kind != V_NONE))
                return BAD();
            break;
        }
        default:
            return BAD();   /* every other opcode */
        }
        if (st != SSM_OK)
            return st;
    }
}

void ssmi_pk_result_free(ssmi_pk_result *r)
{
    if (!r)
        return;
    for (int64_t i = 0; i < r->n; i++) {
        free(r->t[i].name);
        free(r->t[i].storage_key);
    }
    free(r->t);
    memset(r, 0, sizeof *r);
}

static char *dup_n(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = 0;
    }
    return d;
}

/* The state dict's tensors -> out (non-tensor values, such as ints a user
 * stored beside the weights, are skipped; keys must be strings). */
static ssm_status collect(const pv *d, ssmi_pk_result *out)
{
    if (!d || d->kind != V_DICT)
        return BAD();
    int64_t n = d->u.seq.n / 2;
    out->t = calloc((size_t)(n ? n : 1), sizeof *out->t);
    if (!out->t)
        return SSM_FAIL(SSM_ERR_NOMEM);
    for (int64_t k = 0; k < n; k++) {
        const pv *key = d->u.seq.it[2 * k], *v = d->u.seq.it[2 * k + 1];
        if (key->kind != V_STR)
            return BAD();
        if (v->kind != V_TENSOR)
            continue;
        ssmi_pk_tensor *t = &out->t[out->n++];
        const pv *s = v->u.t.storage;
        t->name = dup_n(key->u.str.s, key->u.str.n);
        t->storage_key = dup_n(s->u.st.key, strlen(s->u.st.key));
        if (!t->name || !t->storage_key)
            return SSM_FAIL(SSM_ERR_NOMEM);
        t->dtype = s->u.st.dtype;
        t->storage_numel = s->u.st.numel;
        t->offset = v->u.t.offset;
        t->ndim = v->u.t.ndim;
        memcpy(t->shape, v->u.t.shape, sizeof t->shape);
        memcpy(t->stride, v->u.t.stride, sizeof t->stride);
    }
    return SSM_OK;
}

ssm_status ssmi_pickle_load(const unsigned char *buf, size_t len,
                            ssmi_pk_result *out)
{
    memset(out, 0, sizeof *out);
    if (!buf || len == 0)
        return BAD();
    vm m;
    memset(&m, 0, sizeof m);
    m.p = buf;
    m.end = buf + len;
    /* Each opcode is at least one byte and adds at most one item, so these
     * bounds are never reached by a real pickle; they stop amplification. */
    m.smax = (int64_t)(len < (1u << 24) ? len : (1u << 24)) + 16;
    m.memo_max = m.smax + 256;   /* picklers number memo slots 0, 1, 2, ... */
    m.budget = len < ((size_t)1 << 26) ? 64 * len + ((size_t)1 << 20)
                                       : ((size_t)1 << 32);
    pv *res = NULL;
    ssm_status st = run(&m, &res);
    if (st == SSM_OK)
        st = collect(res, out);
    if (st == SSM_ERR_NOMEM && m.over)
        st = BAD();
    while (m.arena) {
        chunk *c = m.arena->next;
        free(m.arena);
        m.arena = c;
    }
    free(m.stack);
    free(m.marks);
    free(m.memo);
    if (st != SSM_OK)
        ssmi_pk_result_free(out);
    return st;
}
