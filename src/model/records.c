/* records.c - the little the records need besides their fields. */
#include "model/records.h"

#include <stdlib.h>

void tg_invoice_clear(tg_invoice_t *inv)
{
    free(inv->body);
    memset(inv, 0, sizeof(*inv));
}
