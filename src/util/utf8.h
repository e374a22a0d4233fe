/* utf8.h - making text valid UTF-8 before it goes into JSON.
 *
 * Error messages quote what a client sent (a path, a query value), and JSON strings must be
 * valid UTF-8: jansson refuses anything else, which would turn a helpful error into an empty
 * body. Messages are also cut to a buffer's size, which can split a character. */
#ifndef TG_UTF8_H
#define TG_UTF8_H

/* In place: a character cut short at the end of s is dropped, and every other byte that is not
 * part of a well-formed UTF-8 sequence (RFC 3629: no overlong forms, surrogates or code points
 * past U+10FFFF) becomes '?'. Valid text is left as it is. */
void tg_utf8_scrub(char *s);

#endif
