/* store_copy_verify.c - the comparison of both sides after tollgate migrate --from/--to's COPY,
 * before its COMMIT (see store_copy.h and the top of store_copy.c).
 *
 * Per table: the row count; per column the non-NULL count and the exact sum (integers: usage
 * units, money, timestamps, ids) or the total byte length (text and bytea), each database over
 * what it holds; then a digest of every row's values (see "row digests" in store_copy.c), which
 * catches a value changed in place. Then the business totals of the report, per currency. Sums
 * are exact: SQLite's side uses tg_copy_sum, an aggregate with a 128-bit accumulator (SQLite's
 * SUM fails on overflow, and a sum of saturated usage totals can pass 2^63); PostgreSQL's
 * sum(bigint) is numeric. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store_copy_int.h"

/* ---- exact sums ---- */

/* tg_copy_sum(x): the exact sum of integer x as decimal text ("0" over no rows). */
static void i128_str(__int128 v, char *out, size_t cap)
{
    char tmp[48];
    size_t n = 0;
    unsigned __int128 u = v < 0 ? -(unsigned __int128)v : (unsigned __int128)v;
    do {
        tmp[n++] = (char)('0' + (int)(u % 10));
        u /= 10;
    } while (u != 0 && n < sizeof(tmp) - 1);
    if (v < 0)
        tmp[n++] = '-';
    size_t i = 0;
    for (; i < n && i + 1 < cap; i++)
        out[i] = tmp[n - 1 - i];
    out[i] = '\0';
}

/* The accumulator lives in SQLite's aggregate context, which is 8-byte aligned: copied in and
 * out, as __int128 wants 16. */
static void sum_step(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    unsigned char *acc = sqlite3_aggregate_context(ctx, sizeof(__int128));
    if (acc == NULL) {
        sqlite3_result_error_nomem(ctx);
        return;
    }
    if (sqlite3_value_type(argv[0]) == SQLITE_NULL)
        return;
    __int128 sum;
    memcpy(&sum, acc, sizeof(sum));
    sum += sqlite3_value_int64(argv[0]);
    memcpy(acc, &sum, sizeof(sum));
}

static void sum_final(sqlite3_context *ctx)
{
    unsigned char *acc = sqlite3_aggregate_context(ctx, 0);
    __int128 sum = 0;
    if (acc != NULL)
        memcpy(&sum, acc, sizeof(sum));
    char s[48];
    i128_str(sum, s, sizeof(s));
    sqlite3_result_text(ctx, s, -1, SQLITE_TRANSIENT);
}

/* "10750000000" nano-units -> "10.75" (at least 2 decimals, no trailing zeros beyond). */
static void money_str(const char *nano, char *out, size_t cap)
{
    int neg = nano[0] == '-';
    const char *d = nano + neg;
    size_t n = strlen(d);
    char ip[40] = "0", fp[16] = "000000000";
    if (n > 9) {
        snprintf(ip, sizeof(ip), "%.*s", (int)(n - 9), d);
        memcpy(fp, d + n - 9, 9);
    } else {
        memcpy(fp + 9 - n, d, n);
    }
    int keep = 9;
    while (keep > 2 && fp[keep - 1] == '0')
        keep--;
    snprintf(out, cap, "%s%s.%.*s", neg ? "-" : "", ip, keep, fp);
}

int tg_copy_register_sum(sqlite3 *db)
{
    return sqlite3_create_function_v2(db, "tg_copy_sum", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL, NULL, sum_step,
                                      sum_final, NULL);
}

/* ---- verification ---- */

/* The table's row digest (see "row digests" in store_copy.c) as PostgreSQL computes it over what it holds,
 * against the one of the rows streamed into its COPY. */
static int verify_digest(copy_t *c, const table_t *t, tg_err_t *err)
{
    char sql[TG_COPY_SQL_CAP] = "SELECT COALESCE(sum(('x' || encode(substr(sha256(";
    int rc = 0;
    for (size_t i = 0; i < t->ncols && rc == 0; i++) {
        const char *n = t->cols[i].name, *sep = i > 0 ? " || " : "";
        if (t->cols[i].kind == COL_INT)
            rc = tg_copy_sql_add(
                sql, sizeof(sql), err,
                "%sCASE WHEN \"%s\" IS NULL THEN '\\x00'::bytea ELSE '\\x01'::bytea || int8send(\"%s\") END", sep, n,
                n);
        else if (t->cols[i].kind == COL_BYTEA)
            rc = tg_copy_sql_add(sql, sizeof(sql), err,
                                 "%sCASE WHEN \"%s\" IS NULL THEN '\\x00'::bytea ELSE '\\x01'::bytea"
                                 " || int4send(octet_length(\"%s\")) || \"%s\" END",
                                 sep, n, n, n);
        else
            rc = tg_copy_sql_add(sql, sizeof(sql), err,
                                 "%sCASE WHEN \"%s\" IS NULL THEN '\\x00'::bytea ELSE '\\x01'::bytea"
                                 " || int4send(octet_length(\"%s\")) || convert_to(\"%s\", 'UTF8') END",
                                 sep, n, n, n);
    }
    if (rc == 0)
        rc = tg_copy_sql_add(sql, sizeof(sql), err, "), 1, 8), 'hex'))::bit(64)::bigint), 0)::text FROM \"%s\"",
                             t->name);
    if (rc != 0)
        return rc;
    PGresult *r = NULL;
    if ((rc = tg_copy_pg_run(c, sql, &r, err, "verifying the copy")) != 0)
        return rc;
    __int128 sum;
    memcpy(&sum, t->digest, sizeof(sum));
    char sent[48];
    i128_str(sum, sent, sizeof(sent));
    if (strcmp(sent, PQgetvalue(r, 0, 0)) != 0)
        rc = tg_errf(err, TG_ESTORE,
                     "verification failed, nothing was written: %s: the rows the target holds differ from the rows "
                     "sent (digest %s sent, %s held)",
                     t->name, sent, PQgetvalue(r, 0, 0));
    PQclear(r);
    return rc;
}

/* Row count, then per column: non-NULL count and exact sum (integers) or total bytes, on both
 * sides; the first difference is the error. */
int tg_copy_verify_table(copy_t *c, const table_t *t, tg_err_t *err)
{
    char ssql[TG_COPY_SQL_CAP] = "SELECT count(*)", psql[TG_COPY_SQL_CAP] = "SELECT count(*)::text";
    int rc = 0;
    for (size_t i = 0; i < t->ncols && rc == 0; i++) {
        const col_t *col = &t->cols[i];
        char sname[TG_COPY_NAME_MAX + 3];
        snprintf(sname, sizeof(sname), col->rowid ? "%s" : "\"%s\"", col->name);
        if (col->kind == COL_INT)
            rc = tg_copy_sql_add(ssql, sizeof(ssql), err, ", count(%s), tg_copy_sum(%s)", sname, sname);
        else
            rc = tg_copy_sql_add(ssql, sizeof(ssql), err, ", count(%s), tg_copy_sum(length(CAST(%s AS BLOB)))", sname,
                                 sname);
        if (rc == 0 && col->kind == COL_INT)
            rc = tg_copy_sql_add(psql, sizeof(psql), err, ", count(\"%s\")::text, COALESCE(sum(\"%s\"), 0)::text",
                                 col->name, col->name);
        else if (rc == 0)
            rc = tg_copy_sql_add(psql, sizeof(psql), err,
                                 ", count(\"%s\")::text, COALESCE(sum(octet_length(\"%s\")), 0)::text", col->name,
                                 col->name);
    }
    if (rc == 0)
        rc = tg_copy_sql_add(ssql, sizeof(ssql), err, " FROM \"%s\"", t->name);
    if (rc == 0)
        rc = tg_copy_sql_add(psql, sizeof(psql), err, " FROM \"%s\"", t->name);
    if (rc != 0)
        return rc;
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(c->src, ssql, -1, &s, NULL) != SQLITE_OK)
        return tg_copy_src_error(c, err, "verifying the copy");
    if (sqlite3_step(s) != SQLITE_ROW) {
        rc = tg_copy_src_error(c, err, "verifying the copy");
        sqlite3_finalize(s);
        return rc;
    }
    PGresult *r = NULL;
    if ((rc = tg_copy_pg_run(c, psql, &r, err, "verifying the copy")) != 0) {
        sqlite3_finalize(s);
        return rc;
    }
    for (int i = 0; i < 1 + 2 * (int)t->ncols && rc == 0; i++) {
        const char *a = (const char *)sqlite3_column_text(s, i), *b = PQgetvalue(r, 0, i);
        if (a != NULL && strcmp(a, b) == 0)
            continue;
        const char *what = i == 0                                 ? "rows"
                           : i % 2 == 1                           ? "values"
                           : t->cols[(i - 1) / 2].kind == COL_INT ? "sum"
                                                                  : "bytes";
        rc = tg_errf(err, TG_ESTORE,
                     "verification failed, nothing was written: %s%s%s %s is %s in the source and %s in the target",
                     t->name, i == 0 ? "" : ".", i == 0 ? "" : t->cols[(i - 1) / 2].name, what, a != NULL ? a : "?", b);
    }
    PQclear(r);
    sqlite3_finalize(s);
    return rc != 0 ? rc : verify_digest(c, t, err);
}

/* The business totals of the report, compared on both sides too: money per currency. */
static const struct {
    const char *table, *column, *group;
    int money;
} TOTALS[] = {
    {"usage_period", "units", NULL, 0},   {"usage_period", "invoiced_units", NULL, 0},
    {"usage_daily", "units", NULL, 0},    {"usage_hourly", "units", NULL, 0},
    {"invoices", "total", "currency", 1}, {"invoice_items", "amount", "currency", 1},
};

static int add_total(tg_store_copy_report_t *rep, const char *what, const char *group, const char *value, int money)
{
    if (rep->ntotals == TG_COPY_TOTALS_MAX)
        return 0;
    tg_store_copy_total_t *t = &rep->totals[rep->ntotals++];
    snprintf(t->what, sizeof(t->what), "%s%s%.16s", what, group != NULL ? " " : "", group != NULL ? group : "");
    if (money)
        money_str(value, t->value, sizeof(t->value));
    else
        snprintf(t->value, sizeof(t->value), "%s", value);
    return 0;
}

int tg_copy_verify_totals(copy_t *c, tg_store_copy_report_t *rep, tg_err_t *err)
{
    for (size_t i = 0; i < sizeof(TOTALS) / sizeof(TOTALS[0]); i++) {
        const table_t *t = tg_copy_table_find(c, TOTALS[i].table);
        if (t == NULL)
            continue;
        const char *g = TOTALS[i].group;
        char ssql[512], psql[512], what[128];
        snprintf(what, sizeof(what), "%s.%s", TOTALS[i].table, TOTALS[i].column);
        if (g != NULL) {
            snprintf(ssql, sizeof(ssql), "SELECT \"%s\", tg_copy_sum(\"%s\") FROM \"%s\" GROUP BY 1 ORDER BY 1", g,
                     TOTALS[i].column, t->name);
            snprintf(
                psql, sizeof(psql),
                "SELECT \"%s\", COALESCE(sum(\"%s\"), 0)::text FROM \"%s\" GROUP BY 1 ORDER BY \"%s\" COLLATE \"C\"", g,
                TOTALS[i].column, t->name, g);
        } else {
            snprintf(ssql, sizeof(ssql), "SELECT '', tg_copy_sum(\"%s\") FROM \"%s\"", TOTALS[i].column, t->name);
            snprintf(psql, sizeof(psql), "SELECT '', COALESCE(sum(\"%s\"), 0)::text FROM \"%s\"", TOTALS[i].column,
                     t->name);
        }
        sqlite3_stmt *s;
        if (sqlite3_prepare_v2(c->src, ssql, -1, &s, NULL) != SQLITE_OK)
            return tg_copy_src_error(c, err, "verifying the totals");
        PGresult *r = NULL;
        int rc = tg_copy_pg_run(c, psql, &r, err, "verifying the totals");
        int row = 0, step = SQLITE_DONE;
        while (rc == 0 && (step = sqlite3_step(s)) == SQLITE_ROW) {
            const char *sg = (const char *)sqlite3_column_text(s, 0), *sv = (const char *)sqlite3_column_text(s, 1);
            if (row >= PQntuples(r) || sg == NULL || sv == NULL || strcmp(sg, PQgetvalue(r, row, 0)) != 0 ||
                strcmp(sv, PQgetvalue(r, row, 1)) != 0) {
                rc = tg_errf(err, TG_ESTORE,
                             "verification failed, nothing was written: %s%s%.16s is %s in the source and %s in the "
                             "target",
                             what, g != NULL ? " " : "", g != NULL && sg != NULL ? sg : "", sv != NULL ? sv : "?",
                             row < PQntuples(r) ? PQgetvalue(r, row, 1) : "absent");
                break;
            }
            add_total(rep, what, g != NULL ? sg : NULL, sv, TOTALS[i].money);
            row++;
        }
        if (rc == 0 && step != SQLITE_DONE)
            rc = tg_copy_src_error(c, err, "verifying the totals");
        if (rc == 0 && row != PQntuples(r))
            rc = tg_errf(err, TG_ESTORE,
                         "verification failed, nothing was written: %s has %d groups in the target, %d in the source",
                         what, PQntuples(r), row);
        if (rc == 0 && row == 0 && g != NULL)
            add_total(rep, what, NULL, "0", TOTALS[i].money);
        PQclear(r);
        sqlite3_finalize(s);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int tg_copy_verify_event_ids(copy_t *c, tg_store_copy_report_t *rep, tg_err_t *err)
{
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(c->src,
                           "SELECT (SELECT count(*) FROM main.usage_event_ids),"
                           " (SELECT tg_copy_sum(n) FROM main.usage_event_id_blocks),"
                           " (SELECT count(*) FROM main.usage_event_id_blocks)",
                           -1, &s, NULL) != SQLITE_OK)
        return tg_copy_src_error(c, err, "verifying the event ids");
    if (sqlite3_step(s) != SQLITE_ROW) {
        int rc = tg_copy_src_error(c, err, "verifying the event ids");
        sqlite3_finalize(s);
        return rc;
    }
    long long rows = sqlite3_column_int64(s, 0), blocks = sqlite3_column_int64(s, 2);
    char in_blocks[48];
    snprintf(in_blocks, sizeof(in_blocks), "%s", (const char *)sqlite3_column_text(s, 1));
    sqlite3_finalize(s);
    PGresult *r = NULL;
    int rc = tg_copy_pg_run(c, "SELECT count(*) FROM usage_event_ids", &r, err, "verifying the event ids");
    if (rc != 0)
        return rc;
    long long held = strtoll(PQgetvalue(r, 0, 0), NULL, 10), from_blocks = strtoll(in_blocks, NULL, 10);
    PQclear(r);
    if (held != rows + from_blocks)
        return tg_errf(err, TG_ESTORE,
                       "verification failed, nothing was written: usage_event_ids holds %lld ids in the target, and "
                       "the source %lld (%lld rows and %s ids in %lld usage_event_id_blocks rows)",
                       held, rows + from_blocks, rows, in_blocks, blocks);
    return add_total(rep, "usage_event_id_blocks.n", NULL, in_blocks, 0);
}
