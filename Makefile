# tollgate - GNU make build.
#   make                      build/tollgate (optimised, with debug info)
#   make SANITIZE=address,undefined   build/asan/tollgate
#   make SANITIZE=thread      build/tsan/tollgate
#   make test                 install deps if missing, build normal + ASan/UBSan, run every test
#   make fuzz                 the fuzz targets (clang, libFuzzer) for FUZZ_SECONDS each
#   make run                  install deps if missing, build, start the demo upstream + gateway
CC       ?= gcc
SANITIZE ?=
ifeq ($(SANITIZE),)
  BUILD  ?= build
  OPT    ?= -O2
else ifneq ($(findstring thread,$(SANITIZE)),)
  BUILD  ?= build/tsan
  OPT    ?= -O1
else
  BUILD  ?= build/asan
  OPT    ?= -O1
endif

PKGS     := libh2o-evloop yaml-0.1 jansson libsodium sqlite3 libpq libcurl openssl zlib hiredis
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN     := -Wall -Wextra -Wshadow -Wmissing-prototypes -Wformat=2 -Werror
CFLAGS   := -std=c17 -D_GNU_SOURCE -DH2O_USE_LIBUV=0 $(OPT) -g $(WARN) -Isrc $(PKG_CFLAGS) $(EXTRA_CFLAGS)
LDLIBS   := $(PKG_LIBS) -lpthread -lm
ifneq ($(SANITIZE),)
  CFLAGS  += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
  LDFLAGS += -fsanitize=$(SANITIZE)
endif

SRCS     := $(shell find src -name '*.c' | sort)
LIB_SRCS := $(filter-out src/main.c,$(SRCS))
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/gen/assets.o
MAIN_OBJ := $(BUILD)/obj/src/main.o
UNIT_SRCS  := $(wildcard tests/unit/test_*.c)
UNIT_BINS  := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
TOOL_SRCS  := $(wildcard tools/*.c)
TOOL_BINS  := $(TOOL_SRCS:tools/%.c=$(BUILD)/%)

.PHONY: all deps test unit integration run fmt lint clean check-config bench fuzz fuzz-bins install
all: $(BUILD)/tollgate $(TOOL_BINS)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

# The portal and dashboard pages, and Chart.js, built into the binary (src/admin/assets.h). The
# directories are prerequisites too: a file added or removed there changes their time.
CHARTJS    ?= /usr/share/javascript/chart.js/chart.min.js
WEB_FILES  := $(shell find web -type f ! -name '.*' | sort)
$(BUILD)/gen/assets.c: $(WEB_FILES) $(shell find web -type d) $(CHARTJS) $(BUILD)/gen/openapi.json scripts/embed-assets.sh
	@mkdir -p $(dir $@)
	scripts/embed-assets.sh $@ $(foreach f,$(WEB_FILES),$(f:web%=%)=$(f)) /vendor/chart.min.js=$(CHARTJS) \
	  /openapi.json=$(BUILD)/gen/openapi.json

# docs/openapi.yaml as JSON, served at /openapi.json on the admin port: converted here by a host
# tool (tools/gen/yaml2json.c with the library's own src/config/yaml_doc.c and yaml_json.c, the
# very conversion portal.openapi goes through, and jansson), built with the plain
# flags because it runs inside the sanitizer and fuzzer builds too. A broken document breaks make.
HOSTCC      ?= gcc
HOST_CFLAGS := -std=c17 -D_GNU_SOURCE -O1 $(WARN) -Isrc $(shell pkg-config --cflags yaml-0.1 jansson 2>/dev/null)
YAML2JSON_SRCS := tools/gen/yaml2json.c src/config/yaml_doc.c src/config/yaml_json.c
$(BUILD)/gen/yaml2json: $(YAML2JSON_SRCS) src/config/yaml_doc.h src/config/yaml_json.h src/util/err.h
	@mkdir -p $(dir $@)
	$(HOSTCC) $(HOST_CFLAGS) -o $@ $(YAML2JSON_SRCS) $(shell pkg-config --libs yaml-0.1 jansson 2>/dev/null)

$(BUILD)/gen/openapi.json: docs/openapi.yaml $(BUILD)/gen/yaml2json
	$(BUILD)/gen/yaml2json $< $@

$(BUILD)/obj/gen/assets.o: $(BUILD)/gen/assets.c src/admin/assets.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libtollgate.a: $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(AR) rcs $@ $^

# util/syscall_nocancel.o by name, ahead of the library: its read, write, writev and epoll_wait
# must be the executable's, for the shared libraries too (syscall_nocancel.h)
NOCANCEL_OBJ := $(BUILD)/obj/src/util/syscall_nocancel.o
$(BUILD)/tollgate: $(MAIN_OBJ) $(NOCANCEL_OBJ) $(BUILD)/libtollgate.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# make install PREFIX=/usr/local DESTDIR=: the binary (pages built in), tollgate(1) made from its
# --help texts, an example configuration and the systemd unit (packaging/tollgate.service.in).
PREFIX     ?= /usr/local
SYSCONFDIR ?= /etc
STATEDIR   ?= /var/lib/tollgate
BINDIR     := $(PREFIX)/bin
MANDIR     := $(PREFIX)/share/man
DATADIR    := $(PREFIX)/share/tollgate
UNITDIR    ?= $(PREFIX)/lib/systemd/system

$(BUILD)/tollgate.1: $(BUILD)/tollgate scripts/make-man.sh
	scripts/make-man.sh $< > $@.tmp && mv $@.tmp $@

install: $(BUILD)/tollgate $(BUILD)/tollgate.1
	install -D -m 0755 $(BUILD)/tollgate $(DESTDIR)$(BINDIR)/tollgate
	install -D -m 0644 $(BUILD)/tollgate.1 $(DESTDIR)$(MANDIR)/man1/tollgate.1
	install -d -m 0755 $(DESTDIR)$(DATADIR) $(DESTDIR)$(UNITDIR)
	sed -e 's|sqlite:../var/tollgate.db|sqlite:$(STATEDIR)/tollgate.db|' -e 's|this is the repository.s var/tollgate.db|the state directory of the systemd unit|' \
	    -e 's|examples/tollgate.yaml|$(SYSCONFDIR)/tollgate/tollgate.yaml|' \
	    -e 's|^  openapi: demo-upstream.openapi.yaml  |  # openapi: your-api.openapi.yaml|' \
	    examples/tollgate.yaml > $(DESTDIR)$(DATADIR)/tollgate.yaml.example
	sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' -e 's|@DATADIR@|$(DATADIR)|g' \
	    packaging/tollgate.service.in > $(DESTDIR)$(UNITDIR)/tollgate.service
	chmod 0644 $(DESTDIR)$(DATADIR)/tollgate.yaml.example $(DESTDIR)$(UNITDIR)/tollgate.service

# tests/support/*.h are included by the tests only: a change there rebuilds them
$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libtollgate.a $(wildcard tests/support/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libtollgate.a $(LDLIBS) -lcmocka

$(BUILD)/%: tools/%.c $(BUILD)/libtollgate.a
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libtollgate.a $(LDLIBS)

unit-bins: $(UNIT_BINS)

# Fuzz targets (libFuzzer, so clang), with ASan+UBSan, in build/fuzz: `make fuzz-bins`.
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(FUZZ_SRCS:tests/fuzz/%.c=build/fuzz/%)
fuzz-bins:
	$(MAKE) BUILD=build/fuzz CC=clang SANITIZE=address,undefined EXTRA_CFLAGS=-fsanitize=fuzzer-no-link $(FUZZ_BINS)

$(BUILD)/fuzz_%: tests/fuzz/fuzz_%.c $(BUILD)/libtollgate.a
	$(CC) $(CFLAGS) $(LDFLAGS) -fsanitize=fuzzer -o $@ $< $(BUILD)/libtollgate.a $(LDLIBS)

# The unit tests of the threaded modules also run under ThreadSanitizer.
TSAN_UNIT_BINS := build/tsan/tests/test_meter build/tsan/tests/test_limits build/tsan/tests/test_outbox \
                  build/tsan/tests/test_cluster build/tsan/tests/test_reload build/tsan/tests/test_notify_metrics \
                  build/tsan/tests/test_access_log build/tsan/tests/test_periods_due \
                  build/tsan/tests/test_reservations build/tsan/tests/test_store_ingest \
                  build/tsan/tests/test_key_cache build/tsan/tests/test_shardmap build/tsan/tests/test_clock \
                  build/tsan/tests/test_metrics build/tsan/tests/test_thread_affinity \
                  build/tsan/tests/test_store

deps:
	@scripts/install-deps.sh

# Unit tests run under ASan+UBSan; integration tests run the real optimised binary and then the
# sanitized one, so both builds are exercised end to end.
test: deps
	$(MAKE) all
	$(MAKE) SANITIZE=address,undefined all unit-bins
	$(MAKE) SANITIZE=thread build/tsan/tollgate $(TSAN_UNIT_BINS)
	$(MAKE) fuzz-bins
	scripts/run-tests.sh

unit:
	$(MAKE) SANITIZE=address,undefined unit-bins
	scripts/run-tests.sh unit

integration: all
	scripts/run-tests.sh integration

fuzz: fuzz-bins
	scripts/run-tests.sh fuzz

run: deps
	$(MAKE) all
	scripts/run-demo.sh

bench: deps all
	bench/gateway.sh

fmt:
	clang-format -i $(SRCS) $(shell find src tests tools -name '*.h' -o -name '*.c' 2>/dev/null | sort -u)

lint:
	cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability --std=c11 \
	  --suppress=missingIncludeSystem --include=/usr/include/jansson.h -Isrc src

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
