/* store_page.c - the sort keys of the paged lists (store.h), the same for every backend: a key
 * is the list's own text ("1764547200/cus_abc"), parsed strictly so that a key from a client
 * can never reach a query as anything but a number and an id. */
#include "store/store_page.h"

#include <string.h>

/* A decimal int64 at *p (optional '-'), advancing *p; 0 or -1. */
static int parse_i64(const char **p, int64_t *out)
{
    const char *s = *p;
    int neg = *s == '-';
    s += neg;
    if (*s < '0' || *s > '9')
        return -1;
    uint64_t v = 0;
    for (; *s >= '0' && *s <= '9'; s++) {
        if (v > (UINT64_C(1) << 63) / 10 || (v = v * 10 + (uint64_t)(*s - '0')) > (UINT64_C(1) << 63) - !neg)
            return -1;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    *p = s;
    return 0;
}

/* An id as the store writes them: 1 to TG_ID_MAX-1 characters of [A-Za-z0-9_]. */
static int valid_id(const char *s)
{
    size_t n = 0;
    for (; s[n] != '\0'; n++)
        if (n >= TG_ID_MAX - 1 || !((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= 'A' && s[n] <= 'Z') ||
                                    (s[n] >= '0' && s[n] <= '9') || s[n] == '_'))
            return 0;
    return n > 0;
}

int tg_page_key_parse_num(const char *key, int64_t *num)
{
    const char *p = key;
    return parse_i64(&p, num) == 0 && *p == '\0' ? 0 : TG_EINVAL;
}

int tg_page_key_parse_num_id(const char *key, int64_t *num, char id[TG_ID_MAX])
{
    const char *p = key;
    if (parse_i64(&p, num) != 0 || *p != '/' || !valid_id(p + 1))
        return TG_EINVAL;
    memcpy(id, p + 1, strlen(p + 1) + 1);
    return 0;
}

int tg_page_key_parse_id(const char *key, char id[TG_ID_MAX])
{
    if (!valid_id(key))
        return TG_EINVAL;
    memcpy(id, key, strlen(key) + 1);
    return 0;
}


int tg_page_key_parse_id_text(const char *key, char id[TG_ID_MAX], char *text, size_t cap)
{
    if (key[0] != ':')
        return TG_EINVAL;
    key++;
    const char *slash = strchr(key, '/');
    size_t il = slash != NULL ? (size_t)(slash - key) : 0, tl = slash != NULL ? strlen(slash + 1) : 0;
    char tmp[TG_ID_MAX];
    if (slash == NULL || il == 0 || il >= TG_ID_MAX || tl >= cap)
        return TG_EINVAL;
    memcpy(tmp, key, il);
    tmp[il] = '\0';
    if (!valid_id(tmp))
        return TG_EINVAL;
    memcpy(id, tmp, il + 1);
    memcpy(text, slash + 1, tl + 1);
    return 0;
}
