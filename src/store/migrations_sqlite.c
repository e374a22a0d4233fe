/* migrations_sqlite.c - SQLite schema, one entry per migration; see migrations.h. */
#include "store/migrations.h"

const tg_migration_t tg_sqlite_migrations[] = {
    {1, "customers, keys, usage",
     "CREATE TABLE customers ("
     "  id TEXT PRIMARY KEY,"
     "  email TEXT NOT NULL UNIQUE COLLATE NOCASE,"
     "  name TEXT NOT NULL DEFAULT '',"
     "  plan_id TEXT NOT NULL,"
     "  status TEXT NOT NULL,"
     "  created_at INTEGER NOT NULL,"
     "  anchor_at INTEGER NOT NULL,"
     "  trial_end INTEGER NOT NULL DEFAULT 0);"
     "CREATE TABLE api_keys ("
     "  id TEXT PRIMARY KEY,"
     "  customer_id TEXT NOT NULL REFERENCES customers(id),"
     "  hash BLOB NOT NULL UNIQUE,"
     "  prefix TEXT NOT NULL,"
     "  name TEXT NOT NULL DEFAULT '',"
     "  created_at INTEGER NOT NULL,"
     "  expires_at INTEGER NOT NULL DEFAULT 0,"
     "  revoked_at INTEGER NOT NULL DEFAULT 0,"
     "  last_used_at INTEGER NOT NULL DEFAULT 0);"
     "CREATE INDEX api_keys_customer ON api_keys(customer_id);"
     /* Usage is kept as totals, written a whole batch per transaction; usage_batches makes a
      * batch idempotent. Totals are per plan so that a period's usage is priced under the plan
      * in force when it happened. */
     "CREATE TABLE usage_batches ("
     "  batch_id INTEGER PRIMARY KEY,"
     "  rows INTEGER NOT NULL,"
     "  committed_at INTEGER NOT NULL);"
     "CREATE TABLE usage_period ("
     "  customer_id TEXT NOT NULL,"
     "  period_start INTEGER NOT NULL,"
     "  plan_id TEXT NOT NULL,"
     "  metric TEXT NOT NULL,"
     "  units INTEGER NOT NULL,"
     "  PRIMARY KEY (customer_id, period_start, metric, plan_id)) WITHOUT ROWID;"
     "CREATE INDEX usage_period_start ON usage_period(period_start);"
     "CREATE TABLE usage_daily ("
     "  customer_id TEXT NOT NULL,"
     "  day TEXT NOT NULL,"
     "  metric TEXT NOT NULL,"
     "  endpoint TEXT NOT NULL,"
     "  units INTEGER NOT NULL,"
     "  PRIMARY KEY (customer_id, day, metric, endpoint)) WITHOUT ROWID;"},
    {2, "invoices",
     /* invoiced_units: how much of a period total is on an invoice already; usage that lands
      * after its period was invoiced is billed on the next invoice, never lost or doubled. */
     "ALTER TABLE usage_period ADD COLUMN invoiced_units INTEGER NOT NULL DEFAULT 0;"
     "CREATE TABLE invoices ("
     "  id TEXT PRIMARY KEY,"
     "  customer_id TEXT NOT NULL REFERENCES customers(id),"
     "  period_start INTEGER NOT NULL,"
     "  period_end INTEGER NOT NULL,"
     "  status TEXT NOT NULL,"
     "  number TEXT UNIQUE,"
     "  currency TEXT NOT NULL,"
     "  total INTEGER NOT NULL,"
     "  body TEXT NOT NULL,"
     "  created_at INTEGER NOT NULL,"
     "  finalized_at INTEGER NOT NULL DEFAULT 0,"
     "  closed_at INTEGER NOT NULL DEFAULT 0,"
     "  UNIQUE (customer_id, period_start));"
     "CREATE INDEX invoices_customer ON invoices(customer_id, period_start);"
     /* Gapless numbering per year: the counter moves in the transaction that finalizes. */
     "CREATE TABLE invoice_numbers (year INTEGER PRIMARY KEY, last INTEGER NOT NULL);"},
    {3, "plan changes and cancellation",
     "ALTER TABLE customers ADD COLUMN pending_plan_id TEXT NOT NULL DEFAULT '';"
     "ALTER TABLE customers ADD COLUMN pending_at INTEGER NOT NULL DEFAULT 0;"
     "ALTER TABLE customers ADD COLUMN cancel_at INTEGER NOT NULL DEFAULT 0;"
     /* One-off amounts (proration of a plan change) waiting for the next invoice. */
     "CREATE TABLE invoice_items ("
     "  id INTEGER PRIMARY KEY,"
     "  customer_id TEXT NOT NULL REFERENCES customers(id),"
     "  created_at INTEGER NOT NULL,"
     "  description TEXT NOT NULL,"
     "  amount INTEGER NOT NULL,"
     "  currency TEXT NOT NULL,"
     "  invoice_id TEXT);"
     "CREATE INDEX invoice_items_open ON invoice_items(customer_id, invoice_id);"},
    {4, "developer portal accounts",
     /* Argon2id hash (libsodium's encoded string); "" = no portal login. */
     "ALTER TABLE customers ADD COLUMN password_hash TEXT NOT NULL DEFAULT '';"
     /* Only a hash of each session token is stored, like API keys. */
     "CREATE TABLE sessions ("
     "  token_hash BLOB PRIMARY KEY,"
     "  customer_id TEXT NOT NULL REFERENCES customers(id),"
     "  csrf_token TEXT NOT NULL,"
     "  created_at INTEGER NOT NULL,"
     "  expires_at INTEGER NOT NULL);"},
    {5, "plan change history",
     "CREATE TABLE plan_changes ("
     "  id INTEGER PRIMARY KEY,"
     "  customer_id TEXT NOT NULL REFERENCES customers(id),"
     "  from_plan TEXT NOT NULL,"
     "  to_plan TEXT NOT NULL,"
     "  kind TEXT NOT NULL,"
     "  at INTEGER NOT NULL);"
     "CREATE INDEX plan_changes_at ON plan_changes(at);"},
    {6, "usage journal",
     /* Each committed batch, summed by key and packed, until it is folded into usage_period
      * and usage_daily (see store_sqlite.c); one row per batch keeps a commit small. */
     "CREATE TABLE usage_journal ("
     "  batch_id INTEGER PRIMARY KEY,"
     "  data BLOB NOT NULL);"},
    {7, "rejected usage",
     /* Usage rows the totals cannot take (units past 2^63-1, a field without its terminator),
      * kept with the batch they came in, why, and when, instead of being dropped: stored in
      * the batch's own transaction, so a replayed batch never adds them twice. units is text:
      * it may not fit an INTEGER. */
     "CREATE TABLE usage_rejected ("
     "  id INTEGER PRIMARY KEY,"
     "  batch_id INTEGER NOT NULL,"
     "  event_id INTEGER NOT NULL,"
     "  customer_id TEXT NOT NULL,"
     "  key_id TEXT NOT NULL,"
     "  plan_id TEXT NOT NULL,"
     "  metric TEXT NOT NULL,"
     "  endpoint TEXT NOT NULL,"
     "  units TEXT NOT NULL,"
     "  period_start INTEGER NOT NULL,"
     "  ts_ns INTEGER NOT NULL,"
     "  status INTEGER NOT NULL,"
     "  reason TEXT NOT NULL,"
     "  rejected_at INTEGER NOT NULL);"},
    {8, "billing failures",
     /* The customers whose invoices the last runs could not make, and why; a customer's row
      * goes when a run invoices it. */
     "CREATE TABLE billing_failures ("
     "  customer_id TEXT PRIMARY KEY,"
     "  type TEXT NOT NULL,"
     "  message TEXT NOT NULL,"
     "  first_at INTEGER NOT NULL,"
     "  last_at INTEGER NOT NULL,"
     "  runs INTEGER NOT NULL);"},
    {9, "list indexes",
     /* The paged lists walk these in their order (newest first, then id): a page is a range
      * scan, never a sort of the whole table. */
     "CREATE INDEX customers_list ON customers(created_at DESC, id);"
     "CREATE INDEX api_keys_list ON api_keys(customer_id, created_at DESC, id);"
     "CREATE INDEX invoices_list ON invoices(period_start DESC, id);"
     "CREATE INDEX invoices_customer_list ON invoices(customer_id, period_start DESC, id);"},
    {10, "sign-up trials",
     /* One row per trial granted by self-service sign-up: one trial per normalised email (see
      * portal.c) ever, and per client address within portal.signup.trial_address_days. */
     "CREATE TABLE signup_trials ("
     "  email_norm TEXT NOT NULL,"
     "  address TEXT NOT NULL,"
     "  customer_id TEXT NOT NULL,"
     "  at INTEGER NOT NULL);"
     "CREATE INDEX signup_trials_email ON signup_trials(email_norm);"
     "CREATE INDEX signup_trials_address ON signup_trials(address, at);"},
    {11, "stripe outbox",
     /* Every call to Stripe, written in the transaction of the change that needs it and sent
      * later by the outbox processor (src/payments/outbox.c). idempotency_key is unique: an
      * operation is enqueued once, and its key is sent on every attempt, so Stripe replays
      * instead of repeating. params is the encoded form body, fixed at enqueue. Times in
      * milliseconds (next_attempt_at) or seconds (created_at, updated_at). */
     "CREATE TABLE stripe_outbox ("
     "  id INTEGER PRIMARY KEY,"
     "  kind TEXT NOT NULL,"
     "  customer_id TEXT NOT NULL,"
     "  idempotency_key TEXT NOT NULL UNIQUE,"
     "  method TEXT NOT NULL,"
     "  path TEXT NOT NULL,"
     "  params TEXT NOT NULL,"
     "  state TEXT NOT NULL DEFAULT 'pending',"
     "  attempts INTEGER NOT NULL DEFAULT 0,"
     "  next_attempt_at INTEGER NOT NULL,"
     "  last_error TEXT NOT NULL DEFAULT '',"
     "  response_id TEXT NOT NULL DEFAULT '',"
     "  created_at INTEGER NOT NULL,"
     "  updated_at INTEGER NOT NULL);"
     "CREATE INDEX stripe_outbox_due ON stripe_outbox(state, next_attempt_at);"
     "CREATE INDEX stripe_outbox_customer ON stripe_outbox(customer_id, id);"
     /* tollgate customer -> Stripe customer, written with the outbox row that created it. */
     "CREATE TABLE stripe_customers ("
     "  customer_id TEXT PRIMARY KEY REFERENCES customers(id),"
     "  stripe_id TEXT NOT NULL UNIQUE,"
     "  created_at INTEGER NOT NULL);"},
    {12, "stripe webhooks and dunning",
     /* stripe_events: every verified webhook event, once (the id is Stripe's), with the body as
      * received; processed_at NULL = waiting for the job that applies it (src/payments). The
      * invoice states are what the events said about each Stripe invoice, merged by the
      * object's own state (a paid invoice stays paid whatever arrives late); customer_dunning
      * holds when a customer became past due and whether dunning (not the owner) suspended
      * them; customer_status_history records every status change with its reason. */
     "CREATE TABLE stripe_events ("
     "  id TEXT PRIMARY KEY,"
     "  type TEXT NOT NULL,"
     "  created INTEGER NOT NULL,"
     "  object_id TEXT NOT NULL,"
     "  payload TEXT NOT NULL,"
     "  received_at INTEGER NOT NULL,"
     "  processed_at INTEGER,"
     "  customer_id TEXT,"
     "  outcome TEXT,"
     "  error TEXT);"
     "CREATE INDEX stripe_events_pending ON stripe_events(received_at) WHERE processed_at IS NULL;"
     "CREATE TABLE stripe_invoice_states ("
     "  invoice_id TEXT PRIMARY KEY,"
     "  customer_id TEXT NOT NULL,"
     "  status TEXT NOT NULL,"
     "  failed_attempts INTEGER NOT NULL,"
     "  action_required INTEGER NOT NULL,"
     "  event_id TEXT NOT NULL,"
     "  updated_at INTEGER NOT NULL);"
     "CREATE INDEX stripe_invoice_states_customer ON stripe_invoice_states(customer_id);"
     "CREATE TABLE customer_dunning ("
     "  customer_id TEXT PRIMARY KEY,"
     "  past_due_since INTEGER NOT NULL,"
     "  held INTEGER NOT NULL);"
     "CREATE TABLE customer_status_history ("
     "  id INTEGER PRIMARY KEY,"
     "  customer_id TEXT NOT NULL,"
     "  from_status TEXT NOT NULL,"
     "  to_status TEXT NOT NULL,"
     "  reason TEXT NOT NULL,"
     "  source TEXT NOT NULL,"
     "  at INTEGER NOT NULL);"
     "CREATE INDEX customer_status_history_customer ON customer_status_history(customer_id, id);"},
    /* 14: an owner can hold a draft: billing.finalize_after does not finalize a held one. */
    {14, "invoice holds",
     "ALTER TABLE invoices ADD COLUMN held INTEGER NOT NULL DEFAULT 0;"
     "CREATE INDEX invoices_drafts ON invoices(created_at) WHERE status = 'draft';"},
    {15, "payment methods on file",
     /* customer_payment_methods: a customer has a payment method in Stripe since on_file_at, as a
      * completed Checkout Session in setup mode (checkout.session.completed) told; the first
      * session recorded wins, so a replayed or late event changes nothing. */
     "CREATE TABLE customer_payment_methods ("
     "  customer_id TEXT PRIMARY KEY,"
     "  on_file_at INTEGER NOT NULL,"
     "  session_id TEXT NOT NULL,"
     "  event_id TEXT NOT NULL);"},
    {17, "hourly usage for Stripe meter events",
     /* usage_hourly: billing: stripe sends usage as Stripe meter events per customer, metric and
      * hour. The fold that adds committed usage to usage_period adds it here in the same
      * transaction (while meter_export has its row), so each batch counts once here too.
      * A row is one (customer, metric, hour, period, plan); ts is the bucket's start: the hour's
      * start, or the period's start when a period began inside the hour (a meter event's
      * timestamp decides which Stripe period bills it). exported: units already sent (as meter
      * events or, when too late for those, as invoice items); seq: sends made so far for
      * (customer, metric, ts), the last part of the meter event identifier. */
     "CREATE TABLE usage_hourly ("
     "  customer_id TEXT NOT NULL,"
     "  metric TEXT NOT NULL,"
     "  hour_start INTEGER NOT NULL,"
     "  period_start INTEGER NOT NULL,"
     "  plan_id TEXT NOT NULL,"
     "  ts INTEGER NOT NULL,"
     "  units INTEGER NOT NULL,"
     "  exported INTEGER NOT NULL DEFAULT 0,"
     "  seq INTEGER NOT NULL DEFAULT 0,"
     "  PRIMARY KEY (customer_id, metric, hour_start, period_start, plan_id)) WITHOUT ROWID;"
     "CREATE INDEX usage_hourly_group ON usage_hourly(customer_id, metric, ts);"
     "CREATE INDEX usage_hourly_unexported ON usage_hourly(hour_start) WHERE units > exported;"
     "CREATE TABLE meter_export ("
     "  id INTEGER PRIMARY KEY CHECK (id = 1),"
     "  since INTEGER NOT NULL);"},
    {18, "stripe subscriptions",
     /* billing: stripe - every Stripe subscription of a tollgate customer: written when the
      * outbox's "subscription.create" call is answered (status "" until an event tells one), or
      * by a customer.subscription.* event for a subscription whose metadata names a tollgate
      * customer. status is Stripe's as of the event created at status_at (seconds, Stripe's
      * clock): a later event moves it, an older one does not, and canceled is final (see
      * src/payments/stripe_events.c). The newest row of a customer is their current one. */
     "CREATE TABLE stripe_subscriptions ("
     "  subscription_id TEXT PRIMARY KEY,"
     "  customer_id TEXT NOT NULL,"
     "  status TEXT NOT NULL,"
     "  status_at INTEGER NOT NULL,"
     "  event_id TEXT NOT NULL,"
     "  created_at INTEGER NOT NULL,"
     "  updated_at INTEGER NOT NULL);"
     "CREATE INDEX stripe_subscriptions_customer ON stripe_subscriptions(customer_id, created_at);"},
    /* 20: the owner's revenue figures sum the invoices finalized in a window (a month). */
    {20, "invoices by finalization time", "CREATE INDEX invoices_finalized ON invoices(finalized_at);"},
    /* 21: billing at scale. next_period_end is the end of the customer's first period not yet
     * closed (seconds; 0 = not known: the period closer walks from the anchor, as it did for
     * every customer before this migration, and then sets it). The closer reads only the
     * customers due (next_period_end <= now) through customers_due, a range scan in
     * (next_period_end, id) order, instead of every customer and every period since its
     * anchor. invoices_customer duplicated the index of UNIQUE (customer_id, period_start):
     * one index less to write per invoice. */
    {21, "billing at scale",
     "ALTER TABLE customers ADD COLUMN next_period_end INTEGER NOT NULL DEFAULT 0;"
     "CREATE INDEX customers_due ON customers(next_period_end, id);"
     "DROP INDEX invoices_customer;"},
    {22, "usage batches per node",
     /* Batch ids are unique per node (a node's time-ordered sequence), not across nodes: the
      * node id is part of the key, so that the logs of another node applied here (tollgate
      * metering recover) never stand for this node's batches. The column comes last, as
      * PostgreSQL's ALTER TABLE puts it. */
     "CREATE TABLE usage_batches_22 ("
     "  batch_id INTEGER NOT NULL,"
     "  rows INTEGER NOT NULL,"
     "  committed_at INTEGER NOT NULL,"
     "  node TEXT NOT NULL DEFAULT '',"
     "  PRIMARY KEY (node, batch_id)) WITHOUT ROWID;"
     "INSERT INTO usage_batches_22(batch_id, rows, committed_at, node)"
     "  SELECT batch_id, rows, committed_at, '' FROM usage_batches;"
     "DROP TABLE usage_batches;"
     "ALTER TABLE usage_batches_22 RENAME TO usage_batches;"},
    /* PostgreSQL's triggers announce changes to the other gateways; one SQLite node has nobody
     * to notify. Kept so that a version number means the same schema in both dialects. */
    {23, "change notifications", ""},
    {24, "events and webhooks",
     /* Notifications (src/notify): events is the durable record of what happened (the owner's
      * feed and the source of every delivery), seq its insertion order; dedupe_key (NULL for
      * most) makes an emit happen once across retries and restarts. webhook_endpoints: the
      * owner's (customer_id '') and the customers' endpoints, with the secret needed to sign
      * (and the previous one during a rotation) and the delivery thread's view of its health
      * (circuit breaker, failing since, disabled with a reason). webhook_deliveries: the durable
      * outbox, one row per (event, endpoint); its id is the webhook-id of every attempt.
      * webhook_attempts: every attempt's log. notification_settings: per customer (email
      * events are part B's, budgets part C's, in their own migrations). */
     "CREATE TABLE events ("
     "  seq INTEGER PRIMARY KEY,"
     "  id TEXT NOT NULL UNIQUE,"
     "  type TEXT NOT NULL,"
     "  customer_id TEXT NOT NULL DEFAULT '',"
     "  created_at INTEGER NOT NULL,"
     "  data TEXT NOT NULL,"
     "  dedupe_key TEXT UNIQUE);"
     "CREATE INDEX events_customer ON events(customer_id, seq);"
     "CREATE TABLE webhook_endpoints ("
     "  id TEXT PRIMARY KEY,"
     "  customer_id TEXT NOT NULL DEFAULT '',"
     "  url TEXT NOT NULL,"
     "  events TEXT NOT NULL,"
     "  secret TEXT NOT NULL,"
     "  prev_secret TEXT NOT NULL DEFAULT '',"
     "  prev_secret_until INTEGER NOT NULL DEFAULT 0,"
     "  source TEXT NOT NULL,"
     "  enabled INTEGER NOT NULL DEFAULT 1,"
     "  disabled_reason TEXT NOT NULL DEFAULT '',"
     "  failing_since INTEGER NOT NULL DEFAULT 0,"
     "  consecutive_failures INTEGER NOT NULL DEFAULT 0,"
     "  hold_until INTEGER NOT NULL DEFAULT 0,"
     "  created_at INTEGER NOT NULL,"
     "  updated_at INTEGER NOT NULL);"
     "CREATE INDEX webhook_endpoints_customer ON webhook_endpoints(customer_id, created_at);"
     "CREATE TABLE webhook_deliveries ("
     "  seq INTEGER PRIMARY KEY,"
     "  id TEXT NOT NULL UNIQUE,"
     "  endpoint_id TEXT NOT NULL,"
     "  event_id TEXT NOT NULL,"
     "  event_type TEXT NOT NULL,"
     "  customer_id TEXT NOT NULL DEFAULT '',"
     "  state TEXT NOT NULL,"
     "  attempts INTEGER NOT NULL DEFAULT 0,"
     "  next_attempt_at INTEGER NOT NULL,"
     "  first_attempt_at INTEGER NOT NULL DEFAULT 0,"
     "  last_status INTEGER NOT NULL DEFAULT 0,"
     "  last_error TEXT NOT NULL DEFAULT '',"
     "  created_at INTEGER NOT NULL,"
     "  updated_at INTEGER NOT NULL,"
     "  delivered_at INTEGER NOT NULL DEFAULT 0,"
     "  UNIQUE (event_id, endpoint_id));"
     "CREATE INDEX webhook_deliveries_due ON webhook_deliveries(next_attempt_at) WHERE state = 'pending';"
     "CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries(endpoint_id, seq);"
     "CREATE TABLE webhook_attempts ("
     "  id INTEGER PRIMARY KEY,"
     "  delivery_id TEXT NOT NULL,"
     "  endpoint_id TEXT NOT NULL,"
     "  at INTEGER NOT NULL,"
     "  status INTEGER NOT NULL,"
     "  duration_ms INTEGER NOT NULL,"
     "  response TEXT NOT NULL,"
     "  error TEXT NOT NULL);"
     "CREATE INDEX webhook_attempts_delivery ON webhook_attempts(delivery_id, id);"
     "CREATE INDEX webhook_attempts_endpoint ON webhook_attempts(endpoint_id, id);"
     "CREATE TABLE notification_settings ("
     "  customer_id TEXT PRIMARY KEY,"
     "  email_events TEXT NOT NULL DEFAULT '*',"
     "  updated_at INTEGER NOT NULL);"},
    {25, "email",
     /* Email (src/notify/mail_outbox.c). mail_outbox holds each message as it will be sent (the
      * whole RFC 5322 text, built when it was queued in the transaction of the change that
      * caused it); a sender thread claims due rows by moving next_attempt_at ahead (a lease),
      * then records the attempt in mail_attempts and the row's new state. A sensitive message
      * (a confirmation or reset link) has its body erased once sent or failed. email_tokens
      * keeps only the SHA-256 of each single-use token. email_confirmed_at: 0 = not confirmed. */
     "CREATE TABLE mail_outbox ("
     "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
     "  to_addr TEXT NOT NULL,"
     "  template TEXT NOT NULL,"
     "  customer_id TEXT NOT NULL DEFAULT '',"
     "  subject TEXT NOT NULL,"
     "  message_id TEXT NOT NULL,"
     "  body TEXT NOT NULL,"
     "  sensitive INTEGER NOT NULL DEFAULT 0,"
     "  state TEXT NOT NULL DEFAULT 'pending',"
     "  attempts INTEGER NOT NULL DEFAULT 0,"
     "  next_attempt_at INTEGER NOT NULL,"
     "  last_code INTEGER NOT NULL DEFAULT 0,"
     "  last_error TEXT NOT NULL DEFAULT '',"
     "  created_at INTEGER NOT NULL,"
     "  updated_at INTEGER NOT NULL,"
     "  sent_at INTEGER NOT NULL DEFAULT 0);"
     "CREATE INDEX mail_outbox_due ON mail_outbox(state, next_attempt_at);"
     "CREATE TABLE mail_attempts ("
     "  mail_id INTEGER NOT NULL REFERENCES mail_outbox(id),"
     "  at_ms INTEGER NOT NULL,"
     "  outcome TEXT NOT NULL,"
     "  smtp_code INTEGER NOT NULL,"
     "  error TEXT NOT NULL);"
     "CREATE INDEX mail_attempts_mail ON mail_attempts(mail_id, at_ms);"
     "CREATE TABLE email_tokens ("
     "  token_hash BLOB PRIMARY KEY,"
     "  customer_id TEXT NOT NULL,"
     "  purpose TEXT NOT NULL,"
     "  created_at INTEGER NOT NULL,"
     "  expires_at INTEGER NOT NULL,"
     "  used_at INTEGER NOT NULL DEFAULT 0);"
     "CREATE INDEX email_tokens_customer ON email_tokens(customer_id, purpose);"
     "ALTER TABLE customers ADD COLUMN email_confirmed_at INTEGER NOT NULL DEFAULT 0;"},
    /* 26 (issue 13, part C): a notification decided from usage or time fires once: the
     * notifier inserts its mark in the transaction that emits the event, and the unique key
     * refuses the same crossing seen again (after a restart, or on another node). Budgets are
     * tg_money_t (nano-units of the customer's plan's currency, util/money.h). Trials about to
     * end are found by their end. */
    {26, "thresholds and budgets",
     "CREATE TABLE notification_marks ("
     "  customer_id TEXT NOT NULL,"
     "  period_start INTEGER NOT NULL,"
     "  kind TEXT NOT NULL,"
     "  metric TEXT NOT NULL DEFAULT '',"
     "  level INTEGER NOT NULL,"
     "  created_at INTEGER NOT NULL,"
     "  PRIMARY KEY (customer_id, period_start, kind, metric, level)) WITHOUT ROWID;"
     "CREATE TABLE customer_budgets ("
     "  customer_id TEXT PRIMARY KEY REFERENCES customers(id),"
     "  amount INTEGER NOT NULL CHECK (amount > 0),"
     "  updated_at INTEGER NOT NULL);"
     "CREATE INDEX customers_trial_end ON customers(trial_end);"},
    /* 27: the owner's dashboard sessions, in the database rather than one gateway's memory: behind
     * a load balancer every node honours a sign-in and a sign-out made on any of them. */
    {27, "owner sessions",
     "CREATE TABLE owner_sessions ("
     "  token_hash BLOB PRIMARY KEY,"
     "  csrf_token TEXT NOT NULL,"
     "  created_at INTEGER NOT NULL,"
     "  expires_at INTEGER NOT NULL);"},
    /* 28 (issue 14): the audit log - every change made through the admin API, the portal and the
     * CLI (who, what, before, after), ops/audit.h. Append-only by the database itself: the
     * triggers refuse any UPDATE or DELETE, whoever runs it (a bug, a plugin, a person with
     * sqlite3), so the store has no call that edits a row and could not have one. at is in
     * milliseconds; before_json/after_json are JSON text with secrets already redacted. */
    {28, "audit log",
     "CREATE TABLE audit_log ("
     "  id INTEGER PRIMARY KEY,"
     "  at INTEGER NOT NULL,"
     "  actor_kind TEXT NOT NULL,"
     "  actor_id TEXT NOT NULL DEFAULT '',"
     "  source TEXT NOT NULL DEFAULT '',"
     "  request_id TEXT NOT NULL DEFAULT '',"
     "  action TEXT NOT NULL,"
     "  target_type TEXT NOT NULL DEFAULT '',"
     "  target_id TEXT NOT NULL DEFAULT '',"
     "  before_json TEXT,"
     "  after_json TEXT);"
     "CREATE INDEX audit_log_at ON audit_log(at);"
     "CREATE INDEX audit_log_target ON audit_log(target_type, target_id, id);"
     "CREATE INDEX audit_log_actor ON audit_log(actor_id, id);"
     "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log"
     " BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;"
     "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log"
     " BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;"},
    /* 30 (issue 15): the owner's customer list sorted by email or name (tg_store_customer_search),
     * in the order of these indexes (ASCII case folded, ties by id), so a page is a range scan. */
    {30, "customer list orders",
     "CREATE INDEX customers_email_order ON customers(email COLLATE NOCASE, id);"
     "CREATE INDEX customers_name_order ON customers(name COLLATE NOCASE, id);"},
    /* 31 (issue 12, billing at scale): the period closer's schedule in a narrow table of its own.
     * Closing a customer's month moves its next period end; in customers that rewrote the whole
     * row and a new entry in every one of its seven indexes (next_period_end is indexed, so on
     * PostgreSQL the update was never HOT): 17-25 us of the server's 60-80 us per customer of a
     * close. Here it is a row of two columns and two index entries. Every customer has one row
     * (0: not known yet, as the column's default was): this trigger makes it for every insert;
     * the other resets it to 0 when what decides the periods' ends changes (what the customer
     * update's CASE did), in the same statement. */
    {31, "period closer schedule table",
     "CREATE TABLE customer_schedule ("
     "  customer_id TEXT PRIMARY KEY REFERENCES customers(id),"
     "  next_period_end INTEGER NOT NULL DEFAULT 0);"
     "INSERT INTO customer_schedule(customer_id, next_period_end) SELECT id, next_period_end FROM customers;"
     "CREATE INDEX customer_schedule_due ON customer_schedule(next_period_end, customer_id);"
     "DROP INDEX customers_due;"
     "ALTER TABLE customers DROP COLUMN next_period_end;"
     "CREATE TRIGGER customers_schedule_new AFTER INSERT ON customers"
     " BEGIN INSERT INTO customer_schedule(customer_id) VALUES (NEW.id); END;"
     "CREATE TRIGGER customers_schedule_reset AFTER UPDATE OF anchor_at, plan_id, status, pending_plan_id,"
     " pending_at, cancel_at ON customers"
     " WHEN OLD.anchor_at IS NOT NEW.anchor_at OR OLD.plan_id IS NOT NEW.plan_id OR OLD.status IS NOT NEW.status"
     " OR OLD.pending_plan_id IS NOT NEW.pending_plan_id OR OLD.pending_at IS NOT NEW.pending_at"
     " OR OLD.cancel_at IS NOT NEW.cancel_at"
     " BEGIN UPDATE customer_schedule SET next_period_end = 0 WHERE customer_id = NEW.id; END;"},
    /* 32 (issue 16): ingest tokens created in the admin API (store_ingest.h): the keyed hash of
     * the token, never the token; revoked, never deleted. customer_id "": any customer. */
    {32, "ingest tokens",
     "CREATE TABLE ingest_tokens ("
     "  id TEXT PRIMARY KEY,"
     "  name TEXT NOT NULL,"
     "  customer_id TEXT NOT NULL DEFAULT '',"
     "  hash BLOB NOT NULL UNIQUE,"
     "  prefix TEXT NOT NULL,"
     "  created_at INTEGER NOT NULL,"
     "  revoked_at INTEGER NOT NULL DEFAULT 0);"
     "CREATE INDEX ingest_tokens_order ON ingest_tokens(created_at, id);"},
    /* 33 (issue 16): the usage events applied to the totals, by (customer, event_id): the same
     * event logged by two nodes (posted to each, or retried on another) is added once, whichever
     * batch reaches the store first (tg_store_usage_record_many). ts: the event's time, seconds;
     * rows older than events.dedup_window are pruned (tg_store_usage_event_ids_prune). The key
     * leads with the id (a hash: two keys nearly always differ in their first column). */
    {33, "usage event ids",
     "CREATE TABLE usage_event_ids ("
     "  event_id INTEGER NOT NULL,"
     "  customer_id TEXT NOT NULL,"
     "  ts INTEGER NOT NULL,"
     "  PRIMARY KEY (event_id, customer_id)) WITHOUT ROWID;"
     "CREATE INDEX usage_event_ids_ts ON usage_event_ids(ts);"},
    /* 34 (issue 16): on SQLite (one node) the event ids are no longer looked up: the node's dedup
     * index counts each event once (metering/event_index.h, made durable before a metering log
     * is retired), and the ids are kept only to rebuild that index when its file is lost. Keyed
     * by a hash, each insert read and dirtied a B-tree page of its own anywhere in the table (15
     * to 20 us an event); a rowid table takes them at its right edge, in the order applied, and
     * ts (about the time of storing) is appended near the right edge of its index too. Same
     * columns, so a copy to PostgreSQL (tollgate migrate) still fills that table. PostgreSQL:
     * unchanged (every node's batches meet there). */
    {34, "usage event ids in applied order",
     "CREATE TABLE usage_event_ids_applied ("
     "  event_id INTEGER NOT NULL,"
     "  customer_id TEXT NOT NULL,"
     "  ts INTEGER NOT NULL);"
     "INSERT INTO usage_event_ids_applied(event_id, customer_id, ts)"
     " SELECT event_id, customer_id, ts FROM usage_event_ids ORDER BY ts;"
     "DROP TABLE usage_event_ids;"
     "ALTER TABLE usage_event_ids_applied RENAME TO usage_event_ids;"
     "CREATE INDEX usage_event_ids_ts ON usage_event_ids(ts);"},
    /* 35 (issue 16): the event ids of a stored batch as ONE row, all packed in data
     * (store/event_id_block.h: id, time, customer per event; n of them, times ts_min..ts_max):
     * one INSERT per event was ~2.5 us of the applier per event, one per batch is noise. Read to
     * rebuild the dedup index (blocks whose ts_max is in the window, each id filtered by its own
     * time) and pruned whole once ts_max is past the cut-off: a block lives until its newest id
     * expires. Ids stored before this migration stay in usage_event_ids (repacking needs the C
     * encoder) and are read and pruned as before until the window has passed them. tollgate
     * migrate unpacks blocks into PostgreSQL's usage_event_ids; this table has no counterpart
     * there. */
    {35, "usage event ids in blocks per batch",
     "CREATE TABLE usage_event_id_blocks ("
     "  id INTEGER PRIMARY KEY,"
     "  ts_min INTEGER NOT NULL,"
     "  ts_max INTEGER NOT NULL,"
     "  n INTEGER NOT NULL,"
     "  data BLOB NOT NULL);"
     "CREATE INDEX usage_event_id_blocks_ts_max ON usage_event_id_blocks(ts_max);"},
    /* 36 (issue 16): the usage events' key becomes SipHash-2-4-128 (metering/events.c), 8 times
     * cheaper than the keyed BLAKE2b-128 before; the ids stored, indexed and logged until now are
     * BLAKE2b keys, and a retry of one of those events must still be a duplicate. So an event
     * dated up to until_s keeps the BLAKE2b key (the choice depends only on the event's own
     * fields: a retry gets the same key, on every node) and a later one gets SipHash. until_s is
     * this migration's time plus 600 s when the database may have taken events already: an event
     * the old code accepted at time t is dated at most t + 300 s (events further ahead are
     * refused), so every event accepted before the migration, or by old nodes of a rolling
     * upgrade finishing within 5 minutes of it, is dated before until_s. "May have": ids were
     * stored, or a customer exists (an event names an existing customer; its row may still be in
     * a metering log only, not yet applied when the new binary migrates). A fresh database has
     * no row: it never held a BLAKE2b id (tg_store_event_key_blake2b_until reads 0). No row
     * either in a PostgreSQL database made for tollgate migrate: the copy brings the source's. */
    {36, "event key switch",
     "CREATE TABLE event_key_schemes ("
     "  scheme TEXT PRIMARY KEY,"
     "  until_s INTEGER NOT NULL);"
     "INSERT INTO event_key_schemes(scheme, until_s)"
     " SELECT 'blake2b', CAST(strftime('%s', 'now') AS INTEGER) + 600"
     " WHERE EXISTS (SELECT 1 FROM usage_event_ids) OR EXISTS (SELECT 1 FROM customers);"},
    /* 37 (issue 16): usage_event_id_blocks' ids never come back. The node's dedup index records
     * the id of the last block it holds durably (its checkpoint, metering/event_index.h) and
     * after a power cut claims again the blocks after it. A plain INTEGER PRIMARY KEY hands out
     * max(id) + 1, so once the prune deletes the newest block (an old batch stored last) its id
     * would be handed out again, to a block at or below the checkpoint: never claimed again.
     * AUTOINCREMENT (sqlite_sequence) never hands an id out twice; the rows keep theirs. */
    {37, "usage event id blocks never reuse an id",
     "CREATE TABLE usage_event_id_blocks_37 ("
     "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
     "  ts_min INTEGER NOT NULL,"
     "  ts_max INTEGER NOT NULL,"
     "  n INTEGER NOT NULL,"
     "  data BLOB NOT NULL);"
     "INSERT INTO usage_event_id_blocks_37(id, ts_min, ts_max, n, data)"
     " SELECT id, ts_min, ts_max, n, data FROM usage_event_id_blocks ORDER BY id;"
     "DROP TABLE usage_event_id_blocks;"
     "ALTER TABLE usage_event_id_blocks_37 RENAME TO usage_event_id_blocks;"
     "CREATE INDEX usage_event_id_blocks_ts_max ON usage_event_id_blocks(ts_max);"},
    /* 38: drained nodes. A node's usage_batches rows are pruned by that node only, as far as
     * its own logs allow (metering/batch_prune.h), so the rows of a node that stopped for good,
     * or died and was recovered, stayed forever. A row here says that at drained_at the node's
     * logs were emptied with every record in them stored (a clean stop, or tollgate metering
     * recover --retire); the schedulers' node then prunes its older rows an hour later. */
    {38, "drained metering nodes",
     "CREATE TABLE metering_drained_nodes ("
     "  node TEXT PRIMARY KEY,"
     "  drained_at INTEGER NOT NULL);"},
};

const size_t tg_sqlite_migrations_count = sizeof(tg_sqlite_migrations) / sizeof(tg_sqlite_migrations[0]);
