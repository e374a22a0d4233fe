/* fuzz_config.c - the YAML configuration loader against arbitrary text (libFuzzer).
 * Properties: it either loads a config or refuses with at least one message, every message line
 * starting with "fuzz.yaml:<line>:"; nothing leaks or reads out of bounds (ASan, UBSan). */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char errbuf[8192];
    tg_config_t *cfg = NULL;
    errbuf[0] = '\0';
    int rc = tg_config_load_string("fuzz.yaml", (const char *)data, size, &cfg, errbuf, sizeof(errbuf));
    if (rc == 0) {
        if (cfg == NULL || cfg->nplans == 0)
            abort();
        tg_config_free(cfg);
        return 0;
    }
    if (cfg != NULL || errbuf[0] == '\0')
        abort();
    /* Only the first line is checked in full: errbuf may cut the last one short. */
    const char *p = errbuf;
    if (strncmp(p, "fuzz.yaml:", 10) != 0 || !isdigit((unsigned char)p[10]))
        abort();
    return 0;
}
