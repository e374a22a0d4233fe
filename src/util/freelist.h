/* freelist.h - a bounded free list of same-size objects, for one thread.
 *
 * Why: a proxied call allocated two objects with malloc and freed them a moment later on the same
 * event loop: its gateway state (about 2 KB, above glibc's per-thread cache, so every malloc and
 * free took the slow path) and the process-mode commit hold (calloc, which bypasses that cache).
 * Under callgrind that was about 700 instructions a call; taking them from a list the loop keeps
 * costs a few. h2o's h2o_mem_recycle_t does the same but aborts when memory runs out, and the
 * callers here have a fallback for that.
 *
 * Not thread-safe: every get and put of one list happens on the thread that owns it. Objects are
 * not zeroed: the caller initialises what it takes. At most `max` objects are kept; a put beyond
 * that frees. Under AddressSanitizer the objects on the list are poisoned, so a use after put is
 * reported as it would be after free. */
#ifndef TG_UTIL_FREELIST_H
#define TG_UTIL_FREELIST_H

#include <stddef.h>
#include <stdlib.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define TG_FREELIST_POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define TG_FREELIST_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define TG_FREELIST_POISON(p, n) ((void)(p), (void)(n))
#define TG_FREELIST_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

typedef struct tg_freelist {
    size_t size;  /* of every object; at least sizeof(void *) */
    size_t max;   /* objects kept at most; 0: a put frees */
    size_t count; /* objects on the list */
    void *head;   /* the first object; its first bytes hold the next one */
} tg_freelist_t;

/* A list of objects of `size` bytes (rounded up to a pointer), keeping at most `max`. */
static inline tg_freelist_t tg_freelist_init(size_t size, size_t max)
{
    return (tg_freelist_t){.size = size < sizeof(void *) ? sizeof(void *) : size, .max = max};
}

/* An object of fl->size bytes, not zeroed: from the list, else malloc'd. NULL when out of memory.
 * The caller owns it until tg_freelist_put. */
static inline void *tg_freelist_get(tg_freelist_t *fl)
{
    void *p = fl->head;
    if (p == NULL)
        return malloc(fl->size);
    TG_FREELIST_UNPOISON(p, fl->size);
    fl->head = *(void **)p;
    fl->count--;
    return p;
}

/* Gives p (from tg_freelist_get of this list, or NULL) back: kept for reuse, or freed when the
 * list holds max already. */
static inline void tg_freelist_put(tg_freelist_t *fl, void *p)
{
    if (p == NULL)
        return;
    if (fl->count >= fl->max) {
        free(p);
        return;
    }
    *(void **)p = fl->head;
    fl->head = p;
    fl->count++;
    TG_FREELIST_POISON(p, fl->size);
}

/* Frees the objects on the list; later puts free at once (max becomes 0). For the owner's exit:
 * objects still out may come back after it. */
static inline void tg_freelist_drain(tg_freelist_t *fl)
{
    fl->max = 0;
    while (fl->head != NULL) {
        void *p = fl->head;
        TG_FREELIST_UNPOISON(p, fl->size);
        fl->head = *(void **)p;
        fl->count--;
        free(p);
    }
}

#endif
