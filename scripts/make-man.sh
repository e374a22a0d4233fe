#!/usr/bin/env bash
# make-man.sh BIN: prints tollgate(1) in roff, made from the binary's own --help texts, so the
# manual and --help cannot disagree. Run by `make install` (and `make build/tollgate.1`).
set -euo pipefail
bin=$1
# roff: a backslash is \e; a line that starts with . or ' would be a request: \& before it
esc() { sed -e 's/\\/\\e/g' -e "s/^\\([.']\\)/\\\\\\&\\1/"; }
version=$("$bin" version | awk '{print $2}')
cat <<ROFF
.TH TOLLGATE 1 "" "tollgate $version" "User Commands"
.SH NAME
tollgate \\- an API monetization gateway: plans, keys, metering, billing and payments in front of an HTTP API
.SH SYNOPSIS
.B tollgate
.I command
.RI [ options ]
.SH DESCRIPTION
.nf
ROFF
"$bin" help | tail -n +3 | esc
echo ".fi"
echo ".SH COMMANDS"
for cmd in serve check-config migrate quote customers keys usage invoices stripe metering backup restore; do
  echo ".SS $cmd"
  echo ".nf"
  "$bin" "$cmd" --help 2>&1 | esc
  echo ".fi"
done
cat <<'ROFF'
.SH ENVIRONMENT
.TP
.B TOLLGATE_ADMIN_TOKEN
the admin API's token, for the commands that call it (also admin.token in the configuration)
.TP
.B TOLLGATE_SERVER
the admin API's address for those commands when neither --server nor -c names one (default
http://127.0.0.1:8081)
.TP
.B TOLLGATE_WEB_ROOT
serve the portal's and dashboard's pages from this directory instead of the copies built into
the binary (for editing them without rebuilding)
.PP
Any ${VAR} in the configuration is replaced by that variable's value.
.SH FILES
.TP
.I /etc/tollgate/tollgate.yaml
the configuration read by the systemd unit (tollgate.service)
.TP
.I /var/lib/tollgate
its state: the SQLite database and the metering logs
.SH SEE ALSO
The README and docs/ (configuration.md, api.md, operations.md) in the source tree.
ROFF
