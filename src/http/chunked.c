/* chunked.c - strict chunked decoding; see chunked.h. */
#include <string.h>

#include "http/chunked.h"

enum {
    S_SIZE = 0, /* zero-initialised decoder starts here */
    S_BWS,      /* blanks after the size: only ';' or more blanks may follow */
    S_EXT,      /* inside the extensions, until CR */
    S_SIZE_LF,
    S_DATA,
    S_DATA_CR,
    S_DATA_LF,
    S_TRAILER_START, /* start of a trailer line, or the final CRLF */
    S_TRAILER,
    S_TRAILER_LF,
    S_FINAL_LF,
};

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* RFC 9110 5.6.2 tchar */
static int is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* VCHAR, SP, HTAB or obs-text: what may appear in an extension or a field line */
static int is_text(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7f);
}

ssize_t tg_chunked_decode(tg_chunked_t *d, char *buf, size_t *len)
{
    size_t src = 0, dst = 0, n = *len;
    ssize_t ret = -2;
    while (src < n) {
        unsigned char c = (unsigned char)buf[src];
        switch (d->state) {
        case S_SIZE: {
            int v = hexval(c);
            if (v >= 0) {
                if (++d->digits > 15) /* 2^60: more than any body tollgate accepts */
                    goto Error;
                d->left = d->left * 16 + (uint64_t)v;
                src++;
                break;
            }
            if (d->digits == 0)
                goto Error; /* no sign, prefix or blank before the digits */
            if (c == '\r')
                d->state = S_SIZE_LF;
            else if (c == ';')
                d->state = S_EXT;
            else if (c == ' ' || c == '\t')
                d->state = S_BWS;
            else
                goto Error;
            src++;
            break;
        }
        case S_BWS:
            if (c == ';')
                d->state = S_EXT;
            else if (c != ' ' && c != '\t')
                goto Error;
            src++;
            break;
        case S_EXT:
            if (c == '\r')
                d->state = S_SIZE_LF;
            else if (!is_text(c))
                goto Error;
            src++;
            break;
        case S_SIZE_LF:
            if (c != '\n')
                goto Error;
            src++;
            d->declared = d->declared + d->left < d->declared ? UINT64_MAX : d->declared + d->left;
            d->digits = 0;
            d->line = 0;
            d->state = d->left == 0 ? S_TRAILER_START : S_DATA;
            continue; /* the line cap counts size lines only */
        case S_DATA: {
            size_t avail = n - src;
            size_t take = d->left < avail ? (size_t)d->left : avail;
            if (dst != src)
                memmove(buf + dst, buf + src, take);
            dst += take;
            src += take;
            d->left -= take;
            if (d->left == 0)
                d->state = S_DATA_CR;
            continue;
        }
        case S_DATA_CR:
            if (c != '\r')
                goto Error;
            d->state = S_DATA_LF;
            src++;
            break;
        case S_DATA_LF:
            if (c != '\n')
                goto Error;
            d->state = S_SIZE;
            src++;
            d->line = 0;
            continue;
        case S_TRAILER_START:
            if (c == '\r')
                d->state = S_FINAL_LF;
            else if (is_tchar(c))
                d->state = S_TRAILER;
            else
                goto Error; /* obs-fold, or garbage */
            src++;
            break;
        case S_TRAILER:
            if (c == '\r')
                d->state = S_TRAILER_LF;
            else if (!is_text(c))
                goto Error;
            src++;
            break;
        case S_TRAILER_LF:
            if (c != '\n')
                goto Error;
            d->state = S_TRAILER_START;
            src++;
            break;
        case S_FINAL_LF:
            if (c != '\n')
                goto Error;
            src++;
            ret = (ssize_t)(n - src);
            goto Done;
        default:
            goto Error;
        }
        /* every byte of a size line or of the trailers counts against a cap */
        if (++d->line > (d->state >= S_TRAILER_START ? TG_CHUNKED_MAX_TRAILERS : TG_CHUNKED_MAX_LINE))
            goto Error;
    }
Done:
    if (dst != src && src < n)
        memmove(buf + dst, buf + src, n - src);
    *len = dst;
    return ret;
Error:
    *len = dst;
    return -1;
}
