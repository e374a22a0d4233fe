/* cmd_metering.c - tollgate metering recover: stores the usage a gateway that will not come
 * back left in its metering logs (metering/meter.h, tg_meter_recover). */
#include <getopt.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "config/config.h"
#include "metering/meter.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: tollgate metering recover -c FILE --log-dir DIR [--retire]\n\n"
               "Stores the usage in the metering logs of DIR (a gateway's metering.log_dir, for example\n"
               "from the disk of a machine that will not come back) into the configuration's database,\n"
               "each batch exactly once, and empties those logs. Refuses logs a running gateway holds.\n\n"
               "--retire  the node will never run again from the logs DIR came from (its machine is gone\n"
               "          or its disk wiped): record it as drained, so that the ids of its stored batches\n"
               "          (kept so that a replay stores nothing twice) are deleted an hour later. Not for a\n"
               "          backup's copies. A node of that id that starts again takes this back.\n");
}

int tg_cmd_metering(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"log-dir", required_argument, NULL, 'd'},
                                         {"retire", no_argument, NULL, 'r'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    if (argc < 2 || strcmp(argv[1], "recover") != 0) {
        if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
            usage(stdout);
            return 0;
        }
        usage(stderr);
        return 2;
    }
    argc--, argv++;
    const char *path = NULL, *dir = NULL;
    int c, flags = 0;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":c:d:rh", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            path = optarg;
            break;
        case 'd':
            dir = optarg;
            break;
        case 'r':
            flags |= TG_METER_RECOVER_RETIRE;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case ':':
            fprintf(stderr, "tollgate metering recover: option %s needs a value\n", argv[optind - 1]);
            return 2;
        default:
            fprintf(stderr, "tollgate metering recover: unknown option %s\n", argv[optind - 1]);
            return 2;
        }
    }
    if (path == NULL || dir == NULL || optind < argc) {
        usage(stderr);
        return 2;
    }
    char errbuf[8192];
    tg_config_t *cfg = NULL;
    if (tg_config_load(path, &cfg, errbuf, sizeof(errbuf)) != 0) {
        fprintf(stderr, "%s\n", errbuf);
        return 1;
    }
    tg_meter_recovered_t rec;
    tg_err_t err = {0};
    int rc = tg_meter_recover(cfg->storage.database, dir, flags, &rec, &err);
    if (rc != 0) {
        fprintf(stderr, "tollgate metering recover: %s\n", err.msg);
    } else {
        printf("%s: %zu metering logs, %zu batches (%zu rows) stored now; the rest was stored before\n", dir, rec.logs,
               rec.batches, rec.rows);
        /* A node without an id is one gateway on SQLite (its logs are named usage-N.log). */
        for (size_t i = 0; i < rec.retired; i++) {
            if (rec.nodes[i][0] == '\0')
                printf("the gateway without a node id retired: its batch ids are deleted from one hour from now\n");
            else
                printf("node \"%s\" retired: its batch ids are deleted from one hour from now\n", rec.nodes[i]);
        }
    }
    tg_config_free(cfg);
    return rc == 0 ? 0 : 1;
}
